from __future__ import annotations

import gzip
import io
import zlib

import brotli
import pytest
import zstandard

from shadowdiff.report import bodies
from shadowdiff.report.bodies import DiffRef, Side

JSON = b'{"a": 1, "b": {"c": [1, 2]}, "odd key": null, "e": {}}'


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda b: b),
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("br", brotli.compress),
        ("gzip, br", lambda b: brotli.compress(gzip.compress(b))),
    ],
)
def test_content_encoded_json_is_decoded(encoding: str | None, encode: object) -> None:
    data = encode(JSON)  # type: ignore[operator]
    body = bodies.decode(data, encoding, [("content-type", "application/json")])
    assert body.kind == "json" and body.note is None
    assert body.value == {"a": 1, "b": {"c": [1, 2]}, "odd key": None, "e": {}}
    assert body.size == len(data) and body.decoded_size == len(JSON)


def test_missing_empty_binary_and_broken_bodies() -> None:
    assert bodies.decode(None, None).summary() == "not captured"
    assert bodies.decode(b"", None).summary() == "empty"
    png = bodies.decode(b"\x89PNG\r\n\x1a\n\x00\xff\xfe", None, [("content-type", "image/png")])
    assert png.kind == "binary" and png.summary().startswith("binary, image/png, 11 bytes")
    broken = bodies.decode(b"not gzip at all", "gzip")
    assert broken.kind == "text" and broken.note is not None
    assert "does not decode" in broken.note
    assert bodies.decode(b"x", "compress").note == (
        "unknown content-encoding 'compress'; shown as received"
    )


def test_a_decompression_bomb_is_cut_for_display() -> None:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as f:
        f.write(b"a" * (bodies.MAX_DECODED_BYTES * 4))
    body = bodies.decode(buffer.getvalue(), "gzip", [("content-type", "text/plain")])
    assert body.decoded_size == bodies.MAX_DECODED_BYTES
    assert body.note is not None and "cut" in body.note


def test_json_bodies_are_shown_field_by_field_with_diffs_marked() -> None:
    primary = Side(
        status=200,
        headers=[("content-type", "application/json"), ("date", "Mon")],
        body=b'{"items": [{"id": 1, "likes": 3}], "trace": "x", "a.b": 1}',
    )
    mirror = Side(
        status=200,
        headers=[("content-type", "application/json"), ("date", "Tue")],
        body=b'{"items": [{"id": 1, "likes": 4}], "trace": "y", "a.b": 1, "new": true}',
    )
    view = bodies.side_by_side(
        primary,
        mirror,
        [
            DiffRef("body", "$.items[0].likes", "changed", False),
            DiffRef("body", "$.trace", "changed", True, "ignored path"),
            DiffRef("body", "$.new", "added", False),
            DiffRef("header", "date", "changed", True, "ignored header"),
        ],
    )
    assert view.body_kind == "json"
    rows = {r.label: r for r in view.body}
    assert rows["$.items[0].likes"].mark == "diff"
    assert (rows["$.items[0].likes"].primary, rows["$.items[0].likes"].mirror) == ("3", "4")
    assert rows["$.trace"].mark == "noise" and rows["$.trace"].reason == "ignored path"
    assert rows["$.new"].primary is None and rows["$.new"].mark == "diff"
    assert rows["$['a.b']"].mark == "" and rows["$.items[0].id"].mark == ""
    headers = {r.label: r for r in view.headers}
    assert headers["date"].mark == "noise" and headers["content-type"].mark == ""
    assert view.status[0].mark == ""


def test_a_diff_on_a_container_marks_everything_below_it() -> None:
    view = bodies.side_by_side(
        Side(body=b'{"list": [1, 2], "listing": 1}'),
        Side(body=b'{"list": [2, 1], "listing": 1}'),
        [DiffRef("body", "$.list", "order", False)],
    )
    marks = {r.label: r.mark for r in view.body}
    assert marks == {"$.list[0]": "diff", "$.list[1]": "diff", "$.listing": ""}


def test_text_bodies_are_compared_line_by_line() -> None:
    view = bodies.side_by_side(
        Side(headers=[("content-type", "text/plain")], body=b"one\ntwo\nthree\n"),
        Side(headers=[("content-type", "text/plain")], body=b"one\nTWO\nthree\nfour\n"),
        [DiffRef("body", "@@ -2 +2 @@", "changed", False)],
    )
    assert view.body_kind == "text"
    assert [(r.label, r.primary, r.mirror, r.mark) for r in view.body] == [
        ("1", "one", "one", ""),
        ("2", "two", "TWO", "diff"),
        ("3", "three", "three", ""),
        ("+4", None, "four", "diff"),
    ]


def test_long_bodies_keep_every_marked_row() -> None:
    many = {f"k{i}": i for i in range(bodies.MAX_ROWS * 2)}
    changed = dict(many, k399=-1)
    import json

    view = bodies.side_by_side(
        Side(body=json.dumps(many).encode()),
        Side(body=json.dumps(changed).encode()),
        [DiffRef("body", "$.k399", "changed", False)],
    )
    assert len(view.body) == bodies.MAX_ROWS
    assert any(r.label == "$.k399" and r.mark == "diff" for r in view.body)
    assert any("not shown" in n for n in view.notes)
