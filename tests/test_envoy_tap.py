from __future__ import annotations

import base64
import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowdiff import schema
from shadowdiff.collect import envoy_tap, registry
from shadowdiff.collect.base import Input, Options
from shadowdiff.collect.envoy_tap import COLLECTOR
from shadowdiff.collect.inputs import expand
from shadowdiff.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "envoy"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "envoy_tap"
PSEUDO_COLUMNS = {":method", ":path", ":authority", ":status"}


class Read:
    """Everything one ``read`` call gave: rows, rejects and the records it counted."""

    def __init__(self, source: Input, options: Options) -> None:
        self.tables: list[pa.Table] = []
        self.rejects: list[dict[str, object]] = []
        self.records = 0
        for batch in COLLECTOR.read(source, options):
            assert batch.exchanges.schema.equals(schema.EXCHANGES)
            self.tables.append(batch.exchanges)
            self.rejects.extend(batch.rejects)
            self.records += batch.records
        self.rows: list[dict[str, Any]] = [r for t in self.tables for r in t.to_pylist()]

    @property
    def reasons(self) -> list[tuple[str, str]]:
        """(location after the file name, reason) of each reject."""
        return [(str(r["location"]).rsplit("#", 1)[1], str(r["reason"])) for r in self.rejects]

    def only(self) -> dict[str, Any]:
        assert not self.rejects, self.rejects
        assert len(self.rows) == 1, self.rows
        return self.rows[0]


def read(path: Path, side: str | None = None, **options: Any) -> Read:
    return Read(Input(path, side), Options(**options))


def write(tmp_path: Path, content: str | bytes, name: str = "tap_1.json") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def headers(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v, "raw_value": ""} for k, v in pairs]


REQUEST = headers(
    (":authority", "app:8080"),
    (":path", "/api/users/1"),
    (":method", "GET"),
    (":scheme", "http"),
    ("x-request-id", "rid-1"),
)
RESPONSE = headers((":status", "200"), ("content-type", "application/json"))


def buffered(request: Any = None, response: Any = None, **trace: Any) -> dict[str, Any]:
    """A buffered trace document, like Envoy writes it."""
    return {
        "http_buffered_trace": {
            "request": request if request is not None else {"headers": REQUEST, "trailers": []},
            "response": response
            if response is not None
            else {"headers": RESPONSE, "body": {"as_bytes": "e30=", "truncated": False}},
            **trace,
        }
    }


def segment(trace_id: str | int, **piece: Any) -> dict[str, Any]:
    return {"http_streamed_trace_segment": {"trace_id": trace_id, **piece}}


def streamed(trace_id: str = "9", request_id: str = "rid-s") -> list[dict[str, Any]]:
    """The segments of one complete streamed trace."""
    request = [*REQUEST[:4], {"key": "x-request-id", "value": request_id}]
    return [
        segment(trace_id, request_headers={"headers": request}),
        segment(trace_id, request_body_chunk={"as_bytes": base64.b64encode(b"ab").decode()}),
        segment(trace_id, request_body_chunk={"as_string": "cd", "truncated": False}),
        segment(trace_id, response_headers={"headers": RESPONSE}),
        segment(trace_id, response_body_chunk={"as_string": "ok"}),
    ]


def documents(docs: list[dict[str, Any]], separator: str = "\n", indent: int | None = 1) -> str:
    return separator.join(json.dumps(d, indent=indent) for d in docs)


# Real tap files: the bundled sample corpus, made by a real Envoy (sample_data/generate.py).


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads((SAMPLE / "expected.json").read_text())


@pytest.fixture(scope="module")
def sample_rows() -> dict[str, dict[str, dict[str, Any]]]:
    """Side → request id → exchange, read file by file as the CLI does for a directory."""
    by_side: dict[str, dict[str, dict[str, Any]]] = {}
    for side in ("primary", "mirror"):
        rows: dict[str, dict[str, Any]] = {}
        for source in expand([SAMPLE / "taps" / side], side):
            got = Read(source, Options())
            row = got.only()
            assert got.records == 1
            assert row["request_id"] not in rows, "one trace per request and side"
            rows[row["request_id"]] = row
        by_side[side] = rows
    return by_side


