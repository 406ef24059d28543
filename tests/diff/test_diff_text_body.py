from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.diff import text_body
from shadowdiff.diff.rules import Rules
from shadowdiff.diff.text_body import MAX_HUNK_CHARS, diff_text, opcodes

items = st.lists(st.integers(0, 6), max_size=30)


def check(a: list[int], b: list[int]) -> None:
    ops = opcodes(a, b)
    if not (a or b):
        return
    assert (ops[0][1], ops[0][3], ops[-1][2], ops[-1][4]) == (0, 0, len(a), len(b))
    for left, right in zip(ops, ops[1:], strict=False):
        assert (left[2], left[4]) == (right[1], right[3])  # contiguous
        assert (left[0] == "equal") != (right[0] == "equal")  # runs are merged
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            assert a[i1:i2] == b[j1:j2]
        else:
            assert tag == {(True, True): "replace", (True, False): "delete"}.get(
                (i2 > i1, j2 > j1), "insert"
            )


@settings(deadline=None)
@given(items, items)
def test_opcodes_describe_the_edit(a: list[int], b: list[int]) -> None:
    check(a, b)


@settings(deadline=None)
@given(items, items)
def test_opcodes_split_at_anchors_still_describe_the_edit(a: list[int], b: list[int]) -> None:
    small = text_body._SMALL
    text_body._SMALL = 4  # force the anchor path on small inputs
    try:
        check(a, b)
    finally:
        text_body._SMALL = small


def test_long_texts_with_scattered_changes_are_fast() -> None:
    rng = random.Random(1)
    lines = [f"line {i} {rng.random()}" for i in range(50_000)]
    changed = list(lines)
    for i in range(0, len(changed), 97):
        changed[i] = "changed " + changed[i]
    start = time.process_time()
    rows, note = diff_text("\n".join(lines), "\n".join(changed), Rules())
    assert time.process_time() - start < 5  # SequenceMatcher alone: about 10 s here
    assert len(rows) == 516 and note is None
    assert rows[1][1] == "@@ -98 +98 @@"


def test_hunks_are_cut_and_capped() -> None:
    rows, _ = diff_text("a", "x" * (MAX_HUNK_CHARS + 10), Rules())
    assert rows[0][5] == '"' + "x" * MAX_HUNK_CHARS + '…"'
    rules = Rules.from_mapping({"limits": {"max_diffs_per_pair": 2}})
    rows, note = diff_text("a\nb\nc\nd\ne", "A\nb\nC\nd\nE", rules)
    assert len(rows) == 2
    assert note == "more than 2 changed hunks; only the first 2 are listed"


@pytest.mark.parametrize(
    ("rules", "reason"),
    [
        ({"ignore": {"body": ["$"]}}, "rule: ignore $"),
        ({"normalize": [{"pattern": "$", "regex": r"\d{2}:\d{2}", "replace": "<t>"}]}, None),
    ],
)
def test_rules_on_text(rules: dict[str, object], reason: str | None) -> None:
    rows, _ = diff_text("at 10:00\nok", "at 10:01\nok", Rules.from_mapping(rules))
    assert [(r[1], r[6], r[7]) for r in rows] == [
        ("@@ -1 +1 @@", True, reason or "rule: normalize $")
    ]
