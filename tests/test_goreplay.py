from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shadowdiff
from shadowdiff import schema
from shadowdiff.collect import goreplay, registry
from shadowdiff.collect.base import Input, Options
from shadowdiff.collect.goreplay import COLLECTOR, SEPARATOR
from shadowdiff.errors import InputError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "goreplay"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in nanoseconds
MS = 1_000_000


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
        """(payload number, reason) of each reject."""
        return [(str(r["location"]).rsplit("#", 1)[1], str(r["reason"])) for r in self.rejects]

    def only(self) -> dict[str, Any]:
        assert not self.rejects, self.rejects
        assert len(self.rows) == 1, self.rows
        return self.rows[0]


def read(path: Path, side: str | None = None, **options: Any) -> Read:
    return Read(Input(path, side), Options(**options))


def payload(header: str, message: str | bytes, crlf: bool = True) -> bytes:
    """One GoReplay payload: its header line and an HTTP message (written with ``\\n``; CRLF in
    the head unless ``crlf`` is false), without the separator."""
    data = message.encode() if isinstance(message, str) else message
    if crlf:
        head, sep, body = data.partition(b"\n\n")
        data = head.replace(b"\n", b"\r\n") + (b"\r\n\r\n" if sep else b"") + body
    return header.encode() + b"\n" + data


def gor(*payloads: bytes) -> bytes:
    return b"".join(p + SEPARATOR for p in payloads)


def write(tmp_path: Path, content: bytes, name: str = "requests.gor") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


GET = "GET /api/users/1?full=yes HTTP/1.1\nHost: app:8080\nX-Request-Id: rid-1\n\n"
OK = 'HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 13\n\n{"name":"a"}\n'
FAILED = "HTTP/1.1 500 Internal Server Error\nContent-Length: 5\n\noops!"


def comparison() -> bytes:
    """A 1/2/3 recording: a request, its original answer (200) and the replayed one (500)."""
    return gor(
        payload(f"1 a1b2c3 {T0}", GET),
        payload(f"2 a1b2c3 {T0 + 3 * MS} {2 * MS}", OK),
        payload(f"3 a1b2c3 {T0 + 9 * MS} {40 * MS}", FAILED),
    )


# Real recordings.


def test_real_recording_with_its_original_response() -> None:
    """GoReplay 0.x (``--input-raw-track-response``): the response's timestamp is its request's
    start and its latency the round trip; the HTTP heads are CRLF."""
    path = FIXTURES / "etg_mapmaker_requests.gor"
    assert b"keep-alive\r\n\r\n" in path.read_bytes()  # the heads' CRLFs, as recorded
    row = read(path).only()
    assert row["side"] == "primary"
    assert row["request_id"] == "113f561a06c66a5a49746ea9feb2747a275732f1"
    assert row["location"].endswith("etg_mapmaker_requests.gor#2")
    assert row["start_time"] == datetime(2017, 7, 13, 7, 58, 40, 871971, tzinfo=UTC)
    assert row["duration_ms"] == pytest.approx(352.870697)
    assert (row["method"], row["authority"], row["path"]) == (
        "GET",
        "localhost:3000",
        "/api/mapmaker",
    )
    assert (row["protocol"], row["status"]) == ("HTTP/1.1", 418)
    assert len(row["response_body"]) == 1337 and row["response_body"].endswith(b"</html>")
    assert row["response_body_truncated"] is False
    allowed = [
        h["value"] for h in row["response_headers"] if h["name"] == "Access-Control-Allow-Headers"
    ]
    assert allowed == ["bugs", "features"]  # repeated headers kept, in order
    assert all("\r" not in h["value"] for h in row["request_headers"] + row["response_headers"])
    assert row["request_body"] == b"" and row["bytes_sent"] == 1337