def test_every_sample_request_is_read_on_both_sides(
    expected: dict[str, Any], sample_rows: dict[str, dict[str, dict[str, Any]]]
) -> None:
    sent = {r["request_id"]: r for r in expected["requests"]}
    for side, rows in sample_rows.items():
        assert set(rows) == set(sent), side
        for request_id, row in rows.items():
            request = sent[request_id]
            assert row["side"] == side
            assert row["source"] == "envoy-tap"
            assert re.fullmatch(r".*/taps/\w+/tap_\d+\.json#1", row["location"])
            assert row["method"] == request["method"]
            assert row["path"] == request["target"]
            assert row["authority"] == expected["files"][side]["authority"]
            body = request["body"]
            assert row["request_body"] == (b"" if body is None else body.encode())
            assert row["request_body_truncated"] is False
            assert row["response_body"]
            assert row["start_time"] is not None
            assert 0 <= row["duration_ms"] < 10_000


def test_sample_statuses_follow_the_planted_differences(
    expected: dict[str, Any], sample_rows: dict[str, dict[str, dict[str, Any]]]
) -> None:
    primary, mirror = sample_rows["primary"], sample_rows["mirror"]
    for request in expected["requests"]:
        request_id = request["request_id"]
        assert primary[request_id]["status"] == request["status"]
        want = 500 if "orders-status-500" in request["planted"] else request["status"]
        assert mirror[request_id]["status"] == want


def test_sample_bodies_are_stored_as_captured(
    expected: dict[str, Any], sample_rows: dict[str, dict[str, dict[str, Any]]]
) -> None:
    for request in expected["requests"]:
        primary = sample_rows["primary"][request["request_id"]]
        mirror = sample_rows["mirror"][request["request_id"]]
        if "cart-total-type" in request["planted"]:
            assert isinstance(json.loads(primary["response_body"])["total"], float | int)
            assert isinstance(json.loads(mirror["response_body"])["total"], str)
        if request["endpoint"] == "/api/report" and request["status"] == 200:
            encoding = {h["name"]: h["value"] for h in primary["response_headers"]}
            assert encoding.get("content-encoding") == "gzip"
            assert primary["response_body"][:2] == b"\x1f\x8b"  # not decoded here
        if "logo-binary" in request["planted"] and expected["formats"]["tap"].endswith("BYTES"):
            assert primary["response_body"].startswith(b"\x89PNG")
            assert primary["response_body"] != mirror["response_body"]


def test_sample_headers_keep_order_and_leave_out_the_column_pseudo_headers() -> None:
    path = sorted((SAMPLE / "taps" / "primary").glob("tap_*.json"))[0]
    raw = json.loads(path.read_text())["http_buffered_trace"]
    row = read(path).only()
    for part in ("request", "response"):
        want = [
            {"name": h["key"], "value": h["value"]}
            for h in raw[part]["headers"]
            if h["key"] not in PSEUDO_COLUMNS
        ]
        assert row[f"{part}_headers"] == want
    names = [h["name"] for h in row["request_headers"]]
    assert ":scheme" in names  # no column for it: kept in the list
    assert row["request_id"] == next(
        h["value"] for h in raw["request"]["headers"] if h["key"] == "x-request-id"
    )
    received = datetime.fromisoformat(raw["request"]["headers_received_time"])
    assert row["start_time"] == received.astimezone(UTC)


def test_a_directory_of_taps_reads_each_file_as_an_input(tmp_path: Path) -> None:
    paths = sorted((SAMPLE / "taps" / "mirror").glob("tap_*.json"))[:3]
    for path in paths:
        write(tmp_path, path.read_bytes(), path.name)
    sources = expand([tmp_path], "mirror")
    assert [s.path.name for s in sources] == sorted(p.name for p in paths)
    assert [Read(s, Options()).records for s in sources] == [1, 1, 1]


# Fixtures recorded from a real Envoy (see tests/fixtures/envoy_tap/README.md).


def test_buffered_as_string_with_a_truncated_request_body_and_connections() -> None:
    row = read(FIXTURES / "buffered_string_truncated.json", "mirror").only()
    assert row["request_body"] == '{"item": "café '.encode()  # 16 bytes: max_buffered_rx_bytes
    assert row["request_body_truncated"] is True
    assert row["response_body"] == b'{"echo": 34}'
    assert row["response_body_truncated"] is False
    assert row["body_truncated"] is True
    assert (row["server_addr"], row["server_port"]) == ("127.0.0.1", 33469)
    assert row["client_addr"] == "127.0.0.1:49926"
    assert row["upstream_host"] == "127.0.0.1:39295"
    assert row["duration_ms"] == pytest.approx(5.173)
    cookies = [h["value"] for h in row["response_headers"] if h["name"] == "set-cookie"]
    assert cookies == ["a=1", "b=2"]
    assert row["side"] == "mirror"


