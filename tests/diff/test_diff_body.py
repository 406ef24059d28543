"""Body comparison through :func:`diff_pair`: decoding, shapes, notes."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import brotli
import pytest
import zstandard

from shadowdiff.diff.engine import diff_pair
from shadowdiff.diff.model import Message, PairResult
from shadowdiff.diff.rules import Rules

JSON = ("content-type", "application/json")


def message(body: bytes | None, *headers: tuple[str, str], truncated: bool = False) -> Message:
    return Message(200, tuple(headers), body, truncated)


def body_rows(result: PairResult) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (d.path, d.kind, d.primary_value, d.mirror_value) for d in result.diffs if d.part == "body"
    ]


def doc(**fields: Any) -> bytes:
    return json.dumps({"id": 7, "entries": [1, 2, 3], **fields}).encode()


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", lambda b: gzip.compress(b, compresslevel=9)),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),
        ("br", brotli.compress),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_encoded_bodies_are_compared_decoded(coding: str, encode: Any) -> None:
    primary = message(gzip.compress(doc(), compresslevel=1), JSON, ("content-encoding", "gzip"))
    same = message(encode(doc()), JSON, ("content-encoding", coding))
    other = message(encode(doc(served=2)), JSON, ("content-encoding", coding))
    assert body_rows(diff_pair(primary, same)) == []
    assert body_rows(diff_pair(primary, other)) == [("$.served", "added", None, "2")]


def test_gzip_levels_differ_in_bytes_not_in_meaning() -> None:
    """The lab's /api/report: level 6 against level 9, and the lengths differ accordingly."""
    body = json.dumps({"rows": [{"n": i, "v": "x" * (i % 7)} for i in range(300)]}).encode()
    six, nine = gzip.compress(body, 6, mtime=0), gzip.compress(body, 9, mtime=0)
    assert six != nine
    primary = message(six, JSON, ("content-encoding", "gzip"), ("content-length", str(len(six))))
    mirror = message(nine, JSON, ("content-encoding", "gzip"), ("content-length", str(len(nine))))
    assert diff_pair(primary, mirror) == PairResult()


def test_a_bomb_is_not_compared() -> None:
    bomb = gzip.compress(b"[" + b"0," * 600_000 + b"0]")
    rules = Rules.from_mapping({"limits": {"max_decoded_bytes": 100_000}})
    result = diff_pair(
        message(bomb, JSON, ("content-encoding", "gzip")), message(b"[0]", JSON), rules
    )
    assert body_rows(result) == []
    assert result.note == (
        "primary body: decoded body larger than 100000 bytes (content-encoding gzip); "
        "truncated; bodies not compared"
    )


def test_a_body_that_claims_gzip_gets_a_note_and_is_compared_as_received() -> None:
    result = diff_pair(
        message(b'{"a": 1}', JSON, ("content-encoding", "gzip")),
        message(gzip.compress(b'{"a": 2}'), JSON, ("content-encoding", "gzip")),
    )
    assert result.note is not None
    assert result.note.startswith("primary body: content-encoding gzip, but the body is not gzip")
    assert body_rows(result) == [("$.a", "changed", "1", "2")]


@pytest.mark.parametrize(
    ("primary", "mirror", "note"),
    [
        (True, False, "primary body truncated by the capture; bodies not compared"),
        (False, True, "mirror body truncated by the capture; bodies not compared"),
        (True, True, "primary and mirror body truncated by the capture; bodies not compared"),
    ],
)
def test_a_truncated_body_is_not_comparable(primary: bool, mirror: bool, note: str) -> None:
    result = diff_pair(
        message(b'{"a": 1, "b":', JSON, truncated=primary),
        message(b'{"a": 2, "b": [', JSON, truncated=mirror),
    )
    assert result == PairResult((), note)


def test_a_body_captured_on_one_side_only() -> None:
    result = diff_pair(message(None, JSON), message(b"{}", JSON))
    assert result == PairResult((), "primary body not captured; bodies not compared")
    assert diff_pair(message(None), message(None)) == PairResult()


