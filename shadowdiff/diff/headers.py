"""Response header differences: names compared case-insensitively, repeated headers as lists.

A header present on one side only is ``added``/``removed``; with other values it is ``changed``;
a repeated header with the same values in another order is ``order``. ``path`` and ``pattern``
are the lowercase name; a value is a JSON string, or a JSON array of strings for a repeated one.

Some headers differ on every response, whatever the version (:data:`ALWAYS_DIFFERENT`): they are
not compared (``[ignore] default_headers = false`` turns that off). ``content-length`` and
``transfer-encoding`` (:data:`FRAMING`) describe how a body was sent, so they are compared only
when the bodies really differ or were not captured (then they are the only evidence); not when
the bodies are equal, differ only in noise, or are truncated and cannot be compared. Headers a
rule ignores are rows with ``noise``. Redacted headers are compared redacted: only their presence
can differ.

>>> diff((("X-A", "1"),), (("x-a", "2"),), Rules())
[('header', 'x-a', 'x-a', 'changed', '"1"', '"2"', False, None)]
"""

from __future__ import annotations

from collections.abc import Iterable

from shadowdiff.diff.json_body import dumps
from shadowdiff.diff.model import Kind, Row, redacted
from shadowdiff.diff.rules import Rules

ALWAYS_DIFFERENT = frozenset(
    {"date", "age", "expires", "server", "x-request-id", "x-envoy-upstream-service-time"}
)
FRAMING = frozenset({"content-length", "transfer-encoding"})


def collect(headers: Iterable[tuple[str, str]], rules: Rules) -> dict[str, list[str]]:
    """Lowercase name → values in order (stripped; redacted where the rules say)."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        text = redacted(value.strip()) if rules.redacts_header(key) else value.strip()
        found.setdefault(key, []).append(text)
    return found


def compared(name: str, rules: Rules, body_settled: bool) -> bool:
    """Whether header ``name`` (lowercase) is compared at all."""
    if rules.default_headers and name in ALWAYS_DIFFERENT:
        return False
    return not (body_settled and name in FRAMING)


def diff(
    primary: Iterable[tuple[str, str]],
    mirror: Iterable[tuple[str, str]],
    rules: Rules,
    body_settled: bool = False,
) -> list[Row]:
    """The header rows of a pair (``Diff`` fields as tuples); ``body_settled``: the bodies have
    no real difference or cannot be compared (see :class:`~shadowdiff.diff.body.BodyResult`)."""
    a = collect(primary, rules)
    b = collect(mirror, rules)
    rows: list[Row] = []
    for name in dict.fromkeys([*a, *b]):
        values_a = a.get(name)
        values_b = b.get(name)
        if values_a == values_b or not compared(name, rules, body_settled):
            continue
        kind: Kind
        if values_a is None:
            kind = "added"
        elif values_b is None:
            kind = "removed"
        elif sorted(values_a) == sorted(values_b):
            kind = "order"
        else:
            kind = "changed"
        reason = rules.ignored_header(name)
        rows.append(
            (
                "header",
                name,
                name,
                kind,
                _value(values_a),
                _value(values_b),
                reason is not None,
                reason,
            )
        )
    return rows


def redact(headers: Iterable[tuple[str, str]], rules: Rules) -> tuple[tuple[str, str], ...]:
    """``headers`` with the value of every redacted header replaced by ``"[redacted]"`` (a
    value a run has tagged already stays as it is)."""
    return tuple(
        (name, redacted(value) if rules.redacts_header(name.lower()) else value)
        for name, value in headers
    )


def _value(values: list[str] | None) -> str | None:
    if values is None:
        return None
    return dumps(values[0] if len(values) == 1 else values)