def test_streamed_segments_of_one_file_make_one_exchange() -> None:
    got = read(FIXTURES / "streamed_post.json")
    row = got.only()
    assert got.records == 1  # four documents, one trace
    assert row["location"].endswith("streamed_post.json#1-4")
    assert (row["method"], row["path"], row["status"]) == ("POST", "/api/cart", 200)
    assert row["request_id"] == "rid-stream-1"
    assert row["request_body"] == b'{"items": [1, 2]}'
    assert row["response_body"] == b'{"echo": 17}'
    assert row["start_time"] is None and row["duration_ms"] is None  # segments carry no times


def test_streamed_body_chunks_are_joined_in_order() -> None:
    row = read(FIXTURES / "streamed_chunks.json").only()
    assert row["request_body"] == b"first,second,\xff\xfe third"
    assert row["response_body"] == b""  # no response body chunk was written


def test_streamed_gzip_body_is_not_decoded() -> None:
    row = read(FIXTURES / "streamed_gzip_404.json").only()
    assert row["status"] == 404
    assert gzip.decompress(row["response_body"]) == b'{"hello": "world"}'


@pytest.mark.parametrize("separator", ["", "\n", "\n\n", " \t\r\n"])
@pytest.mark.parametrize("indent", [None, 1])
def test_streamed_segments_with_and_without_separators(
    tmp_path: Path, separator: str, indent: int | None
) -> None:
    real = (FIXTURES / "streamed_post.json").read_text()
    docs = [json.loads(d) for d in re.split(r"(?<=\n\})\n(?=\{)", real)]
    assert len(docs) == 4
    want = read(FIXTURES / "streamed_post.json").only()
    row = read(write(tmp_path, documents(docs, separator, indent))).only()
    assert {k: v for k, v in row.items() if k != "location"} == {
        k: v for k, v in want.items() if k != "location"
    }


def test_interleaved_streamed_traces_are_told_apart() -> None:
    got = read(FIXTURES / "streamed_interleaved.json")
    assert got.records == 2 and not got.rejects
    rows = {r["request_id"]: r for r in got.rows}
    assert rows["r-1"]["request_body"] == b"hello world"  # as_string then as_bytes
    assert rows["r-1"]["response_body"] == b"ok"
    assert rows["r-1"]["response_body_truncated"] is True
    assert rows["r-1"]["location"].endswith("#1-7")
    assert rows["r-2"]["status"] == 204
    assert rows["r-2"]["request_body"] == b"" and rows["r-2"]["response_body"] == b""
    assert rows["r-2"]["location"].endswith("#3-8")


def test_camel_case_names_are_read() -> None:
    got = read(FIXTURES / "camel_case.json")
    assert got.records == 2 and not got.rejects
    rows = {r["request_id"]: r for r in got.rows}
    one = rows["camel-1"]
    assert one["request_headers"] == [
        {"name": ":scheme", "value": "http"},
        {"name": "x-request-id", "value": "camel-1"},
        {"name": "x-note", "value": "café"},  # rawValue, base64
    ]
    assert one["response_body"] == b'{"id": 7}'
    assert one["start_time"] == datetime(2026, 11, 28, 10, 0, 0, 100, tzinfo=UTC)
    assert one["duration_ms"] == pytest.approx(12.5)
    assert (one["server_addr"], one["server_port"]) == ("10.0.0.5", 18081)
    assert one["client_addr"] == "[::1]:51000"
    assert one["upstream_host"] == "10.0.0.9:8080"
    two = rows["camel-2"]
    assert (two["request_body"], two["response_body"], two["status"]) == (b"hi", b"ok", 201)
    assert two["response_body_truncated"] is True


def _camelize(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): _camelize(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_camelize(v) for v in value]
    return value


