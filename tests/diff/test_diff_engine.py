from __future__ import annotations

import dataclasses
import gzip
import json
from typing import Any

import pyarrow as pa
import pytest

from shadowdiff import schema
from shadowdiff.diff import body, engine
from shadowdiff.diff.engine import NOTES, diff_pair, diff_table, redact_message, redact_table
from shadowdiff.diff.model import Message
from shadowdiff.diff.rules import Rules

JSON = ("content-type", "application/json")
GZIP = ("content-encoding", "gzip")
RULES = Rules.from_mapping(
    {"ignore": {"body": ["$.served_at"], "headers": ["x-cache"]}, "redact": {"body": ["$..token"]}}
)


def tmessage(body: bytes | None = b'{"a": 1}', *headers: tuple[str, str], **kw: Any) -> Message:
    """A JSON response with the always-different headers set to fresh values."""
    stamp = tmessage.counter = getattr(tmessage, "counter", 0) + 1
    base = (JSON, ("date", f"Sat, 28 Nov 2026 10:00:{stamp % 60:02d} GMT"), ("server", "envoy"))
    return Message(200, base + headers, body, kw.get("truncated", False))


def pairs_table(pairs: dict[str, tuple[Message, Message]]) -> pa.Table:
    def headers(m: Message) -> list[dict[str, str]]:
        return [{"name": n, "value": v} for n, v in m.headers]

    return pa.table(
        {
            "request_id": list(pairs),
            "endpoint": ["/api/x"] * len(pairs),
            "primary_response_headers": [headers(p) for p, _ in pairs.values()],
            "mirror_response_headers": [headers(m) for _, m in pairs.values()],
            "primary_response_body": [p.body for p, _ in pairs.values()],
            "mirror_response_body": [m.body for _, m in pairs.values()],
            "primary_truncated": [p.truncated for p, _ in pairs.values()],
            "mirror_truncated": [m.truncated for _, m in pairs.values()],
        },
        schema=pa.schema(
            [
                ("request_id", pa.string()),
                ("endpoint", pa.string()),
                ("primary_response_headers", schema.HEADERS),
                ("mirror_response_headers", schema.HEADERS),
                ("primary_response_body", pa.binary()),
                ("mirror_response_body", pa.binary()),
                ("primary_truncated", pa.bool_()),
                ("mirror_truncated", pa.bool_()),
            ]
        ),
    )


PAIRS: dict[str, tuple[Message, Message]] = {
    "same": (tmessage(), tmessage()),
    "same-reordered": (tmessage(b'{"a": 1, "b": 2}'), tmessage(b'{"b": 2, "a": 1}')),
    "changed": (tmessage(b'{"a": 1}'), tmessage(b'{"a": 2}')),
    "noise-only": (tmessage(b'{"served_at": 1}'), tmessage(b'{"served_at": 2}')),
    "header-added": (tmessage(), tmessage(b'{"a": 1}', ("x-api-version", "2"))),
    "header-noise": (tmessage(b"{}", ("x-cache", "HIT")), tmessage(b"{}", ("x-cache", "MISS"))),
    "gzip-vs-plain": (
        tmessage(gzip.compress(b'{"a": 1}'), GZIP),
        tmessage(gzip.compress(b'{"a": 1}', 1), GZIP),
    ),
    "bad-gzip": (tmessage(b"nope", GZIP), tmessage(gzip.compress(b'{"a": 1}'), GZIP)),
    "truncated": (tmessage(b'{"a": 1', truncated=True), tmessage(b'{"a": 2}')),
    "uncaptured": (tmessage(None), tmessage(b'{"a": 2}')),
    "no-bodies": (tmessage(None), tmessage(None)),
    "length": (
        tmessage(b'{"a": 1}', ("content-length", "8")),
        tmessage(b'{"a": 10}', ("content-length", "9")),
    ),
    "secret": (tmessage(b'{"token": "a", "n": 1}'), tmessage(b'{"token": "b", "n": 2}')),
    "text": (
        Message(200, (("content-type", "text/plain"),), b"a\nb\n"),
        Message(200, (("content-type", "text/plain"),), b"a\nc\n"),
    ),
}


def table_rows(diffs: pa.Table) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for row in diffs.to_pylist():
        found.setdefault(row.pop("request_id"), []).append(tuple(row.values()))
    return found


def test_diff_table_agrees_with_diff_pair() -> None:
    diffs, notes = diff_table(pairs_table(PAIRS), RULES)
    assert diffs.schema == schema.DIFFS
    assert notes.schema == NOTES
    got = table_rows(diffs)
    noted = dict(zip(notes["request_id"].to_pylist(), notes["note"].to_pylist(), strict=True))
    for request_id, (primary, mirror) in PAIRS.items():
        result = diff_pair(primary, mirror, RULES)
        expected = [("/api/x", *dataclasses.astuple(d)) for d in result.diffs]
        assert got.get(request_id, []) == expected, request_id
        assert noted.get(request_id) == result.note, request_id


def test_what_each_pair_gives() -> None:
    diffs, notes = diff_table(pairs_table(PAIRS), RULES)
    got = {k: [(r[1], r[2], r[4], r[7]) for r in v] for k, v in table_rows(diffs).items()}
    assert got == {
        "changed": [("body", "$.a", "changed", False)],
        "noise-only": [("body", "$.served_at", "changed", True)],
        "header-added": [("header", "x-api-version", "added", False)],
        "header-noise": [("header", "x-cache", "changed", True)],
        "bad-gzip": [("body", "@@ -1 +1 @@", "changed", False)],
        "length": [
            ("header", "content-length", "changed", False),
            ("body", "$.a", "changed", False),
        ],
        "secret": [("body", "$.n", "changed", False)],
        "text": [("body", "@@ -2 +2 @@", "changed", False)],
    }
    assert sorted(notes["request_id"].to_pylist()) == ["bad-gzip", "truncated", "uncaptured"]


