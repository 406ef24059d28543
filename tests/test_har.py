from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shadowdiff
from shadowdiff import schema
from shadowdiff.collect import har, registry
from shadowdiff.collect.base import Input, Options
from shadowdiff.collect.har import COLLECTOR
from shadowdiff.errors import InputError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "har"


class Read:
    """Everything one ``read`` call gave: rows, rejects and the records it counted."""

    def __init__(self, source: Input, options: Options) -> None:
        self.tables: list[pa.Table] = []
        self.rejects: list[dict[str, object]] = []
        self.records = 0
        self.batches = 0
        for batch in COLLECTOR.read(source, options):
            assert batch.exchanges.schema.equals(schema.EXCHANGES)
            self.tables.append(batch.exchanges)
            self.rejects.extend(batch.rejects)
            self.records += batch.records
            self.batches += 1
        self.rows: list[dict[str, Any]] = [r for t in self.tables for r in t.to_pylist()]

    @property
    def reasons(self) -> list[tuple[str, str]]:
        """(entry number, reason) of each reject."""
        return [(str(r["location"]).rsplit("#", 1)[1], str(r["reason"])) for r in self.rejects]

    def only(self) -> dict[str, Any]:
        assert not self.rejects, self.rejects
        assert len(self.rows) == 1, self.rows
        return self.rows[0]


def read(path: Path, side: str | None = None, **options: Any) -> Read:
    return Read(Input(path, side), Options(**options))


def entry(
    path: str = "/api/users/1?full=yes",
    request_id: str | None = "rid-1",
    status: int = 200,
    body: Any = None,
    **fields: Any,
) -> dict[str, Any]:
    """A HAR entry as devtools write it, with ``fields`` replacing or adding entry fields."""
    headers = [{"name": "accept", "value": "application/json"}]
    if request_id is not None:
        headers.append({"name": "X-Request-Id", "value": request_id})
    text = json.dumps(body if body is not None else {"id": 1, "name": "a"})
    value: dict[str, Any] = {
        "startedDateTime": "2026-01-01T00:00:00.250Z",
        "time": 12.5,
        "request": {
            "method": "GET",
            "url": f"https://app.example:8443{path}",
            "httpVersion": "HTTP/1.1",
            "headers": headers,
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": status,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "content-type", "value": "application/json"}],
            "cookies": [],
            "content": {"size": len(text), "mimeType": "application/json", "text": text},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": len(text),
        },
        "cache": {},
        "timings": {"send": 1, "wait": 10, "receive": 1.5},
    }
    value.update(fields)
    return value


def document(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": entries}
    }


def write(tmp_path: Path, content: Any, name: str = "export.har", indent: Any = 2) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes | str):
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    else:
        path.write_text(json.dumps(content, indent=indent))
    return path


# Real exports.


def test_chrome_http2_export_with_a_post_body() -> None:
    row = read(FIXTURES / "chrome_postdata.har").only()
    assert (row["method"], row["authority"], row["path"]) == (
        "POST",
        "signal-metrics-collector-beta.s-onetag.com",
        "/metrics",
    )
    names = [h["name"] for h in row["request_headers"]]
    assert ":scheme" in names and not {":authority", ":method", ":path"} & set(names)
    assert len(row["request_body"]) == 1310 and row["request_body"].startswith(b'{"metadata"')
    assert (row["protocol"], row["status"]) == ("HTTP/2", 200)
    assert row["start_time"] == datetime(2023, 7, 15, 13, 37, 26, 93000, tzinfo=UTC)
    assert row["duration_ms"] == pytest.approx(169.796, abs=1e-3)
    assert (row["server_addr"], row["server_port"]) == ("99.83.181.31", 443)
    assert row["response_body"] == b"" and row["bytes_received"] == 1310
    assert row["request_id"] is None  # no x-request-id: normalisation rejects it
    assert row["side"] is None and row["source"] == "har"
    assert row["location"].endswith("chrome_postdata.har#1")


def test_tab_indented_insomnia_export() -> None:
    row = read(FIXTURES / "insomnia.har").only()
    assert (row["authority"], row["path"], row["server_port"]) == ("mitm.it", "/", 80)
    assert row["request_body"] == b""  # postData with empty text and no params
    assert len(row["response_body"]) == 250 and row["response_body"].startswith(b"<div")
    assert row["duration_ms"] == pytest.approx(70.402)