@pytest.mark.parametrize(
    "path",
    [
        FIXTURES / "buffered_string_truncated.json",
        sorted((SAMPLE / "taps" / "mirror").glob("tap_*.json"))[0],
    ],
    ids=["fixture", "sample"],
)
def test_a_real_trace_in_camel_case_reads_the_same(tmp_path: Path, path: Path) -> None:
    camel = _camelize(json.loads(path.read_text()))
    assert "httpBufferedTrace" in camel
    row = read(write(tmp_path, json.dumps(camel))).only()
    want = read(path).only()
    assert {k: v for k, v in row.items() if k != "location"} == {
        k: v for k, v in want.items() if k != "location"
    }


# Bodies, flags and options, on small crafted traces.


def test_as_string_and_as_bytes_give_the_same_bytes(tmp_path: Path) -> None:
    text = '{"name": "café"}'
    as_bytes = {"headers": RESPONSE, "body": {"as_bytes": base64.b64encode(text.encode()).decode()}}
    as_string = {"headers": RESPONSE, "body": {"as_string": text}}
    one = read(write(tmp_path, json.dumps(buffered(response=as_bytes)), "a.json")).only()
    two = read(write(tmp_path, json.dumps(buffered(response=as_string)), "b.json")).only()
    assert one["response_body"] == two["response_body"] == text.encode()


def test_url_safe_and_unpadded_base64_are_accepted(tmp_path: Path) -> None:
    data = b"\xfb\xff\xfe?"
    encoded = base64.urlsafe_b64encode(data).decode().rstrip("=")
    response = {"headers": RESPONSE, "body": {"as_bytes": encoded}}
    assert (
        read(write(tmp_path, json.dumps(buffered(response=response)))).only()["response_body"]
        == data
    )


