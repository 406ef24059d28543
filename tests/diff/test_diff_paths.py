from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.diff.paths import PathError, parse, render, render_pattern


@pytest.mark.parametrize(
    ("segments", "path", "pattern"),
    [
        ((), "$", "$"),
        (("entries", 3, "likes"), "$.entries[3].likes", "$.entries[*].likes"),
        (("a.b",), "$['a.b']", "$['a.b']"),
        (("it's",), "$['it\\'s']", "$['it\\'s']"),
        (("back\\slash",), "$['back\\\\slash']", "$['back\\\\slash']"),
        (("content-type", 0), "$['content-type'][0]", "$['content-type'][*]"),
        (("",), "$['']", "$['']"),
        (("*",), "$['*']", "$['*']"),
        ((0, 1, "_x9"), "$[0][1]._x9", "$[*][*]._x9"),
        (("9lives",), "$['9lives']", "$['9lives']"),
    ],
)
def test_render(segments: tuple[str | int, ...], path: str, pattern: str) -> None:
    assert render(segments) == path
    assert render_pattern(segments) == pattern


segment = st.one_of(st.integers(min_value=0, max_value=10**6), st.text(max_size=8))


@given(st.lists(segment, max_size=6).map(tuple))
def test_a_rendered_path_parses_back_to_itself(segments: tuple[str | int, ...]) -> None:
    assert parse(render(segments)).matches(segments, prefix=False)
    assert parse(render_pattern(segments)).matches(segments, prefix=False)


@pytest.mark.parametrize(
    ("pattern", "segments", "prefix", "expected"),
    [
        ("$.served_at", ("served_at",), False, True),
        ("$.served_at", ("served_at", "x"), True, True),
        ("$.served_at", ("served_at", "x"), False, False),
        ("$.served_at", ("served",), True, False),
        ("$..trace_id", ("trace_id",), False, True),
        ("$..trace_id", ("spans", 0, "trace_id"), False, True),
        ("$..trace_id", ("spans", 0, "name"), True, False),
        ("$.items[*].took_ms", ("items", 7, "took_ms"), False, True),
        ("$.items[*].took_ms", ("items", "7", "took_ms"), False, False),
        ("$.items[2].took_ms", ("items", 7, "took_ms"), False, False),
        ("$.items[7]", ("items", 7, "took_ms"), True, True),
        ("$.*.id", ("user", "id"), False, True),
        ("$.*.id", (0, "id"), False, False),
        ("$..[*]", ("a", "b", 3), False, True),
        ("$['a.b'].c", ("a.b", "c"), False, True),
        ('$["a.b"].c', ("a.b", "c"), False, True),
        ("$.content-type", ("content-type",), False, True),
        ("$", ("anything", 1), True, True),
        ("$", (), False, True),
        ("$..a..b", ("a", "x", "b"), False, True),
        ("$..a..b", ("b", "a"), False, False),
    ],
)
def test_matches(
    pattern: str, segments: tuple[str | int, ...], prefix: bool, expected: bool
) -> None:
    assert parse(pattern).matches(segments, prefix=prefix) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("served_at", "must start with '$'"),
        ("$.", "expected a key at position 2"),
        ("$..", "ends with '..'"),
        ("$[x]", "bad bracket at position 1"),
        ("$['a", "bad bracket"),
        ("$ .a", "unexpected ' ' at position 1"),
    ],
)
def test_parse_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(PathError, match=message.replace("[", r"\[").replace("$", r"\$")):
        parse(text)


def test_keys_are_the_literal_keys() -> None:
    assert parse("$.user[*]..token['a.b']").keys == ("user", "token", "a.b")