def test_mitmproxy_export_with_form_params() -> None:
    result = read(FIXTURES / "mitmproxy_successful_log.har")
    assert not result.rejects
    get, post = result.rows
    assert get["start_time"] == datetime(2023, 7, 25, 10, 42, 1, 726810, tzinfo=UTC)
    assert len(get["response_body"]) == 1256 and get["bytes_sent"] == 1256
    assert post["request_body"] == b"key1=value1&key2=value2"
    assert json.loads(post["response_body"])["form"] == {"key1": "value1", "key2": "value2"}
    assert post["duration_ms"] == pytest.approx(14989.962, abs=1e-3)


def test_fiddler_export_with_a_byte_order_mark_on_one_line() -> None:
    assert (FIXTURES / "fiddler_with_bom.har").read_bytes().startswith(b"\xef\xbb\xbf")
    row = read(FIXTURES / "fiddler_with_bom.har").only()
    # Seven fractional digits and a +03:00 offset.
    assert row["start_time"] == datetime(2024, 7, 6, 19, 27, 16, 785774, tzinfo=UTC)
    assert (row["authority"], row["status"], row["duration_ms"]) == ("www.example.com", 200, 1551)
    assert len(row["response_body"]) == 1256


def test_unanswered_requests_keep_null_response_columns() -> None:
    """mitmproxy writes flows without a response as status 0."""
    result = read(FIXTURES / "mitmproxy_incomplete_log.har")
    assert not result.rejects and len(result.rows) == 4
    for row in result.rows:
        assert row["status"] is None and row["response_headers"] is None
        assert row["response_body"] is None and row["duration_ms"] is None
    assert [r["method"] for r in result.rows] == ["GET", "GET", "POST", "POST"]


def test_empty_body_under_a_content_encoding_stays_empty() -> None:
    row = read(FIXTURES / "mitmproxy_corrupted_gzip_body.har").only()
    assert row["response_body"] == b"" and row["authority"] == "127.0.0.1:5000"
    assert {"name": "Content-Encoding", "value": "gzip"} in row["response_headers"]


def test_fixtures_are_sniffed_as_har() -> None:
    for path in FIXTURES.glob("*.har"):
        head = path.read_bytes()[:65536]
        assert COLLECTOR.sniff(head) >= 0.9, path
        assert registry.recognise(head) is COLLECTOR, path


# Fields.


def test_request_id_from_the_configured_header(tmp_path: Path) -> None:
    value = entry()
    value["request"]["headers"].append({"name": "x-trace", "value": "t-7"})
    path = write(tmp_path, document(value))
    assert read(path).only()["request_id"] == "rid-1"
    assert read(path, request_id_header="X-Trace").only()["request_id"] == "t-7"


def test_no_request_id_is_null_not_taken_from_the_response(tmp_path: Path) -> None:
    value = entry(request_id=None)
    value["response"]["headers"].append({"name": "x-request-id", "value": "made-up"})
    assert read(write(tmp_path, document(value))).only()["request_id"] is None


def test_url_gives_authority_path_and_port(tmp_path: Path) -> None:
    value = entry()
    value["request"]["url"] = "http://user:secret@app.example/a/b?c=1&d=2#section"
    row = read(write(tmp_path, document(value))).only()
    assert (row["authority"], row["path"], row["server_port"]) == (
        "app.example",
        "/a/b?c=1&d=2",
        80,
    )
    assert read(write(tmp_path, document(entry()), "b.har")).only()["server_port"] == 8443


def test_base64_content_is_decoded(tmp_path: Path) -> None:
    value = entry()
    value["response"]["content"] = {
        "size": 4,
        "mimeType": "image/png",
        "encoding": "base64",
        "text": base64.b64encode(b"\x89PNG").decode(),
    }
    assert read(write(tmp_path, document(value))).only()["response_body"] == b"\x89PNG"


def test_bodies_not_captured_are_null(tmp_path: Path) -> None:
    value = entry()
    value["response"]["content"] = {"size": 2048, "mimeType": "text/html"}  # no text
    value["request"]["bodySize"] = 10  # and no postData
    row = read(write(tmp_path, document(value))).only()
    assert row["response_body"] is None and row["request_body"] is None
    empty = entry()
    empty["response"]["content"] = {"size": 0, "mimeType": "text/html"}
    assert read(write(tmp_path, document(empty), "b.har")).only()["response_body"] == b""


def test_post_params_without_text_are_rebuilt_as_a_form(tmp_path: Path) -> None:
    value = entry()
    value["request"]["postData"] = {
        "mimeType": "application/x-www-form-urlencoded",
        "params": [{"name": "q", "value": "a b&c"}, {"name": "page", "value": "2"}],
    }
    assert read(write(tmp_path, document(value))).only()["request_body"] == b"q=a+b%26c&page=2"