@pytest.mark.parametrize(
    ("request_truncated", "response_truncated", "either"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_truncated_flags_are_kept_per_body(
    tmp_path: Path, request_truncated: bool, response_truncated: bool, either: bool
) -> None:
    request = {"headers": REQUEST, "body": {"as_string": "x", "truncated": request_truncated}}
    response = {"headers": RESPONSE, "body": {"as_string": "y", "truncated": response_truncated}}
    row = read(write(tmp_path, json.dumps(buffered(request, response)))).only()
    assert row["request_body_truncated"] is request_truncated
    assert row["response_body_truncated"] is response_truncated
    assert row["body_truncated"] is either


def test_a_truncated_chunk_marks_the_streamed_body(tmp_path: Path) -> None:
    docs = streamed()
    docs[2]["http_streamed_trace_segment"]["request_body_chunk"]["truncated"] = True
    row = read(write(tmp_path, documents(docs))).only()
    assert row["request_body"] == b"abcd"
    assert (row["request_body_truncated"], row["response_body_truncated"]) == (True, False)
    assert row["body_truncated"] is True


def test_absent_body_is_empty_and_absent_response_is_null(tmp_path: Path) -> None:
    doc = buffered()
    del doc["http_buffered_trace"]["response"]
    row = read(write(tmp_path, json.dumps(doc))).only()
    assert row["request_body"] == b"" and row["request_body_truncated"] is False
    assert row["response_body"] is None and row["response_headers"] is None
    assert row["status"] is None and row["response_body_truncated"] is None
    assert row["body_truncated"] is False


def test_bodies_over_max_body_bytes_are_cut_and_marked(tmp_path: Path) -> None:
    response = {"headers": RESPONSE, "body": {"as_string": "0123456789"}}
    row = read(write(tmp_path, json.dumps(buffered(response=response))), max_body_bytes=4).only()
    assert row["response_body"] == b"0123"
    assert row["response_body_truncated"] is True


def test_request_id_header_is_configurable_and_case_blind(tmp_path: Path) -> None:
    request = {"headers": [*REQUEST, {"key": "X-Trace", "value": "t-7"}]}
    path = write(tmp_path, json.dumps(buffered(request)))
    assert read(path).only()["request_id"] == "rid-1"
    assert read(path, request_id_header="x-trace").only()["request_id"] == "t-7"
    assert read(path, request_id_header="x-missing").only()["request_id"] is None


def test_raw_value_headers_that_are_not_utf8_read_as_latin1(tmp_path: Path) -> None:
    raw = base64.b64encode(b"caf\xe9").decode()
    request = {"headers": [*REQUEST, {"key": "x-legacy", "value": "", "raw_value": raw}]}
    row = read(write(tmp_path, json.dumps(buffered(request)))).only()
    assert row["request_headers"][-1] == {"name": "x-legacy", "value": "café"}


def test_compressed_tap_files_are_read(tmp_path: Path) -> None:
    real = (FIXTURES / "streamed_post.json").read_bytes()
    row = read(write(tmp_path, gzip.compress(real), "tap_1.json.gz")).only()
    assert row["request_id"] == "rid-stream-1"


def test_rows_come_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envoy_tap, "BATCH_ROWS", 2)
    docs = [buffered() for _ in range(3)] + streamed("1") + streamed("2")
    batches = list(COLLECTOR.read(Input(write(tmp_path, documents(docs))), Options()))
    assert [b.exchanges.num_rows for b in batches] == [2, 2, 1]


# Bad input: each becomes a reject with a location and a reason, or an InputError for a file
# that is not tap output at all.

GOOD = json.dumps(buffered(), indent=1)


@pytest.mark.parametrize(
    ("content", "location", "reason"),
    [
        pytest.param(GOOD[:-40], "1", "truncated JSON", id="one-document-cut-short"),
        pytest.param(GOOD + "\n" + GOOD[:300], "2", "truncated JSON", id="last-document-cut"),
        pytest.param(GOOD + GOOD[:-1], "2", "truncated JSON", id="last-brace-missing"),
        pytest.param('{"a": 1, "b": tr', "1", "truncated JSON", id="cut-in-a-literal"),
        pytest.param('{"a": 1,, "b": 2}\n', "1", "not valid JSON", id="bad-json"),
        pytest.param(GOOD + " 42", "2", "the document is a JSON number", id="number"),
        pytest.param(
            GOOD + "\n[1, 2]", "2", "not a tap trace: the document is a JSON array", id="array"
        ),
        pytest.param('{"http_fancy_trace": {}}', "1", "unknown trace kind", id="unknown-kind"),
        pytest.param(
            '{"socket_buffered_trace": {"events": []}}', "1", "transport-socket tap", id="socket"
        ),
        pytest.param(
            json.dumps({**buffered(), **segment("1")}), "1", "several traces", id="two-kinds"
        ),
        pytest.param(
            json.dumps(buffered(response={"headers": RESPONSE, "body": {"as_bytes": "%%%"}})),
            "1",
            "response.body.as_bytes is not valid base64",
            id="bad-base64",
        ),
        pytest.param(
            json.dumps(buffered(response={"headers": headers((":status", "OK"))})),
            "1",
            ":status 'OK' is not an HTTP status code",
            id="bad-status",
        ),
        pytest.param(
            json.dumps(buffered(request={"headers": {"a": "b"}})),
            "1",
            "request.headers is not a JSON array",
            id="headers-not-a-list",
        ),
        pytest.param(
            json.dumps(buffered(request={"headers": [{"value": "x"}]})),
            "1",
            "request.headers[0].key is missing",
            id="header-without-key",
        ),
        pytest.param(
            json.dumps(buffered(request={"headers": REQUEST, "headers_received_time": "noon"})),
            "1",
            "request.headers_received_time is not an RFC 3339 time",
            id="bad-time",
        ),
        pytest.param(
            json.dumps({"http_buffered_trace": {"response": {"headers": RESPONSE}}}),
            "1",
            "no request message",
            id="no-request",
        ),
        pytest.param(
            documents(streamed()[:3]), "1-3", "is incomplete: no response_headers", id="no-response"
        ),
        pytest.param(
            documents(streamed()[3:]),
            "1-2",
            "is incomplete: no request_headers",
            id="no-request-seg",
        ),
        pytest.param(
            documents(streamed() + streamed()[:1]),
            "1-6",
            "segment #6: a second request_headers segment",
            id="trace-id-reused",
        ),
        pytest.param(
            documents([segment("1")]),
            "1",
            "segment #1: no message piece (keys: trace_id)",
            id="no-piece",
        ),
        pytest.param(
            json.dumps({"http_streamed_trace_segment": {"request_headers": {"headers": []}}}),
            "1",
            "trace_id is missing",
            id="no-trace-id",
        ),
        pytest.param(
            documents(streamed()[:1] + [segment("9", request_body_chunk={"as_bytes": "@"})]),
            "1-2",
            "request_body_chunk.as_bytes is not valid base64",
            id="bad-chunk",
        ),
        pytest.param('{"x": NaN}', "1", "not valid JSON", id="nan"),
        pytest.param(
            json.dumps(buffered(request={"headers": [{"key": "\ud800", "value": ""}]})),
            "1",
            "request.headers[0].key is missing or not UTF-8 text",
            id="lone-surrogate",
        ),
        pytest.param(
            json.dumps(buffered(response={"headers": RESPONSE, "body": {"as_string": "\ud800"}})),
            "1",
            "response.body.as_string is not valid UTF-8",
            id="surrogate-body",
        ),
        pytest.param(
            '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "1",
            "not valid JSON (nested too deeply)",
            id="deep-nesting",
        ),
    ],
)
def test_bad_input_is_rejected_with_location_and_reason(
    tmp_path: Path, content: str, location: str, reason: str
) -> None:
    path = write(tmp_path, content.encode("utf-8", errors="surrogatepass"))
    got = read(path, "primary")
    assert got.records == len(got.rows) + len(got.rejects)
    bad = got.rejects[-1]
    assert bad["source"] == str(path)
    assert bad["side"] == "primary"
    assert bad["location"] == f"{path}#{location}"
    assert reason in str(bad["reason"])
    assert bad["excerpt"]


def test_not_utf8_inside_a_document_is_rejected(tmp_path: Path) -> None:
    content = GOOD.encode() + b"\n" + GOOD.encode().replace(b"rid-1", b"rid-\xff")
    got = read(write(tmp_path, content))
    assert len(got.rows) == 1
    assert got.reasons == [("2", "http_buffered_trace: request.headers[4].value is not UTF-8 text")]


def test_reading_resumes_after_a_broken_document(tmp_path: Path) -> None:
    content = GOOD + "\n{ this is not json }\n" + GOOD + "garbage" + GOOD
    got = read(write(tmp_path, content))
    assert len(got.rows) == 3
    assert [loc for loc, _ in got.reasons] == ["2", "4"]
    assert all(reason.startswith("not valid JSON") for _, reason in got.reasons)


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is a log line\n",
        b"[" + GOOD.encode() + b"]",
        b"\x00\x01\x02binary",
        b"http_buffered_trace {\n  request {\n",  # PROTO_TEXT sink
        b"\xff\xfe{",
    ],
)
def test_a_file_that_is_not_json_objects_is_an_input_error(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InputError, match="not Envoy tap output") as raised:
        list(COLLECTOR.read(Input(path), Options()))
    assert str(path) in str(raised.value)


