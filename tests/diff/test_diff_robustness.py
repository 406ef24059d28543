"""Properties over generated input: nothing raises, and JSON diffs are sound."""

from __future__ import annotations

import dataclasses
import gzip
import re
from typing import Any

import brotli
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_diff_engine import pairs_table, table_rows  # tests/diff is on sys.path

from shadowdiff.diff.engine import diff_pair, diff_table
from shadowdiff.diff.json_body import JSON_TYPES
from shadowdiff.diff.model import Message
from shadowdiff.diff.paths import parse
from shadowdiff.diff.rules import Rules

RULES = (
    Rules(),
    Rules.from_mapping(
        {
            "ignore": {"headers": ["x-*"], "body": ["$..a", "$[*]"], "default_headers": False},
            "normalize": [{"pattern": "$..*", "regex": "[0-9]", "replace": "#"}],
            "tolerance": {"$..*": {"absolute": 1, "relative": 0.5}},
            "order": {"ignore": ["$", "$.*"]},
            "redact": {"body": ["$..b"], "headers": ["content-type"]},
            "limits": {"max_decoded_bytes": 64, "max_diffs_per_pair": 3},
        }
    ),
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=12,
)

bodies = st.one_of(
    st.none(),
    st.binary(max_size=200),
    json_values.map(orjson.dumps),
    json_values.map(lambda v: gzip.compress(orjson.dumps(v))),
    json_values.map(lambda v: brotli.compress(orjson.dumps(v))),
    st.binary(max_size=200).map(gzip.compress).map(lambda b: b[: len(b) // 2]),
)
header_names = st.sampled_from(
    ["content-type", "Content-Encoding", "content-length", "date", "vary", "x-a", "set-cookie"]
) | st.text(max_size=8)
header_values = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-16",
        "text/plain; charset=klingon",
        "text/html; charset=latin-1",
        "image/png",
        "gzip",
        "deflate",
        "br",
        "zstd",
        "gzip, br",
        "identity",
        "compress",
        "",
    ]
) | st.text(max_size=12)
messages = st.builds(
    Message,
    status=st.none() | st.integers(100, 599),
    headers=st.lists(st.tuples(header_names, header_values), max_size=5).map(tuple),
    body=bodies,
    truncated=st.booleans(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, messages, st.sampled_from(RULES))
def test_diff_pair_never_raises(primary: Message, mirror: Message, rules: Rules) -> None:
    result = diff_pair(primary, mirror, rules)
    for d in result.diffs:
        assert d.part in ("header", "body")
        assert d.kind in ("changed", "added", "removed", "type_changed", "order", "binary")
        for value in (d.primary_value, d.mirror_value):
            if value is not None:
                orjson.loads(value)  # every value is JSON text
        assert d.noise == (d.noise_reason is not None)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality, spelled out: numbers by value, ``true`` apart from ``1``."""
    if JSON_TYPES[type(a)] != JSON_TYPES[type(b)]:
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def element_key(value: Any) -> bytes:
    """Elements that are the same JSON value (``1``, ``1.0`` and ``-0.0`` for ``0``) share a
    key."""
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).replace(b".0", b"")
    return re.sub(rb"(?<![0-9.eE])-0(?![0-9.eE])", b"0", text)


def as_message(value: Any) -> Message:
    return Message(200, (("content-type", "application/json"),), orjson.dumps(value))


@settings(max_examples=400, deadline=None)
@given(json_values, json_values)
def test_json_rows_exist_exactly_when_documents_differ(a: Any, b: Any) -> None:
    result = diff_pair(as_message(a), as_message(b))
    assert bool(result.diffs) == (not json_equal(a, b))
    assert diff_pair(as_message(a), as_message(a)).diffs == ()
    for d in result.diffs:
        assert d.part == "body" and not d.noise
        segments = _segments(d.path)
        assert parse(d.pattern).matches(segments, prefix=False)


def _segments(path: str) -> tuple[str | int, ...]:
    """The place a rendered path names (read back through the pattern machinery)."""
    pattern = parse(path)
    found: list[str | int] = []
    for _, value in pattern.steps:
        assert value is not None, path  # an instance path has no wildcards
        found.append(value)
    return tuple(found)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, min_size=2, max_size=6, unique_by=element_key), st.randoms())
def test_a_reordered_array_is_one_order_row(items: list[Any], random: Any) -> None:
    shuffled = list(items)
    random.shuffle(shuffled)
    if [element_key(x) for x in shuffled] == [element_key(x) for x in items]:
        return
    result = diff_pair(as_message({"list": items}), as_message({"list": shuffled}))
    assert [(d.path, d.kind) for d in result.diffs] == [("$.list", "order")]


# Header text as HTTP allows it (no control characters): the table's fast path joins headers
# with control characters to compare them.
http_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8)
http_messages = st.builds(
    Message,
    status=st.just(200),
    headers=st.lists(
        st.tuples(header_names.filter(str.isprintable), header_values | http_text), max_size=5
    ).map(tuple),
    body=bodies,
    truncated=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(http_messages, http_messages), max_size=6), st.sampled_from(RULES))
def test_diff_table_agrees_with_diff_pair(
    pairs: list[tuple[Message, Message]], rules: Rules
) -> None:
    by_id = {f"r{i}": pair for i, pair in enumerate(pairs)}
    diffs, notes = diff_table(pairs_table(by_id), rules)
    rows = table_rows(diffs)
    noted = dict(zip(notes["request_id"].to_pylist(), notes["note"].to_pylist(), strict=True))
    for request_id, (primary, mirror) in by_id.items():
        result = diff_pair(primary, mirror, rules)
        assert rows.get(request_id, []) == [
            ("/api/x", *dataclasses.astuple(d)) for d in result.diffs
        ]
        assert noted.get(request_id) == result.note