def test_bodies_are_encoded_as_their_headers_say(tmp_path: Path) -> None:
    """Exporters store decoded bodies; the body is gzipped again so it is as the headers say."""
    value = entry(body={"a": 1})
    value["response"]["headers"].append({"name": "Content-Encoding", "value": "gzip"})
    row = read(write(tmp_path, document(value))).only()
    assert gzip.decompress(row["response_body"]) == b'{"a": 1}'
    again = read(write(tmp_path, document(value), "b.har")).only()
    assert again["response_body"] == row["response_body"]  # equal bodies stay equal bytes
    for coding in ("identity", "compress"):
        other = entry(body={"a": 1})
        other["response"]["headers"].append({"name": "Content-Encoding", "value": coding})
        body = read(write(tmp_path, document(other), f"{coding}.har")).only()["response_body"]
        assert body == b'{"a": 1}'


def test_bodies_are_capped(tmp_path: Path) -> None:
    value = entry(body="x" * 100)
    value["request"]["postData"] = {"mimeType": "text/plain", "text": "y" * 50}
    row = read(write(tmp_path, document(value)), max_body_bytes=10).only()
    assert (row["request_body"], row["response_body"]) == (b"y" * 10, b'"' + b"x" * 9)
    assert row["request_body_truncated"] and row["response_body_truncated"]
    assert row["body_truncated"] is True


def test_sizes_out_of_range_are_null(tmp_path: Path) -> None:
    value = entry()
    value["request"]["bodySize"] = 10**23  # a JSON number orjson reads as a float
    assert read(write(tmp_path, document(value))).only()["bytes_received"] is None


def test_duration_from_timings_without_time(tmp_path: Path) -> None:
    value = entry()
    del value["time"]
    value["timings"] = {"blocked": -1, "dns": 2, "connect": 5, "ssl": 3, "send": 1, "wait": 9}
    assert read(write(tmp_path, document(value))).only()["duration_ms"] == 17


def test_dates_without_an_offset_are_utc(tmp_path: Path) -> None:
    row = read(write(tmp_path, document(entry(startedDateTime="2026-02-03T04:05:06.5")))).only()
    assert row["start_time"] == datetime(2026, 2, 3, 4, 5, 6, 500000, tzinfo=UTC)


def test_http_versions_are_named_as_envoy_names_them(tmp_path: Path) -> None:
    versions = ["http/2.0", "h3", "HTTP/1.0", "", "SPDY/3"]
    entries = []
    for version in versions:
        value = entry()
        value["request"]["httpVersion"] = version
        entries.append(value)
    rows = read(write(tmp_path, document(*entries))).rows
    assert [r["protocol"] for r in rows] == ["HTTP/2", "HTTP/3", "HTTP/1.0", None, "SPDY/3"]


def test_the_side_is_the_inputs(tmp_path: Path) -> None:
    assert read(write(tmp_path, document(entry())), side="mirror").only()["side"] == "mirror"


# Layout and size.


@pytest.mark.parametrize("indent", [None, 1, 4, "\t"])
def test_layouts_give_the_same_exchanges(tmp_path: Path, indent: Any) -> None:
    entries = [entry(path=f"/items/{i}", request_id=f"r{i}", body={"i": i}) for i in range(5)]
    expected = read(write(tmp_path, document(*entries), "expected.har")).rows
    found = read(write(tmp_path, document(*entries), indent=indent)).rows
    strip = [{k: v for k, v in r.items() if k != "location"} for r in expected]
    assert strip == [{k: v for k, v in r.items() if k != "location"} for r in found]