def test_broken_compression_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, gzip.compress(GOOD.encode())[:30], "tap_1.json.gz")
    with pytest.raises(InputError, match="cannot be read .*is it complete"):
        list(COLLECTOR.read(Input(path), Options()))


def test_an_empty_file_has_no_records(tmp_path: Path) -> None:
    assert list(COLLECTOR.read(Input(write(tmp_path, " \n")), Options())) == []


def test_every_record_is_an_exchange_or_a_reject(tmp_path: Path) -> None:
    docs = [
        documents([buffered()]),  # 1 exchange
        documents(streamed("7")[:2]),  # joined with the rest of trace 7 below
        "{ broken }",  # 1 reject
        documents([buffered(response={"headers": RESPONSE, "body": {"as_bytes": "!"}})]),
        documents(streamed("7")[2:]),  # trace 7: 1 exchange out of 5 documents
        documents(streamed("8")[:1]),  # trace 8 never answered: 1 reject
        documents([buffered()]),
    ]
    got = read(write(tmp_path, "\n".join(docs)))
    assert (len(got.rows), len(got.rejects), got.records) == (3, 3, 6)
    assert sorted(got.reasons, key=lambda r: int(r[0])) == [
        (
            "4",
            "not valid JSON (Expecting property name enclosed in double quotes at character 3 "
            "of the document)",
        ),
        (
            "5",
            "http_buffered_trace: response.body.as_bytes is not valid base64 (Only base64 data "
            "is allowed)",
        ),
        (
            "9",
            "streamed trace 8 is incomplete: no response_headers segment in this file. Envoy "
            "writes all segments of a trace to one file; was it copied while the stream was open, "
            "or was the stream reset?",
        ),
    ]
    assert [r["location"].rsplit("#", 1)[1] for r in got.rows] == ["1", "10", "2-8"]


# Sniffing and registration.


