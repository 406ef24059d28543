"""Text and binary bodies: a line diff summarised as one row per changed hunk, and one ``binary``
row for bodies that are not text.

A hunk row's ``path`` is its unified-diff header (``@@ -3,2 +3,4 @@``: primary lines 3–4 against
mirror lines 3–6) and its ``pattern`` is ``$``, the whole body, so all text differences of an
endpoint group together and ``[ignore] body = ["$"]`` covers them. Its values are the hunk's lines
on each side as a JSON string (``None`` for a side with no lines), cut at :data:`MAX_HUNK_CHARS`.
Line endings are not compared (``\\r\\n`` and ``\\n`` and a missing final newline are the same).

>>> [(row[1], row[3]) for row in diff_text("a\\nb\\nc", "a\\nB\\nc", Rules())[0]]
[('@@ -2 +2 @@', 'changed')]
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections import Counter
from collections.abc import Hashable, Sequence
from difflib import SequenceMatcher

import orjson

from shadowdiff.diff.model import Kind, Row
from shadowdiff.diff.rules import Rules

MAX_HUNK_CHARS = 4096
_SMALL = 1_000_000  # above this product of lengths, split at anchors before SequenceMatcher
Opcode = tuple[str, int, int, int, int]
_KINDS: dict[str, Kind] = {"replace": "changed", "delete": "removed", "insert": "added"}


def diff_text(primary: str, mirror: str, rules: Rules) -> tuple[list[Row], str | None]:
    """One row per changed hunk of the line diff, and a note if there were too many to list."""
    a = primary.splitlines()
    b = mirror.splitlines()
    ignored = rules.ignored_body(())
    rows: list[Row] = []
    limit = rules.max_diffs_per_pair
    for tag, i1, i2, j1, j2 in opcodes(a, b):
        if tag == "equal":
            continue
        if len(rows) >= limit:
            return rows, f"more than {limit} changed hunks; only the first {limit} are listed"
        reason = ignored or _normalized(a[i1:i2], b[j1:j2], rules)
        rows.append(
            (
                "body",
                f"@@ -{_span(i1, i2)} +{_span(j1, j2)} @@",
                "$",
                _KINDS[tag],
                _lines(a[i1:i2]),
                _lines(b[j1:j2]),
                reason is not None,
                reason,
            )
        )
    return rows, None


def opcodes(a: Sequence[Hashable], b: Sequence[Hashable]) -> list[Opcode]:
    """``difflib.SequenceMatcher(None, a, b).get_opcodes()``, made fast on long inputs.

    Common heads and tails are set aside first. What is left, if long, is split at anchors
    (items found exactly once on each side, in the same order: patience diff), and only the
    pieces between anchors go to ``SequenceMatcher``, whose cost grows with the product of the
    lengths (50,000 lines with scattered changes took seconds; split, milliseconds).
    """
    found: list[Opcode] = []
    _align(a, 0, len(a), b, 0, len(b), found)
    merged: list[Opcode] = []
    for op in found:
        if op[1] == op[2] and op[3] == op[4]:
            continue
        if merged and (merged[-1][0] == "equal") == (op[0] == "equal"):
            tag, i1, _, j1, _ = merged[-1]
            if tag != "equal" and tag != op[0]:
                tag = "replace"
            merged[-1] = (tag, i1, op[2], j1, op[4])
        else:
            merged.append(op)
    return merged


def _align(
    a: Sequence[Hashable],
    alo: int,
    ahi: int,
    b: Sequence[Hashable],
    blo: int,
    bhi: int,
    out: list[Opcode],
) -> None:
    start_a, start_b = alo, blo
    while alo < ahi and blo < bhi and a[alo] == b[blo]:
        alo += 1
        blo += 1
    out.append(("equal", start_a, alo, start_b, blo))
    end_a, end_b = ahi, bhi
    while ahi > alo and bhi > blo and a[ahi - 1] == b[bhi - 1]:
        ahi -= 1
        bhi -= 1
    if (ahi - alo) * (bhi - blo) <= _SMALL:
        matcher = SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            out.append((tag, alo + i1, alo + i2, blo + j1, blo + j2))
    else:
        anchors = _anchors(a, alo, ahi, b, blo, bhi)
        if anchors:
            for i, j in anchors:
                _align(a, alo, i, b, blo, j, out)
                out.append(("equal", i, i + 1, j, j + 1))
                alo, blo = i + 1, j + 1
            _align(a, alo, ahi, b, blo, bhi, out)
        else:
            tag = "replace" if alo < ahi and blo < bhi else "delete" if alo < ahi else "insert"
            out.append((tag, alo, ahi, blo, bhi))
    out.append(("equal", ahi, end_a, bhi, end_b))


def _anchors(
    a: Sequence[Hashable], alo: int, ahi: int, b: Sequence[Hashable], blo: int, bhi: int
) -> list[tuple[int, int]]:
    """Items once on each side, as (index in a, index in b), in a longest common order."""
    count_a = Counter(a[alo:ahi])
    count_b = Counter(b[blo:bhi])
    where_b = {b[j]: j for j in range(blo, bhi) if count_b[b[j]] == 1}
    pairs = [(i, where_b[a[i]]) for i in range(alo, ahi) if count_a[a[i]] == 1 and a[i] in where_b]
    # Longest increasing run of b-indexes (patience sorting), with back-links to rebuild it.
    tails: list[int] = []
    tail_at: list[int] = []
    back: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect_left(tails, j)
        if pos:
            back[k] = tail_at[pos - 1]
        if pos == len(tails):
            tails.append(j)
            tail_at.append(k)
        else:
            tails[pos] = j
            tail_at[pos] = k
    chain = []
    k = tail_at[-1] if tail_at else -1
    while k >= 0:
        chain.append(pairs[k])
        k = back[k]
    return chain[::-1]


def binary_row(primary: bytes, mirror: bytes, rules: Rules) -> Row:
    """The one row for two bodies that differ and are not both text: sizes and sha256 hashes."""
    reason = rules.ignored_body(())
    return (
        "body",
        "$",
        "$",
        "binary",
        _fingerprint(primary),
        _fingerprint(mirror),
        reason is not None,
        reason,
    )


def _fingerprint(data: bytes) -> str:
    return orjson.dumps({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}).decode()


def _normalized(a: list[str], b: list[str], rules: Rules) -> str | None:
    # Normalisers on ``$`` apply line by line, so ``$`` in their regex is the end of a line.
    if not rules.normalize or len(a) != len(b) or not a:
        return None
    reason = None
    for line_a, line_b in zip(a, b, strict=True):
        reason = rules.normalized((), line_a, line_b)
        if reason is None:
            return None
    return reason


def _span(start: int, stop: int) -> str:
    """A unified-diff range (1-based ``start,count``; ``start`` alone for one line)."""
    count = stop - start
    if count == 1:
        return str(start + 1)
    if count == 0:
        return f"{start},0"
    return f"{start + 1},{count}"


def _lines(lines: list[str]) -> str | None:
    if not lines:
        return None
    text = "\n".join(lines)
    if len(text) > MAX_HUNK_CHARS:
        text = text[:MAX_HUNK_CHARS] + "…"
    return orjson.dumps(text).decode()
