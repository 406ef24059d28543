"""Structural diff of two parsed JSON documents, and redaction of one.

The walk compares like JSON does: object key order never matters, ``1`` equals ``1.0``, ``true``
is not ``1``. It yields one row per difference:

- ``changed``: a scalar with another value of the same JSON type (floats that differ only in
  their representation, within ``Rules.float_relative``, are equal: no row);
- ``type_changed``: another JSON type (``null``, boolean, number, string, array, object);
- ``added`` / ``removed``: a key or array element on one side only;
- ``order``: an array holding the same elements in another order, one row for the array.

Arrays that differ otherwise are aligned on their elements (like a line diff), so an element
inserted at the front is one ``added`` row, not a change at every index.

>>> diff({"a": [{"n": 1}]}, {"a": [{"n": 2}]}, Rules())[0]
[('body', '$.a[0].n', '$.a[*].n', 'changed', '1', '2', False, None)]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from shadowdiff.diff.model import REDACTED, Row
from shadowdiff.diff.paths import Pattern, Segment, render, render_pattern
from shadowdiff.diff.rules import Rules
from shadowdiff.diff.text_body import opcodes

_SORTED = orjson.OPT_SORT_KEYS
_MISSING = object()

JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}

# (kind, segments, primary value, mirror value, noise reason)
_Raw = tuple[str, tuple[Segment, ...], Any, Any, str | None]


class _TooMany(Exception):
    pass


def canonical(value: Any) -> bytes:
    """A byte string equal for equal JSON values (keys sorted, ``true`` apart from ``1``).

    Raises ``orjson.JSONEncodeError`` for documents nested deeper than orjson writes."""
    return orjson.dumps(value, option=_SORTED)


def dumps(value: Any) -> str:
    """``value`` as compact JSON text (a ``diffs`` value)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # deeper than orjson writes, or a lone surrogate
        import json

        return json.dumps(value, separators=(",", ":"))


def diff(primary: Any, mirror: Any, rules: Rules) -> tuple[list[Row], str | None]:
    """Every difference between two parsed documents (as ``Diff`` rows), and a note if there
    were too many to list.

    May raise ``RecursionError`` for documents nested about a thousand levels deep; the caller
    compares those as text."""
    walk = _Walk(rules, rules.max_diffs_per_pair)
    note = None
    try:
        walk.value(primary, mirror)
    except _TooMany:
        note = f"more than {walk.limit} body differences; only the first {walk.limit} are listed"
    return [_row(raw) for raw in walk.out], note


def _row(raw: _Raw) -> Row:
    kind, segments, a, b, reason = raw
    return (
        "body",
        render(segments),
        render_pattern(segments),
        kind,  # type: ignore[return-value]
        None if a is _MISSING else dumps(a),
        None if b is _MISSING else dumps(b),
        reason is not None,
        reason,
    )


def equal(a: Any, b: Any) -> bool:
    """A quick, strict test of JSON equality: ``==`` first (C speed, but it lets ``true`` pass
    for ``1``), then for containers their canonical forms, which tell those apart. ``False`` can
    still mean equal by value (``1`` and ``1.0`` are written differently): the walk decides."""
    if a != b:
        return False
    if type(a) is not type(b):
        return JSON_TYPES.get(type(a)) == JSON_TYPES.get(type(b))
    if type(a) is not dict and type(a) is not list:
        return True
    return _same(a, b)


def _same(a: Any, b: Any) -> bool:
    """Strict equality of two containers, by their canonical forms (serialised in C: faster than
    ``==``, which also lets ``true`` pass for ``1``)."""
    try:
        return orjson.dumps(a, option=_SORTED) == orjson.dumps(b, option=_SORTED)
    except orjson.JSONEncodeError:
        return False


def _key(value: Any) -> bytes:
    """An array element's identity for alignment: its canonical form, with whole floats written
    as integers (``1.0`` is the element ``1``)."""
    try:
        key = canonical(value)
        if _WHOLE_FLOAT.search(key):
            key = canonical(_whole(value))
        return key
    except orjson.JSONEncodeError:
        return repr(_whole(value)).encode()


# How orjson writes a float that may be whole (``3.0``, ``1e16``); strings can match too, which
# only costs a second pass.
_WHOLE_FLOAT = re.compile(rb"\d\.0(?!\d)|\de")