@pytest.mark.parametrize(
    ("path", "sure"),
    [
        (sorted((SAMPLE / "taps" / "primary").glob("tap_*.json"))[0], True),
        (FIXTURES / "streamed_post.json", True),
        (FIXTURES / "camel_case.json", True),
        (FIXTURES / "streamed_interleaved.json", True),
        (SAMPLE / "expected.json", False),
        (SAMPLE / "primary" / "istio_json.log", False),
        (SAMPLE / "primary" / "istio_text.log", False),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_sniff(path: Path, sure: bool) -> None:
    score = COLLECTOR.sniff(path.read_bytes()[:65536])
    assert score >= 0.9 if sure else score < registry.SNIFF_THRESHOLD


def test_sniff_is_lower_when_the_trace_is_not_the_first_key() -> None:
    head = b'{"other": 1, "http_buffered_trace": {}}'
    assert registry.SNIFF_THRESHOLD <= COLLECTOR.sniff(head) < 0.9
    assert COLLECTOR.sniff(b'["http_buffered_trace"]') == 0.0


def test_registered_by_name_and_picked_by_auto() -> None:
    assert registry.get("envoy-tap") is COLLECTOR
    assert "envoy-tap" in registry.names()
    for path in [FIXTURES / "camel_case.json", *sorted((SAMPLE / "taps").rglob("tap_*.json"))[:3]]:
        assert registry.sniff(Input(path)) is COLLECTOR


# Whatever the bytes, only InputError escapes, and the records add up.


def _check(path: Path) -> None:
    try:
        batches = list(COLLECTOR.read(Input(path, "mirror"), Options()))
    except InputError:
        return
    for batch in batches:
        assert batch.exchanges.schema.equals(schema.EXCHANGES)
        for row in batch.rejects:
            assert row["location"] and row["reason"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_raise_nothing_but_input_error(tmp_path: Path, data: bytes) -> None:
    _check(write(tmp_path, data))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_after_a_good_trace_raise_nothing(tmp_path: Path, data: bytes) -> None:
    _check(write(tmp_path, GOOD.encode() + data))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_real_trace_with_bytes_cut_or_replaced_raises_nothing(
    tmp_path: Path, data: st.DataObject
) -> None:
    real = (FIXTURES / "streamed_chunks.json").read_bytes()
    start = data.draw(st.integers(0, len(real)))
    stop = data.draw(st.integers(start, min(len(real), start + 64)))
    middle = data.draw(st.binary(max_size=16))
    _check(write(tmp_path, real[:start] + middle + real[stop:]))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "request",
                    "response",
                    "headers",
                    "body",
                    "key",
                    "value",
                    "raw_value",
                    "as_bytes",
                    "as_string",
                    "truncated",
                    "trace_id",
                    "request_headers",
                    "response_headers",
                    "request_body_chunk",
                    "downstream_connection",
                    "local_address",
                    "socket_address",
                    "port_value",
                    "address",
                    "headers_received_time",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.sampled_from(envoy_tap.HTTP_KINDS), value=JSON)
def test_any_json_under_a_trace_key_is_one_record(tmp_path: Path, kind: str, value: Any) -> None:
    got = read(write(tmp_path, json.dumps({kind: value})))
    assert got.records == 1


@pytest.mark.parametrize(
    "documents",
    [
        [{"a": 1}, {"b": [1, {"c": 2}]}],
        [{"http_streamed_trace_segment": {"trace_id": "1"}}] * 3,
        [{"x": "text with {braces} and \\n escapes"}, {"y": None}],
    ],
)
@pytest.mark.parametrize("indent", [None, 1, 2])
def test_documents_at_line_starts_split_as_the_exact_splitter_does(
    documents: list[Any], indent: int | None
) -> None:
    data = "\n".join(json.dumps(d, indent=indent) for d in documents).encode() + b"\n"
    fast = envoy_tap._lines_of_documents(data, 0)
    assert fast is not None
    exact = list(envoy_tap._split(data.decode()))
    assert [(d.number, d.value) for d in fast] == [
        (d.number, d.value) for d in exact if isinstance(d, envoy_tap._Document)
    ]


def test_a_broken_document_among_line_started_ones_takes_the_exact_split() -> None:
    data = b'{"a": 1}\n{"b": \n{"c": 3}\n'
    assert envoy_tap._lines_of_documents(data, 0) is None
    items = list(envoy_tap._documents(data, Input(Path("t.json"))))
    assert [type(i).__name__ for i in items] == ["_Document", "_Broken", "_Document"]