def test_entries_are_read_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file far larger than the pieces it is read in: the buffer holds about one entry."""
    monkeypatch.setattr(har, "READ_BYTES", 4096)
    monkeypatch.setattr(har, "BATCH_ROWS", 7)
    big_body = {"blob": "z" * 20_000}  # one entry larger than a piece
    entries = [entry(request_id=f"r{i}", body=big_body if i == 3 else None) for i in range(200)]
    path = write(tmp_path, document(*entries))
    longest = 0
    more = har._Scanner.more

    def counting(scanner: har._Scanner) -> bool:
        nonlocal longest
        longest = max(longest, len(scanner.buffer))
        return more(scanner)

    monkeypatch.setattr(har._Scanner, "more", counting)
    result = read(path)
    assert [r["request_id"] for r in result.rows] == [f"r{i}" for i in range(200)]
    assert json.loads(result.rows[3]["response_body"]) == big_body
    assert result.batches == 29  # cut every 7 rows
    assert longest < 20_000 + 4 * 4096 and path.stat().st_size > 8 * longest


def test_compressed_export_reads_the_same(tmp_path: Path) -> None:
    plain = write(tmp_path, document(entry(), entry(request_id="r2")))
    packed = tmp_path / "export.har.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert [r["request_id"] for r in read(packed).rows] == ["rid-1", "r2"]


def test_an_empty_log_holds_no_record(tmp_path: Path) -> None:
    result = read(write(tmp_path, document()))
    assert result.records == 0 and not result.rows


# Bad input.


def test_a_file_that_is_not_json_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not start with a JSON object"):
        read(write(tmp_path, "<html>not a HAR</html>"))
    with pytest.raises(InputError, match="not a usable HAR file: it is not JSON"):
        read(write(tmp_path, '{"log" "entries"}', "b.har"))
    with pytest.raises(InputError, match="no log.entries"):
        read(write(tmp_path, {"log": {"version": "1.2", "pages": [{"id": "p"}]}}, "c.har"))
    with pytest.raises(InputError, match="ends before its log.entries"):
        read(write(tmp_path, '{"log": {"version": "1.2", "creator": {"na', "d.har"))


def test_entry_without_a_response_is_rejected(tmp_path: Path) -> None:
    value = entry()
    del value["response"]
    result = read(write(tmp_path, document(entry(), value, entry(request_id="r3"))))
    assert [r["request_id"] for r in result.rows] == ["rid-1", "r3"]
    [(where, reason)] = result.reasons
    assert where == "2" and reason.startswith("no response object")
    assert result.rejects[0]["location"] == f"{tmp_path / 'export.har'}#2"
    assert result.rejects[0]["source"] == str(tmp_path / "export.har")
    assert "startedDateTime" in str(result.rejects[0]["excerpt"])


def test_entries_that_cannot_be_exchanges_are_rejected(tmp_path: Path) -> None:
    bad_base64 = entry()
    bad_base64["response"]["content"] = {"size": 3, "encoding": "base64", "text": "@@@"}
    no_url = entry()
    del no_url["request"]["url"]
    entries = [
        entry(startedDateTime="yesterday"),
        bad_base64,
        no_url,
        entry(status=42),
        entry(_fromCache="disk"),
        entry(request="GET /"),
        entry(),
    ]
    result = read(write(tmp_path, document(*entries)))
    reasons = dict(result.reasons)
    assert "is not an ISO 8601 date" in reasons["1"]
    assert "not valid base64" in reasons["2"]
    assert "request.url is missing" in reasons["3"]
    assert "not an HTTP status code" in reasons["4"]
    assert "browser's disk cache" in reasons["5"]
    assert "request is missing or not a JSON object" in reasons["6"]
    assert len(result.rows) == 1 and result.rows[0]["location"].endswith("#7")
    assert result.records == 7


def test_invalid_json_in_an_entry_rejects_that_entry_only(tmp_path: Path) -> None:
    text = json.dumps(document(entry(), entry(request_id="r2"), entry(request_id="r3")), indent=2)
    text = text.replace('"time": 12.5', '"time": 12.5.5', 2)  # entries 1 and 2
    result = read(write(tmp_path, text))
    assert [r["request_id"] for r in result.rows] == ["r3"]
    assert [where for where, _ in result.reasons] == ["1", "2"]
    assert all(reason.startswith("not valid JSON") for _, reason in result.reasons)


def test_a_file_cut_inside_an_entry(tmp_path: Path) -> None:
    text = json.dumps(document(entry(), entry(request_id="r2"), entry(request_id="r3")), indent=2)
    cut = text[: text.index('"r3"')]
    result = read(write(tmp_path, cut))
    assert [r["request_id"] for r in result.rows] == ["rid-1", "r2"]
    [(where, reason)] = result.reasons
    assert where == "3" and reason.startswith("truncated: the file ends inside this entry")


def test_a_file_cut_between_entries(tmp_path: Path) -> None:
    text = json.dumps(document(entry(), entry(request_id="r2")), indent=2)
    cut = text[: text.rindex("]")]
    result = read(write(tmp_path, cut))
    assert len(result.rows) == 2
    assert result.reasons == [
        (
            "3",
            "truncated: the file ends after entry 2, before log.entries ends. Was it still "
            "being written, or copied in part?",
        )
    ]


def test_unbalanced_brackets_stop_the_reading(tmp_path: Path) -> None:
    text = json.dumps(document(entry(), entry(request_id="r2")))  # on one line
    broken = text.replace('"cookies": []', '"cookies": [}', 1)
    result = read(write(tmp_path, broken))
    assert not result.rows
    [(where, reason)] = result.reasons
    assert where == "1" and "unbalanced '}'" in reason


def test_an_entry_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    text = json.dumps(document(entry()))[: -len("]}}")] + ', "oops", 3]}}'
    result = read(write(tmp_path, text))
    assert len(result.rows) == 1
    assert result.reasons == [
        ("2", "the entry is not a JSON object"),
        ("3", "the entry is not a JSON object"),
    ]


def test_sniff_scores() -> None:
    assert COLLECTOR.sniff(b'\xef\xbb\xbf{\n  "log": {\n    "version": "1.2"') == 0.95
    assert COLLECTOR.sniff(b'{"version": 1, "log": {"creator": {}}}') == 0.85
    assert COLLECTOR.sniff(b'{"log": "just a message", "level": "info"}\n') == 0.0
    assert COLLECTOR.sniff(b"1 abc 1767225600000000000\nGET / HTTP/1.1\r\n") == 0.0


def test_registered() -> None:
    assert "har" in registry.names()
    assert registry.get("har") is COLLECTOR


def _mutations() -> st.SearchStrategy[bytes]:
    value = entry()
    value["request"]["postData"] = {"mimeType": "text/plain", "text": "hi"}
    base = orjson.dumps(
        document(entry(), value, entry(request_id="r3")), option=orjson.OPT_INDENT_2
    )
    cut = st.integers(0, len(base)).map(lambda n: base[:n])
    flips = st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(1, 255)), max_size=6)
    flipped = flips.map(lambda fs: _flip(base, fs))
    noise = st.binary(max_size=200)
    prefixed = noise.map(lambda junk: b'{"log": {"entries": [' + junk)
    return st.one_of(cut, flipped, noise, prefixed)


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for at, mask in flips:
        out[at] ^= mask
    return bytes(out)


def _check(path: Path) -> None:
    """Reading ``path`` gives rows and rejects, every entry once and in order, or an
    ``InputError``; nothing else."""
    try:
        result = read(path, "primary")
    except InputError:
        return
    assert result.records == len(result.rows) + len(result.rejects)
    numbers = []
    for row in result.rows:
        assert row["location"].startswith(f"{path}#") and row["side"] == "primary"
        numbers.append(int(row["location"].rsplit("#", 1)[1]))
    for rejected in result.rejects:
        assert str(rejected["location"]).startswith(f"{path}#") and rejected["reason"]
        numbers.append(int(str(rejected["location"]).rsplit("#", 1)[1]))
    assert sorted(numbers) == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("option", [0, orjson.OPT_INDENT_2])
def test_every_truncation(tmp_path: Path, option: int) -> None:
    small = {"request": {"method": "GET", "url": "http://a/"}, "response": {"status": 200}}
    base = orjson.dumps(document(small, small), option=option)
    path = tmp_path / "cut.har"
    for end in range(len(base) + 1):
        path.write_bytes(base[:end])
        _check(path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=_mutations())
def test_any_bytes_give_rows_and_rejects_or_an_input_error(tmp_path: Path, content: bytes) -> None:
    _check(write(tmp_path, content, "fuzz.har"))


# End to end.


def test_two_exports_find_the_planted_difference(tmp_path: Path) -> None:
    primary = [
        entry(path="/api/users/1", request_id="r1", body={"id": 1, "likes": 3}),
        entry(path="/api/users/2", request_id="r2", body={"id": 2, "likes": 5}),
        entry(path="/api/health", request_id=None),
    ]
    mirror = [
        entry(path="/api/users/1", request_id="r1", body={"id": 1, "likes": 4}),
        entry(path="/api/users/2", request_id="r2", body={"id": 2, "likes": 5}),
    ]
    a = write(tmp_path, document(*primary), "a.har")
    b = write(tmp_path, document(*mirror), "b.har", indent="\t")
    result = shadowdiff.run(primary=[str(a)], mirror=[str(b)], out=tmp_path / "run")
    assert result.manifest["outcomes"]["diverged"] == 1
    assert result.manifest["outcomes"]["match"] == 1
    con = shadowdiff.open(tmp_path / "run")
    diffs = con.sql("SELECT request_id, part, path, primary_value, mirror_value FROM diffs")
    assert diffs.fetchall() == [("r1", "body", "$.likes", "3", "4")]
    rejects = con.sql("SELECT location, reason FROM rejects").fetchall()
    assert rejects == [(f"{a}#3", "no request id (x-request-id)")]