def test_quiet_pairs_never_reach_the_per_pair_code(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    compare = body.compare

    def spy(primary: Any, mirror: Any, rules: Rules) -> Any:
        seen.append(primary[0])
        return compare(primary, mirror, rules)

    monkeypatch.setattr(body, "compare", spy)
    quiet = {f"q{i}": (tmessage(b'{"a": %d}' % i), tmessage(b'{"a": %d}' % i)) for i in range(50)}
    diff_table(pairs_table({**quiet, "changed": PAIRS["changed"]}), RULES)
    assert seen == [b'{"a": 1}']


def test_slices_chunks_and_missing_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_SLICE", 3)
    table = pairs_table(PAIRS)
    whole = table_rows(diff_table(table, RULES)[0])
    chunked = pa.concat_tables([table.slice(0, 5), table.slice(5)])
    assert table_rows(diff_table(chunked, RULES)[0]) == whole
    bare = table.drop_columns(["endpoint", "primary_truncated", "mirror_truncated"])
    diffs, _ = diff_table(bare, RULES)
    assert set(diffs["endpoint"].to_pylist()) == {None}
    assert diffs.num_rows > 0


def test_headers_captured_on_one_side_only() -> None:
    table = pairs_table({"r": (tmessage(), tmessage())})
    table = table.set_column(2, "primary_response_headers", pa.nulls(1, schema.HEADERS))
    diffs, notes = diff_table(table, RULES)
    assert diffs.num_rows == 0
    assert notes.to_pylist() == [
        {"request_id": "r", "note": "primary headers not captured; headers not compared"}
    ]


def test_an_unexpected_failure_costs_one_pair_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(primary: Any, mirror: Any, rules: Rules) -> Any:
        if primary[0] == b'{"a": 1}':
            raise ValueError("boom")
        return body.BodyResult([], [], True)

    monkeypatch.setattr(body, "compare", broken)
    diffs, notes = diff_table(pairs_table({"x": PAIRS["changed"], "y": PAIRS["secret"]}), RULES)
    assert diffs.num_rows == 0
    assert notes.to_pylist() == [
        {"request_id": "x", "note": "not diffed: internal error ValueError: boom"}
    ]


def test_empty_table() -> None:
    diffs, notes = diff_table(pairs_table({}), RULES)
    assert diffs.num_rows == 0 and diffs.schema == schema.DIFFS
    assert notes.num_rows == 0 and notes.schema == NOTES


# --- redaction ---------------------------------------------------------------------------------

REDACT = Rules.from_mapping(
    {"redact": {"headers": ["x-session"], "body": ["$.user.email", "$..token"]}}
)


def test_redact_message_headers_and_body() -> None:
    message = Message(
        200,
        (JSON, ("Authorization", "Bearer x"), ("x-session", "s"), ("x-ok", "1")),
        b'{"user": {"email": "a@b", "name": "Ada"}, "list": [{"token": "t"}]}',
    )
    redacted = redact_message(message, REDACT)
    assert redacted.headers == (
        JSON,
        ("Authorization", "[redacted]"),
        ("x-session", "[redacted]"),
        ("x-ok", "1"),
    )
    assert json.loads(redacted.body or b"") == {
        "user": {"email": "[redacted]", "name": "Ada"},
        "list": [{"token": "[redacted]"}],
    }


def test_redact_keeps_the_encoding_and_untouched_bodies() -> None:
    plain = b'{"user": {"name": "Ada"}}'
    assert body.redact(plain, "application/json", None, REDACT) is plain
    assert body.redact(b"token: abc", "text/plain", None, REDACT) == b"token: abc"
    encoded = gzip.compress(b'{"token": "t", "n": 1}')
    redacted = body.redact(encoded, "application/json", "gzip", REDACT)
    assert json.loads(gzip.decompress(redacted or b"")) == {"token": "[redacted]", "n": 1}


def test_a_json_body_that_cannot_be_read_is_redacted_whole() -> None:
    cut = b'{"user": {"email": "a@b", "name": "A'
    assert body.redact(cut, "application/json", None, REDACT) == b'"[redacted]"'
    assert body.redact(b'{"note": "no secrets here', None, None, REDACT).startswith(b'{"note"')


def test_redact_table() -> None:
    rows = {
        "request_id": ["1", "2", "3"],
        "response_headers": [
            [{"name": "Cookie", "value": "c"}, {"name": "x-ok", "value": "1"}],
            None,
            [{"name": "content-encoding", "value": "gzip"}],
        ],
        "response_body": [
            b'{"token": "t"}',
            None,
            gzip.compress(b'{"user": {"email": "e"}}'),
        ],
    }
    table = pa.table(
        rows,
        schema=pa.schema(
            [
                ("request_id", pa.string()),
                ("response_headers", schema.HEADERS),
                ("response_body", pa.binary()),
            ]
        ),
    )
    out = redact_table(table, REDACT)
    assert out.schema == table.schema
    assert out["response_headers"].to_pylist() == [
        [{"name": "Cookie", "value": "[redacted]"}, {"name": "x-ok", "value": "1"}],
        None,
        [{"name": "content-encoding", "value": "gzip"}],
    ]
    bodies = out["response_body"].to_pylist()
    assert json.loads(bodies[0]) == {"token": "[redacted]"}
    assert bodies[1] is None
    assert json.loads(gzip.decompress(bodies[2])) == {"user": {"email": "[redacted]"}}
