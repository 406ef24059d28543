"""Do two sets of values come from one population? The value half of noise detection.

A pattern's sampled ``diffs`` rows are a :class:`Sample` (:mod:`shadowdiff.noise.sample`): for
each row the primary's and the other side's value, parsed by DuckDB (:data:`MACROS`) into a JSON
type, a number, a string, a timestamp (epoch seconds), a format signature (digits as ``9``) and a
template with its slots. :func:`compare` asks whether
the mirror's values come from the same population as a reference: the primary's own values
(without a secondary) or the secondary's values (with one). Its :class:`Finding` says ``same``,
``different`` (with the systematic relation found) or ``unknown`` (nothing it can test), in words
in ``evidence``:

- **timestamps** (ISO 8601, HTTP dates, epoch numbers in s/ms/µs/ns): the same format on both
  sides and the two clocks within ``clock_tolerance_s`` for the same request. A changed format
  (``Z`` for ``+00:00``, other precision) or a shift (a time zone, an hour) is a difference.
- **ids and tokens** (UUIDs, hex, base64-like tokens): the reference's shape (charset, length)
  kept by the mirror, and nearly every value distinct on both sides. A new shape or a repeating
  (e.g. constant) mirror value is a difference.
- **numbers that track the primary**: the mirror within ``track_relative`` of the primary's
  value (relative to the larger magnitude) in nearly every pair, in both directions and not by
  one constant shift or factor, is floating-point noise (a float32 round trip, another order of
  summation); off by one, or times 1.1, is a difference, however small relative to the value.
- **numbers**: a two-sample Kolmogorov-Smirnov test (the distributions), a sign test on
  mirror - reference of the same request (no direction), and without a secondary a Spearman test
  (the mirror does not follow the primary), each at ``value_alpha`` split between them.
- **few distinct values** (strings, booleans): a chi-square test of the two value counts and,
  without a secondary, no deterministic mapping primary → mirror.
- **templated text** (strings holding numbers, ids, tokens or timestamps): compared template by
  template, each slot that differs judged by these same tests (:mod:`shadowdiff.noise.templates`).
- anything else (free text, arrays, mixed types) is ``unknown``; arrays that differ only in
  their order are judged by :mod:`shadowdiff.noise.orders`.

Without a secondary, a value the primary answers identically to repeated requests (the same
method and path) is stable on the primary's own version, so it is not volatile: however alike
the populations, a mirror that differs in it is ``different``. (Findings that rest on each pair's
own two values are exempt, ``Finding.row_wise``: a one-second clock repeats within a burst of
requests, and a stable price still jitters in its last digits.)

A ``same`` finding for timestamps, ids, tracking numbers and templated text carries a
:class:`RowCheck`: the per-row form of the test, run in SQL over every row of the pattern, so a
pair whose value breaks the shape stays real even when the pattern is noise.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shadowdiff import db
from shadowdiff.noise import templates
from shadowdiff.noise.sample import (
    HTTP_TIME,
    ISO_TIME,
    KEY_SEPARATOR,
    MACROS,
    SAMPLE_COLUMNS,
    Finding,
    Opinion,
    RowCheck,
    Sample,
)
from shadowdiff.noise.thresholds import Thresholds
from shadowdiff.redact import HASH_CHARS

__all__ = [
    "HTTP_TIME",
    "ISO_TIME",
    "MACROS",
    "SAMPLE_COLUMNS",
    "Finding",
    "Opinion",
    "RowCheck",
    "Sample",
    "clock",
    "compare",
    "row_check_sql",
    "row_wise",
]

# Epoch numbers: seconds per unit and the range (in units) of 2001-09 .. 2286-11.
EPOCH_UNITS: tuple[tuple[str, float], ...] = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
EPOCH_SECONDS = (1e9, 1e10)
MAX_CATEGORIES = 20
MIN_REPEATS = 10  # rows repeating a primary value before a deterministic mapping is judged
DETERMINISTIC = 0.9  # share of those rows whose primary value always gets one mirror value
TYPICAL = 0.99  # share of values that must fit a kind (number, text, timestamp, id shape)


def compare(mirror: Sample, secondary: Sample | None, t: Thresholds) -> Finding:
    """Do the mirror's values come from the reference population?

    ``mirror`` holds primary/mirror rows. Without a secondary (``secondary`` is ``None``) the
    reference is the primary's values of the same rows; with one, ``secondary`` holds
    primary/secondary rows of the same pattern and the secondary's values are the reference.
    """
    if len(mirror) == 0:
        return Finding("unknown", "no values", "values")
    finding = _by_kind(mirror, secondary, t)
    if secondary is None and finding.opinion == "same" and not finding.row_wise:
        stable = _stable(mirror)
        if stable is not None:
            return Finding("different", stable, finding.label, finding.p_value)
    return finding


def _by_kind(mirror: Sample, secondary: Sample | None, t: Thresholds) -> Finding:
    kind = _value_kind(mirror)
    if kind == "number":
        return _numbers(mirror.p_num, mirror.o_num, mirror, secondary, t)
    if kind == "text":
        numeric = _numeric_texts(mirror)
        if numeric is not None:
            return _numbers(numeric[0], numeric[1], mirror, secondary, t, texts=True)
        return _texts(mirror, secondary, t)
    if kind == "boolean":
        if secondary is None:  # a changed boolean is always the primary's negation
            return Finding(
                "unknown",
                "booleans: a changed flag is always the primary's negation, and a random flag "
                "differs in about half the pairs; only a secondary tells them apart",
                "booleans",
            )
        return _categories(
            [str(v) for v in secondary.o_raw],
            [str(v) for v in mirror.o_raw],
            mirror,
            secondary,
            t,
            "booleans",
        )
    return Finding("unknown", f"{kind} values are not tested", f"{kind} values")


def clock(mirror: Sample, t: Thresholds) -> Finding | None:
    """The timestamp finding when the values are timestamps (ISO, HTTP or epoch), else
    ``None``: are mirror and primary readings of two clocks at the same moment?"""
    if len(mirror) == 0:
        return None
    kind = _value_kind(mirror)
    if kind == "number":
        ok = np.isfinite(mirror.p_num) & np.isfinite(mirror.o_num)
        return _epoch_clock(mirror.p_num[ok], mirror.o_num[ok], t)
    if kind == "text" and np.isfinite(mirror.p_time).sum() >= TYPICAL * len(mirror):
        return _timestamps(mirror, t)
    return None


def row_wise(mirror: Sample, t: Thresholds) -> Finding | None:
    """The finding that rests on each pair's own two values, when there is one: timestamps
    (:func:`clock`) or numbers that track the primary's within ``track_relative``; else
    ``None``. With a secondary, it settles a pattern the counts call real: the mirror differs
    more often than the secondary, but only as two clocks or two float computations do."""
    readings = clock(mirror, t)
    if readings is not None:
        return readings
    if len(mirror) == 0 or _value_kind(mirror) != "number" or not _floats(mirror):
        return None
    return _tracking(mirror.p_num, mirror.o_num, t)


# --- kinds -------------------------------------------------------------------------------------


def _value_kind(sample: Sample) -> str:
    n = len(sample)
    numbers = np.isfinite(sample.p_num) & np.isfinite(sample.o_num)
    texts = sum(
        1
        for a, b in zip(sample.p_text, sample.o_text, strict=True)
        if a is not None and b is not None
    )
    booleans = sum(
        1 for a, b in zip(sample.p_type, sample.o_type, strict=True) if a == b == "BOOLEAN"
    )
    if numbers.sum() >= TYPICAL * n:
        return "number"
    if texts >= TYPICAL * n:
        return "text"
    if booleans >= TYPICAL * n:
        return "boolean"
    types = Counter(f"{a}/{b}" for a, b in zip(sample.p_type, sample.o_type, strict=True))
    if len(types) == 1:
        only = next(iter(types)).split("/")[0].lower()
        return {"array": "array", "object": "object", "null": "null"}.get(only, "mixed")
    return "mixed"


_NUMBER_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def _numeric_texts(sample: Sample) -> tuple[np.ndarray, np.ndarray] | None:
    """Strings that are numbers on both sides (header values, ``"31.50"``) as numbers."""
    p, o = [], []
    for a, b in zip(sample.p_text, sample.o_text, strict=True):
        if a is None or b is None or not _NUMBER_TEXT.fullmatch(a) or not _NUMBER_TEXT.fullmatch(b):
            return None
        p.append(float(a))
        o.append(float(b))
    return np.array(p), np.array(o)


# --- numbers ------------------------------------------------------------------------------------


def _numbers(
    p: np.ndarray,
    m: np.ndarray,
    mirror: Sample,
    secondary: Sample | None,
    t: Thresholds,
    texts: bool = False,
) -> Finding:
    label = "numbers in strings" if texts else "numbers"
    if secondary is None:
        paired = m - p
    else:
        s_num = secondary.o_num
        if texts:
            numeric = _numeric_texts(secondary)
            s_num = numeric[1] if numeric is not None else np.full(len(secondary), math.nan)
        reference = s_num[np.isfinite(s_num)]
        paired = _paired_differences(mirror, m, secondary, s_num)
    ok = np.isfinite(p) & np.isfinite(m)
    p, m = p[ok], m[ok]
    if secondary is None:
        reference = p
    readings = _epoch_clock(p, m, t)
    if readings is not None:
        return readings
    if len(m) >= t.min_rows and _floats(mirror):
        tracking = _tracking(p, m, t, label)
        if tracking is not None:
            return tracking
    if len(reference) < t.min_rows:
        return Finding("unknown", f"only {len(reference)} reference values", label)
    if len(np.unique(m)) == 1 and len(np.unique(reference)) > 1:
        return Finding(
            "different", f"the mirror answers one value, {_short(m[0])}, in every pair", label
        )
    from scipy import stats  # type: ignore[import-untyped]  # slow to import

    tests: dict[str, tuple[float, str]] = {}
    with warnings.catch_warnings():  # "exact calculation unsuccessful": it falls back, fine
        warnings.simplefilter("ignore", RuntimeWarning)
        ks = stats.ks_2samp(reference, m)
    tests["KS"] = (
        float(ks.pvalue),
        f"KS p={_p(ks.pvalue)} (means {_short(np.mean(m))} vs {_short(np.mean(reference))})",
    )
    signs = paired[np.isfinite(paired) & (paired != 0)]
    if len(signs) >= 10:
        larger = int((signs > 0).sum())
        sign = stats.binomtest(larger, len(signs), 0.5).pvalue
        tests["sign"] = (
            float(sign),
            f"sign p={_p(sign)} (mirror larger in {larger / len(signs):.0%} of {len(signs)})",
        )
    if secondary is None and len(np.unique(p)) > 1 and len(np.unique(m)) > 1:
        rho, spearman = stats.spearmanr(p, m)
        tests["Spearman"] = (float(spearman), f"Spearman ρ={rho:.2f} p={_p(spearman)}")
    mapping = _mapping(mirror) if secondary is None else None
    return _verdict(tests, t, label, "numbers from one distribution", mapping)


def _epoch_clock(p: np.ndarray, m: np.ndarray, t: Thresholds) -> Finding | None:
    """Epoch timestamps on both sides: noise when the two clocks agree (a shift is not)."""
    if len(p) == 0:
        return None
    for unit, seconds in EPOCH_UNITS:
        low, high = EPOCH_SECONDS[0] / seconds, EPOCH_SECONDS[1] / seconds
        if (
            np.mean((p >= low) & (p < high)) >= TYPICAL
            and np.mean((m >= low) & (m < high)) >= TYPICAL
        ):
            gaps = np.abs(m - p) * seconds
            close = float(np.mean(gaps <= t.clock_tolerance_s))
            check = RowCheck("epoch", tolerance_s=t.clock_tolerance_s, unit_s=seconds)
            median = float(np.median(gaps))
            if close >= t.conform:
                return Finding(
                    "same",
                    f"epoch timestamps ({unit}); the two clocks within ±{t.clock_tolerance_s:g} s "
                    f"in {close:.1%} of pairs (median gap {_seconds(median)})",
                    "epoch timestamps",
                    check=check,
                    clock=True,
                    row_wise=True,
                )
            return Finding(
                "different",
                f"epoch timestamps ({unit}), but mirror and primary are more than "
                f"±{t.clock_tolerance_s:g} s apart in {1 - close:.1%} of pairs (median gap "
                f"{_seconds(median)}): a shift, not two clocks",
                "epoch timestamps",
                clock=True,
            )
    return None


def _floats(sample: Sample) -> bool:
    """Whether nearly every row holds a float on one side at least (a JSON number written with
    a fraction or an exponent): only floats carry representation noise. Integers on both sides
    that differ a little differ for real (a counter, an id, a balance in cents)."""
    texts = (sample.p_text, sample.o_text)
    types = (sample.p_type, sample.o_type)
    floats = sum(
        1
        for i in range(len(sample))
        if any(kind[i] == "DOUBLE" for kind in types)
        or any(text[i] is not None and _FLOAT_TEXT.search(text[i] or "") for text in texts)
    )
    return floats >= TYPICAL * len(sample)


_FLOAT_TEXT = re.compile(r"[.eE]")


def _tracking(
    p: np.ndarray, m: np.ndarray, t: Thresholds, label: str = "numbers"
) -> Finding | None:
    """Numbers within ``track_relative`` of the primary's in nearly every pair: floating-point
    noise when the errors go both ways and are not one constant shift or factor (``different``
    then); ``None`` when the numbers do not track the primary that closely."""
    ok = np.isfinite(p) & np.isfinite(m) & (p != m)
    p, m = p[ok], m[ok]
    if len(p) == 0:
        return None
    scale = np.maximum(np.abs(p), np.abs(m))
    relative = np.abs(m - p) / scale
    close = relative <= t.track_relative
    share = float(close.mean())
    if share < t.conform:
        return None
    p, m, relative = p[close], m[close], relative[close]
    largest = f"at most {float(relative.max()):.2g} (median {float(np.median(relative)):.2g})"
    shift, factor = m - p, m / np.where(p == 0, np.nan, p)
    how = None
    if _constant(shift, scale[close] * 1e-12):
        how = f"+ {_short(float(shift[0]))}"
    elif _constant(factor, 1e-12):
        how = f"× {float(factor[0]):.10g}"
    if how is not None:
        return Finding(
            "different",
            f"{label} within a relative {largest} of the primary's, but the mirror is the "
            f"primary {how} in every pair: one constant change, not noise",
            label,
        )
    larger = int((m > p).sum())
    if len(m) >= 10:
        from scipy import stats  # slow to import

        direction = float(stats.binomtest(larger, len(m), 0.5).pvalue)
        if direction < t.value_alpha:
            return Finding(
                "different",
                f"{label} within a relative {largest} of the primary's, but the mirror is "
                f"larger in {larger / len(m):.0%} of {len(m)} pairs (sign p={_p(direction)}): "
                "a bias, not noise",
                label,
                p_value=direction,
            )
    return Finding(
        "same",
        f"{label} that track the primary's within a relative {largest} in {share:.1%} of "
        f"pairs (track_relative {t.track_relative:g}), the mirror larger in {larger} and smaller "
        f"in {len(m) - larger}: floating-point noise",
        f"{label} within a relative {t.track_relative:g}",
        check=RowCheck("relative", tolerance_s=t.track_relative),
        row_wise=True,
    )


def _constant(values: np.ndarray, tolerance: np.ndarray | float) -> bool:
    """Whether every value is the first one, within ``tolerance``."""
    finite = np.isfinite(values)
    if not finite.all():
        return False
    return bool(np.all(np.abs(values - values[0]) <= tolerance))


def _paired_differences(
    mirror: Sample, m: np.ndarray, secondary: Sample, s: np.ndarray
) -> np.ndarray:
    """mirror - secondary for the rows both hold (same request and path)."""
    found = dict(zip(zip(secondary.request_id, secondary.path, strict=True), s, strict=True))
    out = []
    for key, value in zip(zip(mirror.request_id, mirror.path, strict=True), m, strict=True):
        other = found.get(key)
        if other is not None:
            out.append(float(value) - float(other))
    return np.array(out, dtype=float)


# --- strings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    label: str
    regex: str
    describe: str


def _texts(mirror: Sample, secondary: Sample | None, t: Thresholds) -> Finding:
    n = len(mirror)
    parsed = int(np.isfinite(mirror.p_time).sum())
    if parsed >= TYPICAL * n:
        return _timestamps(mirror, t)
    p_text = [v or "" for v in mirror.p_text]
    m_text = [v or "" for v in mirror.o_text]
    shape = _shape(p_text)
    if shape is not None:
        return _ids(shape, p_text, m_text, secondary, t)
    reference = p_text if secondary is None else [v or "" for v in secondary.o_text]
    if len(set(reference) | set(m_text)) <= MAX_CATEGORIES:
        return _categories(reference, m_text, mirror, secondary, t, "strings")
    templated = templates.judge(mirror, secondary, t, compare)
    if templated is not None:
        return templated
    return Finding(
        "unknown",
        "free text: not timestamps, ids or tokens (e.g. "
        f"{_quote(p_text[0])} → {_quote(m_text[0])})",
        "text",
    )


def _timestamps(mirror: Sample, t: Thresholds) -> Finding:
    signatures = Counter(s for s in mirror.p_sig if s is not None)
    known = tuple(sorted(signatures))
    gaps = np.abs(mirror.o_time - mirror.p_time)
    same_format = np.array([s in signatures for s in mirror.o_sig], dtype=bool)
    close = np.isfinite(gaps) & (gaps <= t.clock_tolerance_s)
    good = same_format & close
    share = float(good.mean())
    median = float(np.nanmedian(gaps)) if np.isfinite(gaps).any() else math.nan
    formats = ", ".join(_quote(s) for s, _ in signatures.most_common(3))
    check = RowCheck("time", signatures=known, tolerance_s=t.clock_tolerance_s)
    if share >= t.conform:
        return Finding(
            "same",
            f"timestamps in the primary's format ({formats}), the two clocks within "
            f"±{t.clock_tolerance_s:g} s in {share:.1%} of pairs (median gap {_seconds(median)})",
            "timestamps",
            check=check,
            clock=True,
            row_wise=True,
        )
    reasons = []
    if same_format.mean() < t.conform:
        other = Counter(s for s, ok in zip(mirror.o_sig, same_format, strict=True) if not ok)
        shown = ", ".join(_quote(s or "") for s, _ in other.most_common(2))
        reasons.append(
            f"the mirror's format differs in {1 - same_format.mean():.0%} of pairs "
            f"({shown} vs {formats})"
        )
    if close.mean() < t.conform:
        reasons.append(
            f"mirror and primary are more than ±{t.clock_tolerance_s:g} s apart in "
            f"{1 - close.mean():.0%} of pairs (median gap {_seconds(median)})"
        )
    return Finding("different", "timestamps, but " + "; ".join(reasons), "timestamps", clock=True)


_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# A secret redacted with the run's keyed hash (shadowdiff.redact): random when the secret is.
_REDACTED = rf"\[redacted:[0-9a-f]{{{HASH_CHARS}}}\]"
# (label, charset, shortest length) from the most to the least specific.
_FAMILIES: tuple[tuple[str, str, int], ...] = (
    ("random hex", "[0-9a-f]", 8),
    ("random hex", "[0-9A-F]", 8),
    ("random tokens", "[A-Za-z0-9_+/=-]", 12),
)


def _shape(values: Sequence[str]) -> _Shape | None:
    """The id/token shape nearly all of ``values`` have, if any."""
    n = len(values)
    if n == 0:
        return None
    shapes = (
        ("uuids", _UUID, "UUIDs"),
        ("uuids", _UUID.replace("a-f", "A-F"), "UUIDs"),
        ("redacted secrets", _REDACTED, "redacted secrets (tagged per value)"),
    )
    for label, regex, describe in shapes:
        compiled = re.compile(regex)
        if sum(1 for v in values if compiled.fullmatch(v)) >= TYPICAL * n:
            return _Shape(label, regex, describe)
    for label, charset, shortest in _FAMILIES:
        compiled = re.compile(f"{charset}{{{shortest},}}")
        lengths = [len(v) for v in values if compiled.fullmatch(v)]
        if len(lengths) >= TYPICAL * n:
            low, high = min(lengths), max(lengths)
            size = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
            chars = f"{low}" if low == high else f"{low}-{high}"
            return _Shape(label, charset + size, f"{label.split()[1]} of {chars} chars {charset}")
    return None


def _ids(
    shape: _Shape,
    p_text: list[str],
    m_text: list[str],
    secondary: Sample | None,
    t: Thresholds,
) -> Finding:
    n = len(m_text)
    compiled = re.compile(shape.regex)
    kept = sum(
        1
        for a, b in zip(p_text, m_text, strict=True)
        if compiled.fullmatch(a) and compiled.fullmatch(b)
    )
    share = kept / n
    if share < t.conform:
        other = next((b for b in m_text if not compiled.fullmatch(b)), "")
        return Finding(
            "different",
            f"the primary's values are {shape.describe}; {1 - share:.0%} of the mirror's are "
            f"not (e.g. {_quote(other)})",
            shape.label,
        )
    reference = p_text if secondary is None else [v or "" for v in secondary.o_text]
    own = len(set(m_text)) / n
    theirs = len(set(reference)) / max(len(reference), 1)
    needed = min(t.distinct, theirs - 0.1)
    if own < needed:
        return Finding(
            "different",
            f"{shape.describe}, but the mirror's repeat: {len(set(m_text))} distinct in {n} "
            f"(the reference: {theirs:.0%} distinct)",
            shape.label,
        )
    if theirs < t.distinct:
        return Finding(
            "unknown",
            f"{shape.describe}, but the reference's repeat ({theirs:.0%} distinct): not random",
            shape.label,
        )
    return Finding(
        "same",
        f"{shape.describe} on both sides in {share:.1%} of pairs, {own:.0%} of the mirror's "
        f"and {theirs:.0%} of the reference's distinct",
        shape.label,
        check=RowCheck("regex", regex=shape.regex),
    )


# --- few distinct values ------------------------------------------------------------------------


def _categories(
    reference: list[str],
    m: list[str],
    mirror: Sample,
    secondary: Sample | None,
    t: Thresholds,
    label: str,
) -> Finding:
    from scipy import stats

    if len(reference) < t.min_rows:
        return Finding("unknown", f"only {len(reference)} reference values", label)
    counts_r, counts_m = Counter(reference), Counter(m)
    names = sorted(counts_r.keys() | counts_m.keys())
    tests: dict[str, tuple[float, str]] = {}
    if len(names) > 1:
        table = [[counts_r[k] for k in names], [counts_m[k] for k in names]]
        chi2 = stats.chi2_contingency(table)
        top = ", ".join(f"{_quote(k)}: {counts_m[k]} vs {counts_r[k]}" for k in names[:4])
        tests["chi-square"] = (float(chi2.pvalue), f"chi-square p={_p(chi2.pvalue)} ({top})")
    mapping = _mapping(mirror) if secondary is None else None
    return _verdict(tests, t, label, f"{len(names)} values drawn alike on both sides", mapping)


def _mapping(sample: Sample) -> str | None:
    """Evidence of a deterministic mapping primary value → mirror value, if the primary values
    repeat enough to tell."""
    seen: dict[str | None, set[str | None]] = defaultdict(set)
    rows: Counter[str | None] = Counter()
    for p_raw, o_raw in zip(sample.p_raw, sample.o_raw, strict=True):
        seen[p_raw].add(o_raw)
        rows[p_raw] += 1
    repeated = [k for k, count in rows.items() if count >= 2]
    repeats = sum(rows[k] - 1 for k in repeated)  # rows that could have broken a mapping
    if repeats < MIN_REPEATS:
        return None
    fixed = sum(1 for k in repeated if len(seen[k]) == 1)
    kept = sum(rows[k] for k in repeated if len(seen[k]) == 1)
    if kept / sum(rows[k] for k in repeated) < DETERMINISTIC:
        return None
    return (
        f"the mirror's value is a function of the primary's: {fixed} of {len(repeated)} "
        f"repeated primary values ({kept} rows) always get the same mirror value"
    )


def _stable(sample: Sample) -> str | None:
    """Evidence that the primary answers the same value to the same request (method and path),
    if requests repeat enough to tell: then the field is not volatile on the primary's version
    itself, and a mirror that differs in it differs for real. (A volatile value differs between
    any two responses, whatever the version.)"""
    values: dict[str, list[str | None]] = defaultdict(list)
    for target, value in zip(sample.target, sample.p_raw, strict=True):
        if target:
            values[target].append(value)
    repeated = [v for v in values.values() if len(v) >= 2]
    repeats = sum(len(v) - 1 for v in repeated)
    if repeats < MIN_REPEATS:
        return None
    kept = sum(len(v) for v in repeated if len(set(v)) == 1)
    if kept / sum(len(v) for v in repeated) < DETERMINISTIC:
        return None
    return (
        f"the primary answers the same value to the same request ({len(repeated)} repeated "
        f"requests, {kept} responses): the field is stable on the primary, so the mirror's "
        "different values are not noise"
    )


def _verdict(
    tests: dict[str, tuple[float, str]],
    t: Thresholds,
    label: str,
    same: str,
    mapping: str | None,
) -> Finding:
    level = t.value_alpha / max(len(tests), 1)
    adjusted = None
    details = "; ".join(text for _, text in tests.values())
    if tests:
        adjusted = min(1.0, min(p for p, _ in tests.values()) * len(tests))
        if any(p < level for p, _ in tests.values()):
            also = f"; {mapping}" if mapping else ""
            return Finding(
                "different",
                f"{label} from different populations: {details} (α={_p(t.value_alpha)}"
                f"{_split(len(tests))}){also}",
                label,
                p_value=adjusted,
            )
    if mapping is not None:
        return Finding("different", mapping, label, p_value=adjusted)
    if not tests:
        return Finding("unknown", "no test applies", label)
    return Finding(
        "same",
        f"{same}: {details} (none below α={_p(t.value_alpha)}{_split(len(tests))})",
        f"random {label}",
        p_value=adjusted,
    )


# --- SQL ------------------------------------------------------------------------------------------


def row_check_sql(regexes: Sequence[str], check: str = "c") -> str:
    """A boolean SQL expression: does the ``diffs`` row ``d`` pass the check columns of ``check``
    (``check_kind, regex, signatures, tolerance_s, unit_s``; see :class:`RowCheck`)? True when
    there is no check.
    ``regexes`` are the checks' regexes: written as literals, so each is compiled once."""
    p_text, m_text = "sd_text(d.primary_value)", "sd_text(d.mirror_value)"
    p_num, m_num = "sd_number(d.primary_value)", "sd_number(d.mirror_value)"
    low, high = EPOCH_SECONDS
    separator = ord(KEY_SEPARATOR)
    shapes = " ".join(
        f"WHEN {check}.regex = {db.literal(r)} THEN regexp_full_match({p_text}, {db.literal(r)}) "
        f"AND regexp_full_match({m_text}, {db.literal(r)})"
        for r in sorted(set(regexes))
    )
    return f"""CASE {check}.check_kind
        WHEN 'regex' THEN coalesce(CASE {shapes or "WHEN false THEN false"} END, false)
        WHEN 'time' THEN coalesce(
            list_contains({check}.signatures, sd_signature({p_text}))
            AND list_contains({check}.signatures, sd_signature({m_text}))
            AND abs(sd_time({m_text}) - sd_time({p_text})) <= {check}.tolerance_s, false)
        WHEN 'epoch' THEN coalesce(
            {p_num} * {check}.unit_s BETWEEN {low} AND {high}
            AND {m_num} * {check}.unit_s BETWEEN {low} AND {high}
            AND abs({m_num} - {p_num}) * {check}.unit_s <= {check}.tolerance_s, false)
        WHEN 'relative' THEN coalesce(
            abs({m_num} - {p_num}) <= {check}.tolerance_s * greatest(abs({m_num}), abs({p_num})),
            false)
        WHEN 'template' THEN coalesce(
            sd_template({p_text}) = sd_template({m_text})
            AND list_contains({check}.signatures, sd_template({p_text}) || chr({separator})
                              || sd_slot_mask({p_text}, {m_text})), false)
        ELSE true END"""


# --- words --------------------------------------------------------------------------------------


def _split(tests: int) -> str:
    return f" split over {tests} tests" if tests > 1 else ""


def _p(value: float) -> str:
    return f"{value:.2g}"


def _short(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)


def _seconds(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if value < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"


def _quote(text: str, width: int = 40) -> str:
    shown = text if len(text) <= width else text[: width - 1] + "…"
    return repr(shown)
