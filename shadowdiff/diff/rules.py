"""Diff rules: which differences are noise, how values are compared, what is redacted.

Rules live in the rules file (``--rules FILE.toml``) or inside a pipeline file, next to its other
sections. Every section is optional::

    [ignore]
    headers = ["x-cache", "x-b3-*"]      # names or globs, any case; added to the defaults
    body = ["$.served_at", "$..trace_id", "$.items[*].took_ms"]
    default_headers = true               # false: also compare date, server, age, …

    [[normalize]]                         # one table per normaliser, applied in order
    pattern = "$..url"
    regex = "\\\\?.*$"                    # Python regex, applied to string values
    replace = ""                          # default ""

    [tolerance]                           # numbers closer than this are noise
    "$.total" = { absolute = 0.01 }
    "$..score" = { relative = 0.001 }     # of the larger magnitude; both: either is enough
    float_relative = 1e-9                 # the default: see below; 0 compares floats exactly

    [order]
    ignore = ["$.tags", "$.items[*].labels"]   # arrays compared as multisets

    [redact]
    headers = ["x-session"]               # added to authorization, cookie, set-cookie, …
    body = ["$.user.email", "$..token"]

    [limits]
    max_decoded_bytes = 16777216          # a body decoding to more is truncated (bomb cap)
    max_diffs_per_pair = 1000             # more rows than this: the first ones and a note

Patterns use the syntax of ``diffs.pattern`` (see :mod:`shadowdiff.diff.paths`): copy one from the
``diffs`` table into the file. ``ignore``, ``normalize``, ``tolerance`` and ``redact`` cover the
place they name and everything below it; ``order`` covers exactly the arrays it names.

Floating-point representation noise is no difference at all: two numbers, one of them written
as a float, that differ by at most ``float_relative`` (default :data:`DEFAULT_FLOAT_RELATIVE`,
1e-9) times the larger magnitude are equal (``19.990000000012`` is ``19.99``: the same amount,
summed in another order or converted through another chain of float operations). Integers on both
sides are always compared exactly (an id is not a measurement), and a real change of a float is
larger than a billionth of it; a wider relative tolerance is a ``[tolerance]`` pattern.

Ignored differences stay visible: they are rows with ``noise = true`` and a ``noise_reason`` that
names the rule (``rule: ignore $.served_at``, ``rule: tolerance $.total``, …). The default header
set (:data:`shadowdiff.diff.headers.ALWAYS_DIFFERENT`) is different: those headers differ on every
response, so they are not compared at all unless ``default_headers = false``.

Unknown sections and settings fail with :class:`~shadowdiff.errors.ConfigError`, naming the key
and the closest known one.

>>> Rules.from_mapping({"ignore": {"body": ["$.served_at"]}}).ignored_body(("served_at",))
'rule: ignore $.served_at'
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shadowdiff.diff.paths import PathError, Pattern, Segment, parse
from shadowdiff.errors import ConfigError
from shadowdiff.settings import DEFAULT_REDACT_HEADERS, SECTIONS, check_keys, strings, suggest

T = TypeVar("T")

DEFAULT_MAX_DECODED_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DIFFS_PER_PAIR = 1000

# The settings each rules section accepts (``normalize`` is an array of tables of these).
RULE_SECTIONS: dict[str, tuple[str, ...]] = {
    "ignore": ("headers", "body", "default_headers"),
    "normalize": ("pattern", "regex", "replace"),
    "tolerance": (),  # keys are patterns; values are tables of TOLERANCE_KEYS
    "order": ("ignore",),
    "redact": ("headers", "body", "query", "fields"),
    "limits": ("max_decoded_bytes", "max_diffs_per_pair"),
}
TOLERANCE_KEYS = ("absolute", "relative")
FLOAT_RELATIVE_KEY = "float_relative"  # a setting of [tolerance], not a pattern
DEFAULT_FLOAT_RELATIVE = 1e-9


@dataclass(frozen=True)
class Normalizer:
    """``regex`` is replaced by ``replace`` in string values under ``pattern`` before comparing."""

    pattern: Pattern
    regex: re.Pattern[str]
    replace: str = ""

    def apply(self, value: str) -> str:
        return self.regex.sub(self.replace, value)


@dataclass(frozen=True)
class Tolerance:
    """Numbers under ``pattern`` that differ by at most ``absolute``, or by at most ``relative``
    times the larger magnitude, are noise."""

    pattern: Pattern
    absolute: float = 0.0
    relative: float = 0.0

    def allows(self, a: float, b: float) -> bool:
        gap = abs(a - b)
        return gap <= self.absolute or gap <= self.relative * max(abs(a), abs(b))


@dataclass(frozen=True)
class Rules:
    """Parsed rules. ``Rules()`` is the default: nothing ignored but the always-different headers,
    the default secret headers redacted."""

    ignore_headers: tuple[str, ...] = ()
    default_headers: bool = True
    ignore_body: tuple[Pattern, ...] = ()
    normalize: tuple[Normalizer, ...] = ()
    tolerance: tuple[Tolerance, ...] = ()
    float_relative: float = DEFAULT_FLOAT_RELATIVE
    order_ignore: tuple[Pattern, ...] = ()
    redact_headers: tuple[str, ...] = DEFAULT_REDACT_HEADERS
    redact_body: tuple[Pattern, ...] = ()
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
    max_diffs_per_pair: int = DEFAULT_MAX_DIFFS_PER_PAIR
    # Rule lookups by place, so a field that differs in every pair is matched once.
    _memo: dict[tuple[str, Any], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str = "<rules>") -> Rules:
        """Rules from a parsed TOML document (a rules file or a whole pipeline file)."""
        return _from_mapping(data, origin)

    # --- lookups used while diffing ---------------------------------------------------------

    def ignored_header(self, name: str) -> str | None:
        """The noise reason if a rule ignores header ``name`` (lowercase)."""
        return self._lookup(
            ("header", name),
            lambda: next(
                (f"rule: ignore header {g}" for g in self.ignore_headers if _glob(name, g)), None
            ),
        )

    def redacts_header(self, name: str) -> bool:
        """Whether header ``name`` (lowercase) is redacted."""
        return self._lookup(
            ("redact-header", name), lambda: any(_glob(name, g) for g in self.redact_headers)
        )

    def ignored_body(self, segments: tuple[Segment, ...]) -> str | None:
        """The noise reason if an ignore rule covers the body place ``segments``."""
        if not self.ignore_body:
            return None
        return self._lookup(
            ("ignore", segments),
            lambda: next(
                (f"rule: ignore {p}" for p in self.ignore_body if p.matches(segments)), None
            ),
        )

    def order_free(self, segments: tuple[Segment, ...]) -> str | None:
        """The noise reason if the array at ``segments`` is order-insensitive."""
        if not self.order_ignore:
            return None
        return self._lookup(
            ("order", segments),
            lambda: next(
                (f"rule: order {p}" for p in self.order_ignore if p.matches(segments, False)),
                None,
            ),
        )

    def same_float(self, a: float, b: float) -> bool:
        """Whether numbers ``a`` and ``b`` (not booleans), one of them a float, are the same
        number written differently: within ``float_relative`` of the larger magnitude."""
        if type(a) is not float and type(b) is not float:
            return False  # integers are exact
        return abs(a - b) <= self.float_relative * max(abs(a), abs(b))

    def tolerated(self, segments: tuple[Segment, ...], a: float, b: float) -> str | None:
        """The noise reason if a tolerance rule accepts numbers ``a`` and ``b`` here."""
        if not self.tolerance:
            return None
        rules: list[Tolerance] = self._lookup(
            ("tolerance", segments),
            lambda: [r for r in self.tolerance if r.pattern.matches(segments)],
        )
        for rule in rules:
            if rule.allows(a, b):
                return f"rule: tolerance {rule.pattern}"
        return None

    def normalized(self, segments: tuple[Segment, ...], a: str, b: str) -> str | None:
        """The noise reason if the normalisers here make strings ``a`` and ``b`` equal."""
        if not self.normalize:
            return None
        rules: list[Normalizer] = self._lookup(
            ("normalize", segments),
            lambda: [r for r in self.normalize if r.pattern.matches(segments)],
        )
        if not rules:
            return None
        for rule in rules:
            a, b = rule.apply(a), rule.apply(b)
        if a != b:
            return None
        return "rule: normalize " + ", ".join(str(r.pattern) for r in rules)

    def _lookup(self, key: tuple[str, Any], compute: Callable[[], T]) -> T:
        memo = self._memo
        if key in memo:
            found: T = memo[key]
            return found
        if len(memo) > 100_000:  # instance paths of huge arrays: keep the memo bounded
            memo.clear()
        value = memo[key] = compute()
        return value


def _glob(name: str, pattern: str) -> bool:
    return name == pattern or fnmatch.fnmatchcase(name, pattern)


DEFAULT = Rules()


# --- parsing -----------------------------------------------------------------------------------


def _from_mapping(data: Mapping[str, Any], origin: str) -> Rules:
    known = {**{s: None for s in SECTIONS}, **RULE_SECTIONS}
    for section in data:
        if section not in known:
            raise ConfigError(f"{origin}: unknown section [{section}].{suggest(section, known)}")
    ignore = _table(data, "ignore", origin)
    order = _table(data, "order", origin)
    redact = _table(data, "redact", origin)
    limits = _table(data, "limits", origin)
    default_headers = ignore.get("default_headers", True)
    if not isinstance(default_headers, bool):
        raise ConfigError(f"{origin}: [ignore] default_headers must be true or false.")
    extra_redact = strings(redact.get("headers", []), "[redact] headers", origin)
    return Rules(
        ignore_headers=tuple(
            h.lower() for h in strings(ignore.get("headers", []), "[ignore] headers", origin)
        ),
        default_headers=default_headers,
        ignore_body=_patterns(ignore.get("body", []), "[ignore] body", origin),
        normalize=_normalizers(data.get("normalize", []), origin),
        tolerance=_tolerances(data.get("tolerance", {}), origin),
        float_relative=_float_relative(data.get("tolerance", {}), origin),
        order_ignore=_patterns(order.get("ignore", []), "[order] ignore", origin),
        redact_headers=tuple(
            dict.fromkeys(DEFAULT_REDACT_HEADERS + tuple(h.lower() for h in extra_redact))
        ),
        redact_body=_patterns(redact.get("body", []), "[redact] body", origin),
        max_decoded_bytes=_positive(limits, "max_decoded_bytes", DEFAULT_MAX_DECODED_BYTES, origin),
        max_diffs_per_pair=_positive(
            limits, "max_diffs_per_pair", DEFAULT_MAX_DIFFS_PER_PAIR, origin
        ),
    )


def _table(data: Mapping[str, Any], section: str, origin: str) -> Mapping[str, Any]:
    value = data.get(section, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{origin}: [{section}] must be a table of settings.")
    check_keys(value, RULE_SECTIONS[section], f"[{section}]", origin)
    return value


def _pattern(text: str, where: str, origin: str) -> Pattern:
    try:
        return parse(text)
    except PathError as e:
        raise ConfigError(
            f"{origin}: {where}: {e}. Paths look like $.items[*].took_ms or $..trace_id."
        ) from e


def _patterns(value: Any, where: str, origin: str) -> tuple[Pattern, ...]:
    return tuple(_pattern(t, where, origin) for t in strings(value, where, origin))


def _normalizers(value: Any, origin: str) -> tuple[Normalizer, ...]:
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{origin}: [[normalize]] must be an array of tables.")
    found = []
    for n, entry in enumerate(value, start=1):
        where = f"[[normalize]] #{n}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{origin}: {where} must be a table (pattern, regex, replace).")
        check_keys(entry, RULE_SECTIONS["normalize"], where, origin)
        for required in ("pattern", "regex"):
            if not isinstance(entry.get(required), str):
                raise ConfigError(f'{origin}: {where} needs {required} = "…" (a string).')
        replace = entry.get("replace", "")
        if not isinstance(replace, str):
            raise ConfigError(f"{origin}: {where} replace must be a string.")
        try:
            regex = re.compile(entry["regex"])
        except re.error as e:
            raise ConfigError(f"{origin}: {where} regex {entry['regex']!r}: {e}.") from e
        try:
            regex.sub(replace, "")
        except (re.error, IndexError) as e:
            raise ConfigError(f"{origin}: {where} replace {replace!r}: {e}.") from e
        found.append(Normalizer(_pattern(entry["pattern"], where, origin), regex, replace))
    return tuple(found)


def _tolerances(value: Any, origin: str) -> tuple[Tolerance, ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{origin}: [tolerance] must be a table of pattern = {{ absolute = …, relative = … }}, "
            'e.g. "$.total" = { absolute = 0.01 }.'
        )
    found = []
    for text, limits in value.items():
        if text == FLOAT_RELATIVE_KEY:
            continue
        where = f"[tolerance] {text!r}"
        if not isinstance(limits, Mapping):
            raise ConfigError(
                f"{origin}: {where} must be a table, e.g. {{ absolute = 0.01 }} or "
                "{ relative = 0.001 }."
            )
        check_keys(limits, TOLERANCE_KEYS, where, origin)
        if not limits:
            raise ConfigError(f"{origin}: {where} needs absolute or relative.")
        numbers = {}
        for key, number in limits.items():
            if (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not math.isfinite(number)
                or number < 0
            ):
                raise ConfigError(f"{origin}: {where} {key} must be a number >= 0.")
            numbers[key] = float(number)
        found.append(Tolerance(_pattern(text, where, origin), **numbers))
    return tuple(found)


def _float_relative(value: Any, origin: str) -> float:
    """``[tolerance] float_relative``: a number in [0, 1); 0 compares floats exactly."""
    if not isinstance(value, Mapping) or FLOAT_RELATIVE_KEY not in value:
        return DEFAULT_FLOAT_RELATIVE
    number = value[FLOAT_RELATIVE_KEY]
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number < 1:
        raise ConfigError(
            f"{origin}: [tolerance] {FLOAT_RELATIVE_KEY} must be a number >= 0 and below 1 "
            f"(default {DEFAULT_FLOAT_RELATIVE:g}; 0 compares floats exactly)."
        )
    return float(number)


def _positive(table: Mapping[str, Any], key: str, default: int, origin: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{origin}: [limits] {key} must be a whole number > 0.")
    return value