def test_real_requests_only_recording() -> None:
    """The common recording: requests only, LF line ends, multipart bodies whose CRLFs a tool
    turned into LFs (so they are shorter than their Content-Length)."""
    result = read(FIXTURES / "python_goreplay_test.gor")
    assert not result.rejects and result.records == 7
    assert [r["method"] for r in result.rows] == ["POST"] * 5 + ["GET"] * 2
    for row in result.rows:
        assert row["side"] is None and row["status"] is None
        assert row["response_headers"] is None and row["response_body"] is None
        assert row["authority"] == "118.190.9.154"
        assert row["path"] == "/uwsgi/hello?token=3b638c34f6757ecfba1cfb69298bfc4f"
    post = result.rows[0]
    assert post["request_body"].startswith(b"------") and len(post["request_body"]) == 159
    assert post["request_body_truncated"] is True and post["body_truncated"] is True
    assert result.rows[5]["request_body"] == b"" and result.rows[5]["body_truncated"] is False
    assert result.rows[0]["start_time"] == datetime(2020, 8, 12, 7, 37, 44, 666452, tzinfo=UTC)


def test_real_recording_without_host_and_with_a_latency_field() -> None:
    result = read(FIXTURES / "log_to_gor_requests.gor")
    assert not result.rejects
    assert [(r["path"], r["authority"]) for r in result.rows] == [
        ("/", None),
        ("/solr/profile/select?rows=1&q=test&wt=xml&version=2.2", None),
    ]
    assert result.rows[0]["request_id"] == "e2296f0cfaeb76c40104c97bb25ff28e"


def test_fixtures_are_sniffed_as_goreplay() -> None:
    for path in FIXTURES.glob("*.gor"):
        assert COLLECTOR.sniff(path.read_bytes()[:65536]) >= 0.9, path
        assert registry.recognise(path.read_bytes()[:65536]) is COLLECTOR, path


# A whole comparison in one file.


def test_original_and_replayed_responses_are_the_two_sides(tmp_path: Path) -> None:
    result = read(write(tmp_path, comparison()))
    assert not result.rejects and result.records == 2
    primary, mirror = result.rows
    assert (primary["side"], primary["status"]) == ("primary", 200)
    assert (mirror["side"], mirror["status"]) == ("mirror", 500)
    assert primary["request_id"] == mirror["request_id"] == "rid-1"
    assert primary["response_body"] == b'{"name":"a"}\n' and mirror["response_body"] == b"oops!"
    # The original: from the request's start to the response's end; the replay: its round trip.
    assert primary["duration_ms"] == pytest.approx(5.0)
    assert mirror["duration_ms"] == pytest.approx(40.0)
    assert primary["start_time"] == mirror["start_time"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert primary["location"].endswith("#2") and mirror["location"].endswith("#3")
    assert primary["request_headers"] == mirror["request_headers"]


def test_goreplay_id_is_the_request_id_without_the_header(tmp_path: Path) -> None:
    request = "GET / HTTP/1.1\nHost: app\n\n"
    path = write(tmp_path, gor(payload(f"1 ff00 {T0}", request), payload(f"2 ff00 {T0} 1", OK)))
    assert read(path).only()["request_id"] == "ff00"


def test_the_configured_request_id_header_is_used(tmp_path: Path) -> None:
    request = "GET / HTTP/1.1\nHost: app\nX-Trace: t-9\nX-Request-Id: rid-1\n\n"
    path = write(tmp_path, gor(payload(f"1 ff00 {T0}", request)))
    assert read(path, request_id_header="X-TRACE").only()["request_id"] == "t-9"


def test_replayed_header_with_round_trip_first(tmp_path: Path) -> None:
    """Some GoReplay versions write ``3 ID ROUND_TRIP STARTED``: told apart by size."""
    content = gor(
        payload(f"1 ab {T0}", GET),
        payload(f"3 ab {25 * MS} {T0 + MS}", OK),
    )
    row = read(write(tmp_path, content)).only()
    assert row["side"] == "mirror" and row["duration_ms"] == pytest.approx(25.0)


def test_responses_may_come_before_their_request(tmp_path: Path) -> None:
    content = gor(
        payload(f"3 ab {T0 + 2 * MS} {MS}", FAILED),
        payload(f"2 ab {T0 + MS} {MS}", OK),
        payload(f"1 ab {T0}", GET),
    )
    result = read(write(tmp_path, content))
    assert not result.rejects
    assert sorted((r["side"], r["status"]) for r in result.rows) == [
        ("mirror", 500),
        ("primary", 200),
    ]


def test_a_side_given_by_the_user_wins(tmp_path: Path) -> None:
    content = gor(payload(f"1 ab {T0}", GET), payload(f"2 ab {T0} {MS}", OK))
    assert read(write(tmp_path, content), side="mirror").only()["side"] == "mirror"


def test_a_whole_comparison_given_as_one_side_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, comparison())
    with pytest.raises(InputError, match="--input instead of --primary"):
        read(path, side="primary")


