"""Fuzzing the ``envoy-tap`` collector: buffered traces and streamed segments, bodies as bytes
and as strings, snake_case and lowerCamelCase names, pretty-printed and compact, one file per
trace and many traces per file.

A tap file's record is a trace (a buffered document, or every segment of one ``trace_id``), so
the books are checked against the documents the file was built from: shuffled, doubled or
dropped whole documents give exactly the records and exchanges the trace ids predict. For byte
edits the record count is not known in advance; then a file that starts with a JSON object has
at least one record, and only a file that does not (or an unreadable compressed one) is refused
with ``InputError``. The YAML and proto-text renderings of a trace are not read by shadowdiff
(Envoy's JSON sink formats are): they must be refused, never crash.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fuzzkit import (
    FIXTURES,
    SAMPLE,
    Read,
    decompressed,
    fuzz,
    inputs,
    kept_on_failure,
    read,
    sampled_positions,
    write,
)
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.collect.base import Input, Options
from shadowdiff.collect.envoy_tap import COLLECTOR
from shadowdiff.errors import InputError
from shadowdiff.testing.factories import ttap

TAP = FIXTURES / "envoy_tap"
BOM = b"\xef\xbb\xbf"


def documents_of(data: bytes) -> list[dict[str, Any]]:
    """The JSON documents of a tap file, in order."""
    text, decoder, found, pos = data.decode(), json.JSONDecoder(), [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        value, pos = decoder.raw_decode(text, pos)
        found.append(value)
    return found


FIXTURE_FILES = sorted(TAP.glob("*.json"))
SAMPLE_FILES = sorted((SAMPLE / "taps" / "primary").glob("tap_*.json"))[:3]
FACTORY_TRACES = [
    ttap("fuzz-1"),
    ttap("fuzz-2", path="/api/items/2?q=%00", status=503, body=b"\x00\xff binary"),
    ttap("fuzz-3", body=b""),
]
SEEDS = [path.read_bytes() for path in (*FIXTURE_FILES, *SAMPLE_FILES)]
SEEDS += [json.dumps(trace, indent=1).encode() for trace in FACTORY_TRACES]
DOCUMENTS = [doc for seed in SEEDS for doc in documents_of(seed)]

# How a buffered trace looks in the sink formats shadowdiff does not read.
YAML_TRACE = b"""http_buffered_trace:
  request:
    headers:
    - key: ":path"
      value: /api/items/1
    - key: x-request-id
      value: yaml-1
  response:
    headers:
    - key: ":status"
      value: "200"
