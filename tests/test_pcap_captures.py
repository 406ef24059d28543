"""Real captures from other projects' test suites (``tests/fixtures/captures``, copied byte for
byte from the team's shared folder; its README.md says where each came from):
our counts against tshark's, and where they differ, why.

tshark counts HTTP requests and responses it could dissect; we count records: every request is
an exchange or a ``rejects`` row, every final response answers a request or is a reject, and
interim (1xx) responses are not records. So:

- a request whose response the capture lost is a reject ("response missing"), where tshark
  counts the request and no response;
- a response whose request the capture lost is a reject, where tshark counts a response and no
  request;
- a response whose body has a hole in the capture is kept, marked truncated; tshark cannot
  reassemble it and counts no response;
- ``100 Continue`` is one of tshark's responses, and not a record here.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import pytest

from shadowdiff.collect import registry
from shadowdiff.collect.base import Input, Options
from shadowdiff.collect.pcap import Capture
from shadowdiff.diff.decode import decode

CAPTURES = Path(__file__).parent / "fixtures" / "captures"

pytestmark = pytest.mark.skipif(
    not CAPTURES.is_dir(), reason=f"the shared captures are not here ({CAPTURES})"
)

RESPONSE_MISSING = "response missing (capture lost it or ended)"
LOST_REQUEST = "response to a request the capture lost"


@dataclass(frozen=True)
class Expected:
    tshark_requests: int
    tshark_responses: int
    exchanges: int
    truncated: int = 0  # exchanges whose response body has a hole
    rejects: tuple[str, ...] = ()  # their reasons
    why: str = "the same as tshark"


EXPECTED = {
    "arkime_wireshark-retrans.pcap": Expected(4, 4, 4),
    "pcap2har_http-chunked-gzip.pcap": Expected(1, 1, 1),
    "suricata-verify_http-pipeline-files-with-gap.pcap": Expected(
        3,
        1,
        3,
        truncated=1,
        why="after the gap we find the 2nd and 3rd status lines again; the 2nd response's "
        "body fell in the gap (kept, truncated), the 3rd is whole. tshark's reassembly gives "
        "up on both.",
    ),
    "suricata-verify_http-protocol-nodup.pcap": Expected(40, 40, 40),
    "suricata-verify_http-sticky-start.pcap": Expected(3, 3, 3),
    "zeek_100-continue.pcap": Expected(
        1, 2, 1, why="tshark counts the interim 100 Continue; only the final 200 is paired"
    ),
    "zeek_1000-requests-one-dropped-response.pcap": Expected(
        1000,
        999,
        999,
        rejects=(RESPONSE_MISSING,),
        why="the first response's headers are not in the capture: its request is a reject",
    ),
    "zeek_bro.org.pcap": Expected(
        31,
        30,
        31,
        truncated=1,
        why="the response tshark misses (jquery.cycle.all.min.js) has 7240 bytes lost from its "
        "body: kept here, marked truncated",
    ),
    "zeek_cooper-grill-dvwa.pcapng": Expected(3, 3, 3),
    "zeek_handshake-reorder.pcap": Expected(1, 1, 1),
    "zeek_m57-long-49583-80.pcap": Expected(3, 3, 3),
    "zeek_vlan-collisions.pcap": Expected(
        1, 1, 3, why="the README's counts are per copy: three copies (untagged, VLAN 42, QinQ)"
    ),
    "zeek_zero-length-bodies-with-drops.pcap": Expected(
        7,
        8,
        7,
        rejects=(LOST_REQUEST,),
        why="one request is not in the capture: its response is a reject",
    ),
}


def _read(path: Path) -> tuple[list[dict[str, object]], list[dict[str, object]], int]:
    rows: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    records = 0
    for batch in Capture(Input(path), Options()).batches():
        rows += batch.exchanges.to_pylist()
        rejects += batch.rejects
        records += batch.records
    return rows, rejects, records


def test_every_capture_in_the_directory_has_an_expectation() -> None:
    files = sorted(p.name for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
    assert files == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_agree_with_tshark_or_say_why(name: str) -> None:
    expected = EXPECTED[name]
    path = CAPTURES / name
    assert registry.sniff(Input(path)).name == "pcap"
    rows, rejects, records = _read(path)
    assert records == len(rows) + len(rejects)
    assert len(rows) == expected.exchanges, expected.why
    assert tuple(str(r["reason"]) for r in rejects) == expected.rejects, expected.why
    truncated = [r["location"] for r in rows if r["response_body_truncated"]]
    assert len(truncated) == expected.truncated, expected.why
    # Every request tshark saw is a record here; a response without request is one more.
    request_records = len(rows) + sum(r["reason"] == RESPONSE_MISSING for r in rejects)
    copies = 3 if name == "zeek_vlan-collisions.pcap" else 1
    assert request_records == expected.tshark_requests * copies
    for row in rows:
        assert row["method"] and row["status"] and row["location"]
        assert str(row["location"]).startswith(f"{path}#")


def test_pairs_match_their_content() -> None:
    """A wrong pairing would put a stylesheet's response on an image's request."""
    rows, _, _ = _read(CAPTURES / "zeek_bro.org.pcap")
    kinds = {".css": "text/css", ".js": "javascript", ".png": "image/png", ".jpg": "image/jpeg"}
    for row in rows:
        headers = {h["name"].lower(): h["value"] for h in row["response_headers"]}  # type: ignore[union-attr]
        for suffix, kind in kinds.items():
            if str(row["path"]).endswith(suffix):
                assert kind in headers["content-type"], row["path"]
        if not row["response_body_truncated"]:
            assert len(row["response_body"]) == int(headers["content-length"])  # type: ignore[arg-type]


def test_the_1000_requests_pair_in_order_after_the_lost_headers() -> None:
    rows, rejects, _ = _read(CAPTURES / "zeek_1000-requests-one-dropped-response.pcap")
    assert str(rejects[0]["location"]).endswith("#4")  # the first request
    assert all(r["status"] == 200 and not r["response_body_truncated"] for r in rows)
    assert all(r["server_addr"] == "::1" and r["server_port"] == 80 for r in rows)
    starts = [r["start_time"] for r in rows]
    assert starts == sorted(starts)
    assert all(r["duration_ms"] >= 0 for r in rows)  # type: ignore[operator]


def test_chunked_gzip_body_decodes() -> None:
    (row,), _, _ = _read(CAPTURES / "pcap2har_http-chunked-gzip.pcap")
    headers = {h["name"].lower(): h["value"] for h in row["response_headers"]}  # type: ignore[union-attr]
    assert headers["content-encoding"] == "gzip"
    body = row["response_body"]
    assert isinstance(body, bytes)
    decoded = decode(body, "gzip")
    assert decoded.note is None and decoded.data == gzip.decompress(body)
    assert decoded.data.lstrip().lower().startswith((b"<!doctype", b"<html"))


def test_100_continue_pairs_the_final_response() -> None:
    (row,), _, _ = _read(CAPTURES / "zeek_100-continue.pcap")
    assert (row["method"], row["status"], row["bytes_received"]) == ("POST", 200, 2001)


def test_vlan_copies_are_three_connections() -> None:
    rows, _, _ = _read(CAPTURES / "zeek_vlan-collisions.pcap")
    assert len({r["location"] for r in rows}) == 3
    assert len({r["response_body"] for r in rows}) == 1