# HTTP messages.


def test_crlf_and_lf_give_the_same_exchanges(tmp_path: Path) -> None:
    def rows(crlf: bool) -> list[dict[str, Any]]:
        content = gor(payload(f"1 ab {T0}", GET, crlf), payload(f"2 ab {T0} {MS}", OK, crlf))
        found = read(write(tmp_path, content, f"crlf-{crlf}.gor")).rows
        return [{k: v for k, v in r.items() if k != "location"} for r in found]

    assert rows(True) == rows(False)


def test_chunked_body_is_dechunked(tmp_path: Path) -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    content = gor(payload(f"1 ab {T0}", GET), payload(f"2 ab {T0} {MS}", response, crlf=False))
    row = read(write(tmp_path, content)).only()
    assert row["response_body"] == b"hello, world" and row["response_body_truncated"] is False
    assert {"name": "Transfer-Encoding", "value": "chunked"} in row["response_headers"]


def test_chunked_body_cut_short_is_kept_and_marked(tmp_path: Path) -> None:
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n9\r\nwor"
    content = gor(payload(f"1 ab {T0}", GET), payload(f"2 ab {T0} {MS}", response, crlf=False))
    row = read(write(tmp_path, content)).only()
    assert row["response_body"] == b"hellowor" and row["response_body_truncated"] is True


def test_bad_chunk_size_is_rejected(tmp_path: Path) -> None:
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"
    content = gor(payload(f"1 ab {T0}", GET), payload(f"2 ab {T0} {MS}", response, crlf=False))
    [(where, reason)] = read(write(tmp_path, content)).reasons
    assert where == "2" and "'-5' is not a chunk size" in reason


def test_body_shorter_than_its_content_length_is_marked_truncated(tmp_path: Path) -> None:
    """GoReplay cuts messages longer than --copy-buffer-size."""
    response = "HTTP/1.1 200 OK\nContent-Length: 100\n\nonly this"
    content = gor(payload(f"1 ab {T0}", GET), payload(f"2 ab {T0} {MS}", response))
    row = read(write(tmp_path, content)).only()
    assert row["response_body"] == b"only this" and row["response_body_truncated"] is True
    assert row["body_truncated"] is True


def test_bodies_are_capped_at_max_body_bytes(tmp_path: Path) -> None:
    response = "HTTP/1.1 200 OK\nContent-Length: 10\n\n0123456789"
    post = "POST /x HTTP/1.1\nHost: app\nContent-Length: 6\n\nabcdef"
    content = gor(payload(f"1 ab {T0}", post), payload(f"2 ab {T0} {MS}", response))
    row = read(write(tmp_path, content), max_body_bytes=4).only()
    assert (row["request_body"], row["response_body"]) == (b"abcd", b"0123")
    assert row["request_body_truncated"] and row["response_body_truncated"]
    assert (row["bytes_received"], row["bytes_sent"]) == (6, 10)


def test_content_encoding_is_kept_as_received(tmp_path: Path) -> None:
    body = gzip.compress(b'{"a": 1}')
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    content = gor(payload(f"1 ab {T0}", GET), payload(f"2 ab {T0} {MS}", response, crlf=False))
    assert read(write(tmp_path, content)).only()["response_body"] == body