"""
PROTO_TEXT_TRACE = b"""http_buffered_trace {
  request {
    headers { key: ":path" value: "/api/items/1" }
    headers { key: "x-request-id" value: "proto-1" }
  }
  response { headers { key: ":status" value: "200" } }
}
"""
YAML_FLOW_TRACE = b'{http_buffered_trace: {request: {headers: [{key: ":path", value: /a}]}}}\n'


def _kind(document: dict[str, Any]) -> tuple[str, Any]:
    for name in ("http_buffered_trace", "httpBufferedTrace"):
        if name in document:
            return "buffered", document[name]
    for name in ("http_streamed_trace_segment", "httpStreamedTraceSegment"):
        if name in document:
            return "streamed", document[name]
    raise AssertionError(f"not an HTTP trace: {sorted(document)}")


def predicted(documents: list[dict[str, Any]]) -> tuple[int, int]:
    """(records, exchanges) of a file of these (valid) documents: a buffered trace is one
    exchange; a streamed trace, one record, an exchange when it has one request_headers and
    one response_headers segment."""
    buffered = 0
    pieces: dict[str, Counter[str]] = {}
    for document in documents:
        kind, trace = _kind(document)
        if kind == "buffered":
            buffered += 1
            continue
        trace_id = str(trace.get("trace_id", trace.get("traceId")))
        counted = pieces.setdefault(trace_id, Counter())
        for name in trace:
            counted[name.replace("Headers", "_headers")] += name not in ("trace_id", "traceId")
    complete = sum(
        1 for c in pieces.values() if c["request_headers"] == 1 and c["response_headers"] == 1
    )
    return buffered + len(pieces), buffered + complete


def starts_with_an_object(data: bytes) -> bool:
    return data.removeprefix(BOM).lstrip(b" \t\r\n").startswith(b"{")


def assert_tap_books(got: Read | InputError, data: bytes) -> None:
    """What holds for any bytes: refused only when not tap output at all, else each location
    once and at least one record for a file that holds a document."""
    text = decompressed(data)
    if isinstance(got, InputError):
        assert text is None or not starts_with_an_object(text), f"refused: {got}"
        return
    assert text is not None, "an unreadable compressed file was read"
    locations = got.locations()
    assert len(set(locations)) == len(locations) == got.records, sorted(locations)
    if starts_with_an_object(text):
        assert got.records >= 1, "a file holding a document gave no record"
    else:
        assert got.records == 0


def check_file(path: Path, scratch: Path) -> None:
    """The property for a corpus file (read where it is: ``scratch`` is not needed)."""
    assert_tap_books(read(COLLECTOR, path), path.read_bytes())


def test_seeds_read_whole(tmp_path: Path) -> None:
    for seed in SEEDS:
        got = read(COLLECTOR, write(tmp_path, seed, ".json"))
        assert isinstance(got, Read)
        assert not got.rejects, got.rejects
        assert (got.records, got.exchanges) == predicted(documents_of(seed))


@fuzz(250)
@given(raw=inputs(SEEDS))
def test_mutated_tap_files_are_read_or_refused_whole(tmp_path: Path, raw: bytes) -> None:
    with kept_on_failure("envoy_tap-bytes", raw, ".json"):
        assert_tap_books(read(COLLECTOR, write(tmp_path, raw, ".json")), raw)


@fuzz(150)
@given(
    chosen=st.lists(st.sampled_from(DOCUMENTS), min_size=1, max_size=8),
    separator=st.sampled_from(["", "\n", "\r\n", "\n\n", " ", "\t\n"]),
    indent=st.sampled_from([None, 1, 2]),
    bom=st.booleans(),
)
def test_documents_shuffled_doubled_or_dropped_give_the_records_their_traces_predict(
    tmp_path: Path, chosen: list[dict[str, Any]], separator: str, indent: int | None, bom: bool
) -> None:
    raw = (BOM if bom else b"") + separator.join(
        json.dumps(d, indent=indent) for d in chosen
    ).encode()
    with kept_on_failure("envoy_tap-documents", raw, ".json"):
        got = read(COLLECTOR, write(tmp_path, raw, ".json"))
        assert isinstance(got, Read), got
        assert (got.records, got.exchanges) == predicted(chosen)


@pytest.mark.parametrize(
    "seed",
    [
        (TAP / "camel_case.json").read_bytes(),
        (TAP / "streamed_interleaved.json").read_bytes(),
        b"\n".join(json.dumps(t).encode() for t in FACTORY_TRACES) + b"\n",
    ],
    ids=["camel_case", "streamed_interleaved", "buffered_lines"],
)
def test_a_tap_file_cut_at_every_byte_is_read_or_refused(seed: bytes, tmp_path: Path) -> None:
    for cut in sampled_positions(0, len(seed), every=1):
        data = seed[:cut]
        assert_tap_books(read(COLLECTOR, write(tmp_path, data, ".json")), data)


def test_buffered_traces_before_a_cut_are_kept(tmp_path: Path) -> None:
    lines = [json.dumps(t).encode() + b"\n" for t in FACTORY_TRACES]
    seed = b"".join(lines)
    ends = [sum(len(line) for line in lines[: n + 1]) for n in range(len(lines))]
    for cut in sampled_positions(0, len(seed), every=1):
        got = read(COLLECTOR, write(tmp_path, seed[:cut], ".json"))
        assert isinstance(got, Read) or cut == 0, (cut, got)
        if isinstance(got, InputError):
            continue
        whole = sum(1 for end in ends if end <= cut)
        assert got.exchanges >= whole, cut
        partial = seed[:cut][sum(len(line) for line in lines[:whole]) :].strip()
        assert got.records == whole + bool(partial), cut
        for row in got.rejects:
            assert "truncated" in str(row["reason"]), (cut, row["reason"])


@pytest.mark.parametrize(
    "raw",
    [YAML_TRACE, PROTO_TEXT_TRACE, YAML_FLOW_TRACE],
    ids=["yaml", "proto_text", "yaml_flow"],
)
def test_yaml_and_proto_text_traces_are_refused_not_read(raw: bytes, tmp_path: Path) -> None:
    got = read(COLLECTOR, write(tmp_path, raw, ".json"))
    assert_tap_books(got, raw)
    assert isinstance(got, InputError) or (got.exchanges, len(got.rejects)) == (0, 1)


@fuzz(80)
@given(files=st.lists(inputs([*SEEDS, YAML_TRACE, PROTO_TEXT_TRACE, b"", b"\n"]), max_size=6))
def test_a_directory_of_mutated_taps_never_raises_and_reports_every_file(
    tmp_path: Path, files: list[bytes]
) -> None:
    # ``read_many``, as the engine reads a tap directory: one bad file is a reject, not an error.
    sources = [Input(write(tmp_path, raw, ".json"), "mirror") for raw in files]
    with kept_on_failure("envoy_tap-many", b"\n\x00\n".join(files), ".json"):
        batches = list(COLLECTOR.read_many(sources, Options()))
        reports = [report for batch in batches for report in batch.inputs]
        assert [r.path for r in reports] == [s.name for s in sources]
        assert sum(r.records for r in reports) == sum(b.records for b in batches)
        assert sum(r.rejected for r in reports) == sum(len(b.rejects) for b in batches)
        for batch in batches:
            assert batch.records == batch.exchanges.num_rows + len(batch.rejects)
        for report, raw in zip(reports, files, strict=True):
            text = decompressed(raw)
            assert report.size == len(raw) and report.sha256 is not None, report
            if text is not None and starts_with_an_object(text):
                assert report.records >= 1, report
            assert report.rejected <= report.records


def test_a_broken_compressed_tap_in_a_directory_keeps_its_size_and_digest(tmp_path: Path) -> None:
    good = Input(write(tmp_path, SEEDS[0], ".json"), "primary")
    broken = Input(write(tmp_path, b"\x1f\x8b", ".json"), "primary")  # a gzip magic, cut short
    batches = list(COLLECTOR.read_many([good, broken], Options()))
    report = [r for b in batches for r in b.inputs][1]
    assert (report.records, report.rejected) == (1, 1)
    assert report.size == 2
    assert report.sha256 is not None