def test_json_content_type_with_a_non_json_body_is_text_and_a_note() -> None:
    result = diff_pair(message(b"ok\nfine", JSON), message(b"ok\nbroken", JSON))
    assert body_rows(result) == [("@@ -2 +2 @@", "changed", '"fine"', '"broken"')]
    assert result.note is not None
    assert result.note.count("body: content-type application/json, but the body is not JSON") == 2


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
def test_json_is_sniffed(content_type: str | None) -> None:
    headers = [("content-type", content_type)] if content_type else []
    result = diff_pair(message(b' {"a": 1}', *headers), message(b'{"a": 2}', *headers))
    assert body_rows(result) == [("$.a", "changed", "1", "2")]
    assert result.note is None


def test_text_binary_and_empty_shapes() -> None:
    text = ("content-type", "text/html; charset=utf-8")
    assert body_rows(diff_pair(message(b"<p>a</p>", text), message(b"<p>b</p>", text))) == [
        ("@@ -1 +1 @@", "changed", '"<p>a</p>"', '"<p>b</p>"')
    ]
    assert [
        row[:2] for row in body_rows(diff_pair(message(b"\x00\x01"), message(b"\x00\x02")))
    ] == [("$", "binary")]
    assert body_rows(diff_pair(message(b'{"a": 1}', JSON), message(b"", JSON))) == [
        ("$", "removed", '{"a":1}', None)
    ]
    assert body_rows(diff_pair(message(b"", JSON), message(b"[]", JSON))) == [
        ("$", "added", None, "[]")
    ]
    assert body_rows(diff_pair(message(b"", text), message(b"x", text))) == [
        ("@@ -0,0 +1 @@", "added", None, '"x"')
    ]


def test_a_binary_row_holds_sizes_and_hashes() -> None:
    png = ("content-type", "image/png")
    (row,) = body_rows(diff_pair(message(b"abc", png), message(b"abcd", png)))
    assert json.loads(row[2] or "") == {
        "size": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }
    assert json.loads(row[3] or "")["size"] == 4


def test_charset_from_content_type() -> None:
    latin = ("content-type", "application/json; charset=iso-8859-1")
    result = diff_pair(
        message('{"name": "café"}'.encode("latin-1"), latin),
        message('{"name": "cafè"}'.encode("latin-1"), latin),
    )
    assert body_rows(result) == [("$.name", "changed", '"café"', '"cafè"')]


@pytest.mark.parametrize("depth", [900, 1020])
def test_deep_documents_fall_back_to_text(depth: int) -> None:
    # orjson reads up to 1024 levels; a recursive walk of them would not fit Python's stack
    primary = b"[" * depth + b"1" + b"]" * depth
    mirror = b"[" * depth + b"2" + b"]" * depth
    result = diff_pair(message(primary, JSON), message(mirror, JSON))
    assert [row[1] for row in body_rows(result)] == ["changed"]
    assert result.note == "JSON nested too deeply for a structural diff; compared as text"


def test_documents_deeper_than_orjson_writes_are_still_walked() -> None:
    depth = 300  # orjson.dumps stops at 254 levels
    primary = b"[" * depth + b"1" + b"]" * depth
    mirror = b"[" * depth + b"2" + b"]" * depth
    result = diff_pair(message(primary, JSON), message(mirror, JSON))
    assert body_rows(result) == [("$" + "[0]" * depth, "changed", "1", "2")]
    assert result.note is None


def test_too_many_differences_are_capped_with_a_note() -> None:
    rules = Rules.from_mapping({"limits": {"max_diffs_per_pair": 5}})
    primary = json.dumps({f"k{i}": i for i in range(20)}).encode()
    mirror = json.dumps({f"k{i}": -i for i in range(1, 20)}).encode()
    result = diff_pair(message(primary, JSON), message(mirror, JSON), rules)
    assert len(result.diffs) == 5
    assert result.note == "more than 5 body differences; only the first 5 are listed"


def test_a_change_of_true_to_1_is_seen_inside_equal_looking_containers() -> None:
    result = diff_pair(
        message(b'{"flags": {"a": true, "b": [1, 0]}}', JSON),
        message(b'{"flags": {"a": 1, "b": [true, false]}}', JSON),
    )
    assert [(p, k) for p, k, _, _ in body_rows(result)] == [
        ("$.flags.a", "type_changed"),
        ("$.flags.b[0]", "type_changed"),
        ("$.flags.b[1]", "type_changed"),
    ]


def test_numbers_compare_by_value() -> None:
    result = diff_pair(
        message(b'{"a": 1, "b": [2]}', JSON), message(b'{"a": 1.0, "b": [2.0]}', JSON)
    )
    assert result == PairResult()