def test_responses_without_a_body(tmp_path: Path) -> None:
    head = "HEAD / HTTP/1.1\nHost: app\n\n"
    content = gor(
        payload(f"1 h1 {T0}", head),
        payload(f"2 h1 {T0} {MS}", "HTTP/1.1 200 OK\nContent-Length: 500\n\n"),
        payload(f"1 n1 {T0}", GET),
        payload(f"2 n1 {T0} {MS}", "HTTP/1.1 304 Not Modified\nContent-Length: 500\n\n"),
    )
    result = read(write(tmp_path, content))
    assert not result.rejects
    for row in result.rows:
        assert row["response_body"] == b"" and row["response_body_truncated"] is False


def test_absolute_form_target_and_folded_header(tmp_path: Path) -> None:
    request = "GET http://user@proxy.example:81/a/b?c=d HTTP/1.1\nX-Long: one\n  two\n\n"
    row = read(write(tmp_path, gor(payload(f"1 ab {T0}", request)))).only()
    assert (row["authority"], row["path"]) == ("proxy.example:81", "/a/b?c=d")
    assert {"name": "X-Long", "value": "one two"} in row["request_headers"]


def test_compressed_recording_reads_the_same(tmp_path: Path) -> None:
    plain = read(write(tmp_path, comparison())).rows
    packed = read(write(tmp_path, gzip.compress(comparison()), "requests.gor.gz")).rows
    strip = [{k: v for k, v in r.items() if k != "location"} for r in plain]
    assert strip == [{k: v for k, v in r.items() if k != "location"} for r in packed]


# Bad input: a rejects row naming the file and the payload, never another exception.


def test_truncated_last_payload_is_rejected(tmp_path: Path) -> None:
    content = comparison() + payload(f"1 cut {T0}", "GET /next HTTP/1.1\nHost: ap", crlf=False)
    result = read(write(tmp_path, content))
    assert len(result.rows) == 2
    [(where, reason)] = result.reasons
    assert where == "4" and reason.startswith("truncated")
    assert result.rejects[0]["location"] == f"{tmp_path / 'requests.gor'}#4"
    assert result.rejects[0]["source"] == str(tmp_path / "requests.gor")


def test_unknown_payload_type_is_rejected(tmp_path: Path) -> None:
    content = gor(payload(f"1 ab {T0}", GET), payload(f"4 ab {T0}", OK))
    result = read(write(tmp_path, content))
    assert [r["request_id"] for r in result.rows] == ["rid-1"]
    [(where, reason)] = result.reasons
    assert where == "2" and "unknown payload type '4'" in reason


def test_unmatched_payloads_are_rejected(tmp_path: Path) -> None:
    content = gor(
        payload(f"1 ab {T0}", GET),
        payload(f"2 ab {T0} {MS}", OK),
        payload(f"1 lonely {T0}", GET),  # no response, while the file holds responses
        payload(f"2 orphan {T0} {MS}", OK),  # no request
        payload(f"2 ab {T0} {MS}", OK),  # a second original response for ab
    )
    result = read(write(tmp_path, content))
    assert len(result.rows) == 1 and result.records == 4
    reasons = dict(result.reasons)
    assert "without a response" in reasons["3"]
    assert "whose request" in reasons["4"]
    assert "a second type-2 response" in reasons["5"]


def test_malformed_messages_are_rejected(tmp_path: Path) -> None:
    content = gor(
        payload(f"1 a {T0}", "BROKEN\nHost: x\n\n"),
        payload(f"2 a {T0} {MS}", OK),  # its request cannot be read
        payload(f"1 b {T0}", GET),
        payload(f"2 b {T0} {MS}", "HTTP/1.1 OK\n\n"),  # no status code
        payload(f"1 c {T0}", "GET / HTTP/1.1\nno colon here\n\n"),
        payload(f"1 d {T0} soon", GET),  # the latency is not a number
        payload(f"1 e {'9' * 30}", GET),  # nor is the timestamp one (out of range)
        payload("1", GET),  # no id
    )
    result = read(write(tmp_path, content))
    assert not result.rows
    reasons = dict(result.reasons)
    assert "not an HTTP request line" in reasons["1"]
    assert "its request (#1) cannot be read" in reasons["2"]
    assert "not an HTTP status line" in reasons["4"]
    assert "not a header field" in reasons["5"]
    assert "not a number" in reasons["6"]
    assert "not a number" in reasons["7"]
    assert "no payload id" in reasons["8"]
    assert result.records == len(result.rejects) == 7  # the request "b" has no usable answer