def _whole(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    if kind is list:
        return [_whole(v) for v in value]
    if kind is dict:
        return {k: _whole(v) for k, v in value.items()}
    return value


class _Walk:
    __slots__ = ("rules", "limit", "out", "path")

    def __init__(self, rules: Rules, limit: int) -> None:
        self.rules = rules
        self.limit = limit
        self.out: list[_Raw] = []
        self.path: list[Segment] = []

    def emit(
        self, kind: str, a: Any, b: Any, reason: str | None = None, segments: Any = None
    ) -> None:
        if segments is None:
            segments = tuple(self.path)
        ignored = self.rules.ignored_body(segments)
        self.out.append((kind, segments, a, b, ignored or reason))
        if len(self.out) >= self.limit:
            raise _TooMany

    def value(self, a: Any, b: Any) -> None:
        ta = type(a)
        tb = type(b)
        if ta is tb:
            if ta is dict:
                self.object(a, b)
            elif ta is list:
                self.array(a, b)
            elif a != b:
                self.changed(a, b, ta)
        elif JSON_TYPES.get(ta) != JSON_TYPES.get(tb):
            self.emit("type_changed", a, b)
        elif a != b:  # an int and a float
            self.changed(a, b, float)

    def changed(self, a: Any, b: Any, kind: type) -> None:
        segments = tuple(self.path)
        rules = self.rules
        reason = None
        if kind is str:
            if rules.normalize:
                reason = rules.normalized(segments, a, b)
        elif kind is not bool:
            if rules.float_relative and rules.same_float(a, b):
                return  # the same number, written differently: no difference at all
            if rules.tolerance:
                reason = rules.tolerated(segments, a, b)
        self.emit("changed", a, b, reason, segments)

    def object(self, a: dict[str, Any], b: dict[str, Any]) -> None:
        path = self.path
        dumps = orjson.dumps
        removed = 0
        for k, va in a.items():
            vb = b.get(k, _MISSING)
            tv = type(va)
            if tv is type(vb):
                if tv is dict or tv is list:
                    # Serialised in C: faster than ``==``, which lets ``true`` pass for ``1``.
                    # Deeper than orjson writes raises: the caller then compares as text.
                    if dumps(va, option=_SORTED) == dumps(vb, option=_SORTED):
                        continue
                elif va == vb:
                    continue
            elif vb is _MISSING:
                removed += 1
                path.append(k)
                self.emit("removed", va, _MISSING)
                path.pop()
                continue
            path.append(k)
            self.value(va, vb)
            path.pop()
        if len(b) > len(a) - removed:
            for k, vb in b.items():
                if k not in a:
                    path.append(k)
                    self.emit("added", _MISSING, vb)
                    path.pop()

    def array(self, a: list[Any], b: list[Any]) -> None:
        ka = [_key(x) for x in a]
        kb = [_key(x) for x in b]
        if ka == kb:
            return
        free = self.rules.order_free(tuple(self.path))
        if len(a) == len(b) and sorted(ka) == sorted(kb):
            self.emit("order", a, b, free)
        elif free:
            self.multiset(a, b, ka, kb)
        else:
            self.aligned(a, b, ka, kb)

    def aligned(self, a: list[Any], b: list[Any], ka: list[bytes], kb: list[bytes]) -> None:
        path = self.path
        for tag, i1, i2, j1, j2 in opcodes(ka, kb):
            if tag == "equal":
                continue
            paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            for n in range(paired):
                path.append(i1 + n)
                self.value(a[i1 + n], b[j1 + n])
                path.pop()
            self.extra(a, range(i1 + paired, i2), b, range(j1 + paired, j2))

    def multiset(self, a: list[Any], b: list[Any], ka: list[bytes], kb: list[bytes]) -> None:
        """An order-insensitive array: elements matched by value wherever they are; what is left
        is paired in order (a changed element) and the rest is added or removed."""
        waiting: dict[bytes, list[int]] = {}
        for j in reversed(range(len(kb))):
            waiting.setdefault(kb[j], []).append(j)
        left_a = []
        for i, k in enumerate(ka):
            found = waiting.get(k)
            if found:
                found.pop()
            else:
                left_a.append(i)
        left_b = sorted(j for found in waiting.values() for j in found)
        paired = min(len(left_a), len(left_b))
        path = self.path
        for i, j in zip(left_a[:paired], left_b[:paired], strict=True):
            path.append(i)
            self.value(a[i], b[j])
            path.pop()
        self.extra(a, left_a[paired:], b, left_b[paired:])

    def extra(
        self, a: list[Any], only_a: range | list[int], b: list[Any], only_b: range | list[int]
    ) -> None:
        path = self.path
        for i in only_a:
            path.append(i)
            self.emit("removed", a[i], _MISSING)
            path.pop()
        for j in only_b:
            path.append(j)
            self.emit("added", _MISSING, b[j])
            path.pop()


# --- redaction ---------------------------------------------------------------------------------


def redact(
    document: Any, patterns: tuple[Pattern, ...], hide: Callable[[Any], Any] | None = None
) -> tuple[Any, bool]:
    """``document`` with the value at every place ``patterns`` name replaced by ``hide(value)``
    (by default ``"[redacted]"``), and whether anything was replaced. The input is not
    modified; untouched subtrees are shared."""
    if not patterns:
        return document, False
    hidden = hide or _hidden
    states = tuple((p, p.start()) for p in patterns)
    if any(p.done(s) for p, s in states):
        return hidden(document), True
    return _redact(document, states, hidden)


def _hidden(_value: Any) -> str:
    return REDACTED


_States = tuple[tuple[Pattern, frozenset[int]], ...]


def _redact(node: Any, states: _States, hide: Callable[[Any], Any]) -> tuple[Any, bool]:
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return node, False
    changed = False
    out: dict[Any, Any] = {}
    for seg, value in items:
        below = tuple((p, moved) for p, s in states if (moved := p.step(s, seg)))
        if below:
            if any(p.done(s) for p, s in below):
                value, hit = hide(value), True
            else:
                value, hit = _redact(value, below, hide)
            changed = changed or hit
        out[seg] = value
    if not changed:
        return node, False
    return (out if isinstance(node, dict) else list(out.values())), True