def test_a_file_that_is_not_goreplay_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"127.0.0.1 - - [01/Jan/2026] GET / 200\n")
    with pytest.raises(InputError, match="not a GoReplay recording"):
        read(path)


def test_sniff_scores() -> None:
    header = f"1 0123abcd {T0}\n".encode()
    assert COLLECTOR.sniff(header + b"GET / HTTP/1.1\r\n") == 0.8
    assert COLLECTOR.sniff(comparison()) == 0.95
    assert COLLECTOR.sniff(b'{"log": {"entries": []}}') == 0.0
    assert COLLECTOR.sniff(b'[2026-01-01T00:00:00.000Z] "GET / HTTP/1.1" 200') == 0.0


def test_registered() -> None:
    assert "goreplay" in registry.names()
    assert registry.get("goreplay") is COLLECTOR


def test_every_truncation(tmp_path: Path) -> None:
    base = comparison()
    path = tmp_path / "cut.gor"
    for end in range(len(base) + 1):
        path.write_bytes(base[:end])
        try:
            result = read(path)
        except InputError:
            continue
        assert result.records == len(result.rows) + len(result.rejects)
        assert all(str(r["location"]).startswith(f"{path}#") for r in result.rejects)


def _mutations() -> st.SearchStrategy[bytes]:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    base = comparison() + gor(
        payload(f"1 zz {T0}", GET), payload(f"2 zz {T0} 5", chunked, crlf=False)
    )
    cut = st.integers(0, len(base)).map(lambda n: base[:n])
    flips = st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(1, 255)), max_size=8)
    flipped = flips.map(lambda fs: _flip(base, fs))
    noise = st.binary(max_size=300)
    spliced = st.tuples(cut, noise).map(lambda p: p[0] + SEPARATOR + p[1])
    return st.one_of(cut, flipped, noise, spliced)


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for at, mask in flips:
        out[at] ^= mask
    return bytes(out)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=_mutations(), side=st.sampled_from([None, "mirror"]))
def test_any_bytes_give_rows_and_rejects_or_an_input_error(
    tmp_path: Path, content: bytes, side: str | None
) -> None:
    path = write(tmp_path, content, "fuzz.gor")
    try:
        result = read(path, side)
    except InputError:
        return
    assert result.records == len(result.rows) + len(result.rejects)
    for row in result.rows:
        assert row["location"].startswith(f"{path}#") and row["source"] == "goreplay"
        assert row["side"] in ({side} if side else {"primary", "mirror", None})
    for rejected in result.rejects:
        assert str(rejected["location"]).startswith(f"{path}#")
        assert rejected["source"] == str(path) and rejected["reason"]


# End to end.


def test_a_comparison_recording_finds_the_difference(tmp_path: Path) -> None:
    content = comparison() + gor(
        payload(f"1 same {T0}", GET.replace("rid-1", "rid-2")),
        payload(f"2 same {T0} {MS}", OK),
        payload(f"3 same {T0} {MS}", OK),
    )
    path = write(tmp_path, content)
    result = shadowdiff.run(inputs=[str(path)], out=tmp_path / "run")
    assert result.manifest["outcomes"]["diverged"] == 1
    assert result.manifest["outcomes"]["match"] == 1
    con = shadowdiff.open(tmp_path / "run")
    pairs = con.sql(
        "SELECT request_id, outcome, primary_status, mirror_status FROM pairs"
    ).fetchall()
    assert sorted(pairs) == [("rid-1", "diverged", 200, 500), ("rid-2", "match", 200, 200)]
    [source] = {i["source"] for i in result.manifest["inputs"]}
    assert source == goreplay.NAME
