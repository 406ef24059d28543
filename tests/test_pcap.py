from __future__ import annotations

import gzip
import random
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pcapgen as gen
import pyarrow as pa
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcapgen import Conversation, http_request, http_response

from shadowdiff import schema
from shadowdiff.collect import pcap, registry, tcpstream
from shadowdiff.collect.base import Input, Options
from shadowdiff.collect.pcap import COLLECTOR, Capture
from shadowdiff.errors import InputError


class Read:
    """Everything one capture gave: rows, rejects, figures, and the records counted."""

    def __init__(self, path: Path, side: str | None = None, **options: Any) -> None:
        self.capture = Capture(Input(path, side), Options(**options))
        self.tables: list[pa.Table] = []
        self.rejects: list[dict[str, object]] = []
        self.records = 0
        for batch in self.capture.batches():
            assert batch.exchanges.schema.equals(schema.EXCHANGES)
            self.tables.append(batch.exchanges)
            self.rejects.extend(batch.rejects)
            self.records += batch.records
        self.rows: list[dict[str, Any]] = [r for t in self.tables for r in t.to_pylist()]
        self.figures = self.capture.figures

    @property
    def reasons(self) -> list[tuple[int, str]]:
        """(packet number, reason) of each reject."""
        return [(int(str(r["location"]).rsplit("#", 1)[1]), str(r["reason"])) for r in self.rejects]

    def only(self) -> dict[str, Any]:
        assert not self.rejects, self.rejects
        assert len(self.rows) == 1, self.rows
        return self.rows[0]

    def statuses(self) -> list[int | None]:
        return [r["status"] for r in self.rows]


def write(tmp_path: Path, packets: list[gen.Packet], name: str = "c.pcap", **kw: Any) -> Path:
    return gen.write_pcap(tmp_path / name, gen.frames(packets, kw.pop("linktype", 1)), **kw)


def read(path: Path, **options: Any) -> Read:
    return Read(path, **options)


GET = http_request("GET", "/api/users/1", (("Host", "app:8080"), ("x-request-id", "rid-1")))
OK = http_response(200, b'{"id": 1}', (("Content-Type", "application/json"),))


def one_exchange(talk: Conversation | None = None) -> list[gen.Packet]:
    return gen.session([(GET, OK)], talk or Conversation())


# Files and link layers


LINKS = [gen.LINK_ETHERNET, gen.LINK_SLL, gen.LINK_SLL2, gen.LINK_NULL, gen.LINK_LOOP, 101]


@pytest.mark.parametrize("linktype", LINKS)
@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_every_link_type_and_ip_version_is_read(tmp_path: Path, linktype: int, ipv6: bool) -> None:
    talk = Conversation(("fd00::1", 40000), ("fd00::2", 8080)) if ipv6 else Conversation()
    row = read(write(tmp_path, one_exchange(talk), linktype=linktype)).only()
    assert (row["method"], row["path"], row["status"]) == ("GET", "/api/users/1", 200)
    if ipv6:
        assert (row["client_addr"], row["server_addr"]) == ("[fd00::1]:40000", "fd00::2")
    else:
        assert (row["client_addr"], row["server_addr"]) == ("10.0.0.1:40000", "10.0.0.2")
    assert row["server_port"] == 8080


def test_null_link_in_big_endian_order_is_read(tmp_path: Path) -> None:
    frames = [
        gen.Frame(gen.null(p, ">"), p.time, gen.LINK_NULL) for p in one_exchange(Conversation())
    ]
    assert read(gen.write_pcap(tmp_path / "c.pcap", frames)).only()["status"] == 200


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("nanoseconds", [False, True])
def test_pcap_in_both_byte_orders_and_time_resolutions(
    tmp_path: Path, byteorder: str, nanoseconds: bool
) -> None:
    talk = Conversation(start=1_700_000_000.123456, time_step=0.000_25)
    path = write(tmp_path, one_exchange(talk), byteorder=byteorder, nanoseconds=nanoseconds)
    row = read(path).only()
    # The request is the 4th packet (after the handshake), 4 steps after the start.
    assert row["start_time"].timestamp() == pytest.approx(1_700_000_000.123456 + 4 * 0.00025)
    assert row["duration_ms"] == pytest.approx(0.5, abs=1e-3)  # float times in the writer
    assert row["location"] == f"{path}#4"


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("tsresol", [None, 9, 0x80 | 20], ids=["us", "ns", "2^-20"])
def test_pcapng_with_byte_order_and_time_resolution(
    tmp_path: Path, byteorder: str, tsresol: int | None
) -> None:
    talk = Conversation(start=1_700_000_000.5, time_step=0.001)
    frames = gen.frames(one_exchange(talk))
    path = gen.write_pcapng(tmp_path / "c.pcapng", frames, byteorder, tsresol)
    row = read(path).only()
    assert row["start_time"].timestamp() == pytest.approx(1_700_000_000.5 + 0.004, abs=1e-5)
    assert row["duration_ms"] == pytest.approx(2.0, abs=0.01)  # to the response, 2 packets on


def test_pcapng_interfaces_keep_their_own_link_types(tmp_path: Path) -> None:
    first = gen.frames(one_exchange(Conversation(("10.0.0.1", 1111))), gen.LINK_ETHERNET, 0)
    second = gen.frames(one_exchange(Conversation(("10.0.0.9", 2222))), gen.LINK_SLL2, 1)
    frames = sorted([*first, *second], key=lambda f: f.time)
    rows = read(gen.write_pcapng(tmp_path / "c.pcapng", frames)).rows
    assert sorted(r["client_addr"] for r in rows) == ["10.0.0.1:1111", "10.0.0.9:2222"]


def test_pcapng_simple_packet_blocks(tmp_path: Path) -> None:
    frames = gen.frames(one_exchange())
    assert read(gen.write_pcapng(tmp_path / "c.pcapng", frames, simple=True)).only()["status"]


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_compressed_captures_are_read(tmp_path: Path, compress: str) -> None:
    raw = write(tmp_path, one_exchange()).read_bytes()
    data = gzip.compress(raw) if compress == "gzip" else zstandard.ZstdCompressor().compress(raw)
    path = tmp_path / "c.pcap.gz"
    path.write_bytes(data)
    assert read(path).only()["status"] == 200
    assert registry.sniff(Input(path)).name == "pcap"


def test_vlan_tags_are_part_of_the_flow_key(tmp_path: Path) -> None:
    """The same connection seen untagged, on VLAN 42 and in QinQ (10, 20): three exchanges."""
    copies = [one_exchange(Conversation(vlans=v)) for v in ((), (42,), (10, 20))]
    packets = [p for group in zip(*copies, strict=True) for p in group]
    frames = [gen.Frame(gen.ethernet(p, qinq=True), p.time) for p in packets]
    result = read(gen.write_pcap(tmp_path / "c.pcap", frames))
    assert len(result.rows) == 3 and not result.rejects
    assert result.figures.retransmitted == 0


def test_non_ip_and_non_tcp_frames_are_skipped_and_counted(tmp_path: Path) -> None:
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"\0" * 28
    packets = one_exchange()
    udp = bytearray(gen.ethernet(packets[0]))
    udp[14 + 9] = 17  # protocol: UDP
    frames = [gen.Frame(arp, 0.0), gen.Frame(bytes(udp), 0.0), *gen.frames(packets)]
    result = read(gen.write_pcap(tmp_path / "c.pcap", frames))
    assert result.only()["location"].endswith("#6")  # numbered among all frames
    assert (result.figures.not_ip, result.figures.not_tcp) == (1, 1)


def test_ip_options_and_ethernet_padding_are_handled(tmp_path: Path) -> None:
    packets = one_exchange()
    frames = []
    for p in packets:
        ip = gen.ip_packet(p, options=b"\x01\x01\x01\x01")
        frame = b"\x02" * 12 + b"\x08\x00" + ip
        frames.append(gen.Frame(frame + b"\0" * max(0, 60 - len(frame)), p.time))
    assert read(gen.write_pcap(tmp_path / "c.pcap", frames)).only()["response_body"] == b'{"id": 1}'


# Reassembly


def test_segments_split_anywhere_are_joined(tmp_path: Path) -> None:
    talk = Conversation()
    body = bytes(range(256)) * 20
    response = http_response(200, body)
    packets = [
        *talk.handshake(),
        *talk.request(GET, sizes=[1, 2, 3, 5, 8]),
        *talk.response(response, sizes=[17, 1, 400, 3]),
        *talk.close(),
    ]
    assert read(write(tmp_path, packets)).only()["response_body"] == body


def test_out_of_order_segments_are_put_in_order(tmp_path: Path) -> None:
    talk = Conversation()
    body = b"x" * 5000
    packets = [
        *talk.handshake(),
        *talk.request(GET, [10, 10]),
        *talk.response(http_response(200, body)),
    ]
    packets += talk.close()
    data = gen.data_indexes(packets)
    packets = gen.reorder(packets, data[0], data[2])  # request pieces: third before first
    packets = gen.reorder(packets, data[3], data[5])  # response segments
    row = read(write(tmp_path, packets)).only()
    assert row["response_body"] == body and row["path"] == "/api/users/1"


def test_retransmissions_are_used_once_and_a_conflicting_copy_is_counted(tmp_path: Path) -> None:
    packets = one_exchange()
    data = gen.data_indexes(packets)
    packets = gen.retransmit(packets, data[1])  # the response, again
    data = gen.data_indexes(packets)
    packets = gen.retransmit(packets, data[0], payload=b"X" * len(GET))  # other bytes
    result = read(write(tmp_path, packets))
    assert result.only()["path"] == "/api/users/1"  # the first copy won
    assert result.figures.retransmitted == 2
    assert result.figures.conflicting_overlaps == 1


def test_partly_overlapping_segments_keep_the_first_bytes(tmp_path: Path) -> None:
    talk = Conversation()
    packets = [*talk.handshake(), *talk.request(GET, [20])]
    second = next(p for p in packets[3:] if p.payload and p.seq > packets[3].seq)
    overlapping = replace(second, seq=second.seq - 5, payload=b"Zzzzz" + second.payload)
    packets.insert(packets.index(second), overlapping)
    packets += [*talk.response(OK), *talk.close()]
    result = read(write(tmp_path, packets))
    assert result.only()["path"] == "/api/users/1"
    assert result.figures.conflicting_overlaps == 1


def test_sequence_numbers_that_wrap_around(tmp_path: Path) -> None:
    talk = Conversation(client_isn=0xFFFFFFF0, server_isn=0xFFFFFF00)
    body = b"y" * 3000
    packets = gen.session([(GET, http_response(200, body)), (GET, OK)], talk)
    assert read(write(tmp_path, packets)).statuses() == [200, 200]


def test_syn_ack_before_syn_still_tells_the_client(tmp_path: Path) -> None:
    packets = gen.reorder(one_exchange(), 0, 1)
    row = read(write(tmp_path, packets)).only()
    assert row["client_addr"] == "10.0.0.1:40000" and row["server_port"] == 8080


def test_a_capture_started_mid_connection_finds_the_client_by_its_request(tmp_path: Path) -> None:
    talk = Conversation()
    talk.handshake()  # not captured
    packets = [*talk.response(b"ody of an answer to an earlier request")]
    packets += [*talk.exchange(GET, OK), *talk.close()]
    result = read(write(tmp_path, packets))
    row = result.only()
    assert (row["client_addr"], row["status"]) == ("10.0.0.1:40000", 200)


def test_a_capture_that_starts_with_a_response_rejects_it(tmp_path: Path) -> None:
    talk = Conversation()
    talk.handshake()
    talk.request(GET)  # not captured
    packets = [*talk.response(OK), *talk.exchange(GET, OK), *talk.close()]
    result = read(write(tmp_path, packets))
    assert len(result.rows) == 1
    assert [reason for _, reason in result.reasons] == ["response to a request the capture lost"]
    assert result.records == 2


def test_a_reset_ends_the_connection_and_keeps_what_it_had(tmp_path: Path) -> None:
    talk = Conversation()
    packets = [*talk.handshake(), *talk.exchange(GET, OK), *talk.request(GET), *talk.reset()]
    result = read(write(tmp_path, packets))
    assert result.statuses() == [200]
    assert result.reasons == [(8, "response missing (capture lost it or ended)")]


def test_packets_after_a_close_do_not_open_a_connection(tmp_path: Path) -> None:
    packets = one_exchange()
    packets.append(replace(packets[-4], time=packets[-1].time + 1))  # a late retransmission
    result = read(write(tmp_path, packets))
    assert len(result.rows) == 1 and not result.rejects
    assert result.figures.late_packets >= 1


def test_a_new_connection_on_the_same_ports_after_a_close(tmp_path: Path) -> None:
    first = one_exchange(Conversation(start=1000.0))
    second = one_exchange(Conversation(start=1001.0, client_isn=77, server_isn=99))
    assert len(read(write(tmp_path, first + second)).rows) == 2


def test_idle_connections_are_closed_in_capture_time(tmp_path: Path) -> None:
    talk = Conversation(start=1000.0)
    packets = [*talk.handshake(), *talk.request(GET)]  # never answered, never closed
    later = Conversation(("10.0.0.7", 5555), start=1000.0 + pcap.IDLE_SECONDS + 60)
    packets += one_exchange(later)
    result = read(write(tmp_path, packets))
    assert result.figures.idle_closed == 1
    assert len(result.rows) == 1 and len(result.rejects) == 1


def test_only_open_connections_are_kept(tmp_path: Path) -> None:
    talks = [
        one_exchange(Conversation(("10.0.1.1", 1000 + i), start=1000.0 + i * 20)) for i in range(40)
    ]
    capture = Capture(Input(write(tmp_path, [p for t in talks for p in t])), Options())
    batches = list(capture.batches())
    assert sum(b.exchanges.num_rows for b in batches) == 40
    assert not capture.open
    assert len(capture.flows) <= 2 * (pcap.CLOSED_SECONDS // 20 + 2)  # older ones forgotten


# HTTP


def test_keep_alive_exchanges_are_paired_in_order(tmp_path: Path) -> None:
    exchanges = [
        (
            http_request("GET", f"/item/{i}", (("Host", "app"), ("x-request-id", f"r{i}"))),
            http_response((200, 201, 202, 203, 206)[i], f"body {i}".encode()),
        )
        for i in range(5)
    ]
    rows = read(write(tmp_path, gen.session(exchanges))).rows
    assert [(r["request_id"], r["status"], r["response_body"]) for r in rows] == [
        (f"r{i}", (200, 201, 202, 203, 206)[i], f"body {i}".encode()) for i in range(5)
    ]


def test_pipelined_requests_in_one_segment_and_split_across_segments(tmp_path: Path) -> None:
    talk = Conversation()
    requests = b"".join(http_request("GET", f"/p/{i}") for i in range(6))
    responses = b"".join(http_response(200, f"answer {i}".encode()) for i in range(6))
    packets = [
        *talk.handshake(),
        *talk.request(requests, [len(requests) // 3, 7]),
        *talk.response(responses, [50, len(responses) // 2]),
        *talk.close(),
    ]
    rows = read(write(tmp_path, packets)).rows
    assert [(r["path"], r["response_body"]) for r in rows] == [
        (f"/p/{i}", f"answer {i}".encode()) for i in range(6)
    ]


def test_chunked_gzip_body_is_stored_joined_but_still_encoded(tmp_path: Path) -> None:
    body = gzip.compress(b'{"list": [1, 2, 3]}' * 50)
    response = http_response(200, body, (("Content-Encoding", "gzip"),), chunked=True)
    row = read(write(tmp_path, gen.session([(GET, response)]))).only()
    assert row["response_body"] == body
    assert {"name": "Content-Encoding", "value": "gzip"} in row["response_headers"]
    assert row["bytes_sent"] == len(body)


def test_chunked_request_body(tmp_path: Path) -> None:
    request = http_request("POST", "/upload", body=b"a" * 700, chunked=True)
    row = read(write(tmp_path, gen.session([(request, OK)]))).only()
    assert row["request_body"] == b"a" * 700 and row["bytes_received"] == 700


def test_100_continue_is_not_the_final_response(tmp_path: Path) -> None:
    talk = Conversation()
    head = b"POST /up HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 2001\r\n\r\n"
    packets = [
        *talk.handshake(),
        *talk.request(head),
        *talk.response(b"HTTP/1.1 100 Continue\r\n\r\n"),
        *talk.request(b"b" * 2001),
        *talk.response(http_response(201, b"made", chunked=True)),
        *talk.close(),
    ]
    row = read(write(tmp_path, packets)).only()
    assert (row["status"], row["request_body"], row["response_body"]) == (201, b"b" * 2001, b"made")


def test_head_response_has_no_body_even_with_a_length(tmp_path: Path) -> None:
    head = http_request("HEAD", "/big")
    head_response = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    talk = Conversation()
    pipelined = [
        *talk.handshake(),
        *talk.request(head + GET + head + GET),
        *talk.response(head_response + OK + head_response + b"HTTP/1.1 204 No Content\r\n\r\n"),
        *talk.close(),
    ]
    result = read(write(tmp_path, pipelined))
    assert [(r["method"], r["status"], r["response_body"]) for r in result.rows] == [
        ("HEAD", 200, b""),
        ("GET", 200, b'{"id": 1}'),
        ("HEAD", 200, b""),
        ("GET", 204, b""),
    ]


@pytest.mark.parametrize("status", [204, 304])
def test_bodyless_statuses(tmp_path: Path, status: int) -> None:
    response = f"HTTP/1.1 {status} X\r\nETag: a\r\n\r\n".encode()
    rows = read(write(tmp_path, gen.session([(GET, response), (GET, OK)]))).rows
    assert [(r["status"], r["response_body"]) for r in rows] == [(status, b""), (200, b'{"id": 1}')]


def test_a_response_that_ends_at_the_close(tmp_path: Path) -> None:
    talk = Conversation()
    response = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"z" * 4000
    packets = [*talk.handshake(), *talk.exchange(GET, response), *talk.close(by_client=False)]
    row = read(write(tmp_path, packets)).only()
    assert row["response_body"] == b"z" * 4000 and not row["response_body_truncated"]


def test_an_upgrade_to_another_protocol_ends_http_parsing(tmp_path: Path) -> None:
    talk = Conversation()
    upgrade = http_request(
        "GET", "/ws", (("Host", "a"), ("Connection", "Upgrade"), ("Upgrade", "x"))
    )
    packets = [
        *talk.handshake(),
        *talk.exchange(upgrade, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
        *talk.request(b"\x81\x05hello binary frames"),
        *talk.response(b"\x81\x02ok"),
        *talk.close(),
    ]
    result = read(write(tmp_path, packets))
    assert result.only()["status"] == 101


def test_columns_from_the_request_and_connection(tmp_path: Path) -> None:
    request = http_request(
        "POST", "/orders?x=1", (("Host", "shop:8081"), ("X-Trace", "t1")), body=b'{"n": 2}'
    )
    talk = Conversation(("192.168.1.5", 51000), ("192.168.1.9", 8081))
    row = read(
        write(tmp_path, gen.session([(request, OK)], talk)), request_id_header="x-trace"
    ).only()
    assert row["request_id"] == "t1"
    assert (row["authority"], row["path"], row["protocol"]) == (
        "shop:8081",
        "/orders?x=1",
        "HTTP/1.1",
    )
    assert (row["client_addr"], row["server_addr"], row["server_port"]) == (
        "192.168.1.5:51000",
        "192.168.1.9",
        8081,
    )
    assert (row["source"], row["side"]) == ("pcap", None)
    assert row["request_headers"][0] == {"name": "Host", "value": "shop:8081"}
    assert (row["bytes_received"], row["bytes_sent"]) == (8, 9)


def test_the_side_given_for_the_file_is_kept(tmp_path: Path) -> None:
    row = Read(write(tmp_path, one_exchange()), side="mirror").only()
    assert row["side"] == "mirror"


def test_absolute_form_targets_carry_the_authority(tmp_path: Path) -> None:
    request = b"GET http://proxied.example:81/x?y HTTP/1.1\r\nHost: other\r\n\r\n"
    row = read(write(tmp_path, gen.session([(request, OK)]))).only()
    assert (row["authority"], row["path"]) == ("proxied.example:81", "/x?y")


def test_header_values_that_are_not_utf8_read_as_latin1(tmp_path: Path) -> None:
    request = b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\n\r\n"
    row = read(write(tmp_path, gen.session([(request, OK)]))).only()
    assert {"name": "X-Name", "value": "café"} in row["request_headers"]


def test_bodies_over_max_body_bytes_are_cut_and_marked(tmp_path: Path) -> None:
    response = http_response(200, b"q" * 10_000)
    row = read(write(tmp_path, gen.session([(GET, response)])), max_body_bytes=1000).only()
    assert row["response_body"] == b"q" * 1000
    assert row["response_body_truncated"] and row["body_truncated"]
    assert not row["request_body_truncated"]
    assert row["bytes_sent"] == 10_000


# Gaps


def test_a_gap_inside_a_request_rejects_it_and_parsing_goes_on(tmp_path: Path) -> None:
    talk = Conversation()
    post = http_request("POST", "/big", body=b"p" * 3000)
    packets = [*talk.handshake(), *talk.exchange(post, OK), *talk.exchange(GET, OK), *talk.close()]
    data = gen.data_indexes(packets)
    packets = gen.drop(packets, data[1])  # the middle segment of the POST body
    result = read(write(tmp_path, packets))
    assert result.statuses() == [200]
    assert result.rows[0]["path"] == "/api/users/1"
    assert [r for _, r in result.reasons] == [
        "gap in the capture inside the request (1460 bytes lost)"
    ]
    assert result.figures.gaps == 1


def test_a_gap_inside_a_response_body_keeps_it_marked_incomplete(tmp_path: Path) -> None:
    talk = Conversation()
    big = http_response(200, b"r" * 6000)
    packets = [*talk.handshake(), *talk.exchange(GET, big), *talk.exchange(GET, OK), *talk.close()]
    data = gen.data_indexes(packets)
    packets = gen.drop(packets, data[2])
    result = read(write(tmp_path, packets))
    assert [(r["status"], r["response_body_truncated"]) for r in result.rows] == [
        (200, True),
        (200, False),
    ]
    assert result.rows[1]["response_body"] == b'{"id": 1}'


def test_lost_response_headers_resynchronise_on_the_next_response(tmp_path: Path) -> None:
    """As zeek's 1000-requests capture: the first response's header segment is missing."""
    talk = Conversation()
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n"
    packets = [
        *talk.handshake(),
        *talk.request(GET),
        *talk.response(first + b"f" * 600, [len(first)]),
    ]
    for i in range(3):
        packets += talk.exchange(
            http_request("GET", f"/n/{i}"), http_response(200, f"n{i}".encode())
        )
    packets += talk.close()
    packets = gen.drop(packets, gen.data_indexes(packets)[1])
    result = read(write(tmp_path, packets))
    assert [(r["path"], r["response_body"]) for r in result.rows] == [
        (f"/n/{i}", f"n{i}".encode()) for i in range(3)
    ]
    assert [r for _, r in result.reasons] == ["response missing (capture lost it or ended)"]


def test_a_lost_request_makes_its_response_a_reject(tmp_path: Path) -> None:
    talk = Conversation()
    packets = [*talk.handshake()]
    for i in range(3):
        packets += talk.exchange(
            http_request("GET", f"/m/{i}"), http_response(200, f"m{i}".encode())
        )
    packets += talk.close()
    packets = gen.drop(packets, gen.data_indexes(packets)[2])  # the second request
    result = read(write(tmp_path, packets))
    assert [(r["path"], r["response_body"]) for r in result.rows] == [
        ("/m/0", b"m0"),
        ("/m/2", b"m2"),
    ]
    assert [r for _, r in result.reasons] == ["response to a request the capture lost"]


def test_a_capture_ending_inside_a_response(tmp_path: Path) -> None:
    talk = Conversation()
    packets = [
        *talk.handshake(),
        *talk.request(GET),
        *talk.response(http_response(200, b"e" * 5000)),
    ]
    packets = packets[:-2]  # the last segment and its ACK never captured
    row = read(write(tmp_path, packets)).only()
    assert row["response_body_truncated"] and 0 < len(row["response_body"]) < 5000


def test_garbage_in_a_stream_is_a_reject_and_parsing_resumes(tmp_path: Path) -> None:
    talk = Conversation()
    packets = [
        *talk.handshake(),
        *talk.exchange(GET, OK),
        *talk.request(b"\x16\x03\x01 not an http request\r\n\r\n"),
        *talk.exchange(http_request("GET", "/after"), OK),
        *talk.close(),
    ]
    result = read(write(tmp_path, packets))
    assert [r["path"] for r in result.rows] == ["/api/users/1", "/after"]
    assert len(result.rejects) == 1 and result.reasons[0][1].startswith("not HTTP")


def test_a_connection_that_is_not_http_is_one_reject(tmp_path: Path) -> None:
    talk = Conversation(server=("10.0.0.2", 443))
    packets = [
        *talk.handshake(),
        *talk.request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(300)),
        *talk.response(b"\x16\x03\x03\x00\x5a\x02\x00\x00\x56" + bytes(200)),
        *talk.close(),
    ]
    result = read(write(tmp_path, packets))
    assert not result.rows
    assert len(result.rejects) == 1 and result.reasons[0][1].startswith("not HTTP")


def test_a_connection_without_handshake_that_never_speaks_http(tmp_path: Path) -> None:
    talk = Conversation()
    talk.handshake()
    packets = [*talk.request(bytes(range(256)) * 300), *talk.response(b"\0" * 100), *talk.close()]
    result = read(write(tmp_path, packets))
    assert not result.rows
    assert len(result.rejects) == 1 and result.reasons[0][1].startswith("not HTTP")


# Accounting and bad files


def test_every_request_is_an_exchange_or_a_reject(tmp_path: Path) -> None:
    rng = random.Random(7)
    talks = []
    for index in range(30):
        talk = Conversation(("10.0.3.1", 3000 + index), start=1000.0 + index * 0.01)
        packets = talk.handshake()
        for i in range(4):
            packets += talk.exchange(
                http_request("GET", f"/{index}/{i}"), http_response(200, b"k" * 2000)
            )
        talks.append(packets + talk.close())
    packets = gen.interleave(*talks, seed=3)
    data = gen.data_indexes(packets)
    packets = gen.drop(packets, *rng.sample(data, 25))
    result = read(write(tmp_path, packets))
    requests = {r["path"] for r in result.rows}
    assert result.records == len(result.rows) + len(result.rejects)
    assert len(requests) == len(result.rows)  # no request twice
    assert len(result.rows) + len(result.rejects) >= 120 - 25  # a lost request may be a reject


def test_a_file_that_is_not_a_capture_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.pcap"
    path.write_bytes(b"this is not a capture at all\n")
    with pytest.raises(InputError, match=r"notes\.pcap: not a packet capture"):
        list(COLLECTOR.read(Input(path), Options()))


def test_an_unknown_link_type_is_an_input_error(tmp_path: Path) -> None:
    path = gen.write_pcap(tmp_path / "c.pcap", gen.frames(one_exchange()), linktype=147)
    with pytest.raises(InputError, match="link type 147 is not one the pcap source reads"):
        read(path)


def test_a_truncated_last_record_is_a_reject_and_the_rest_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, gen.session([(GET, OK), (GET, OK)]))
    data = path.read_bytes()
    path.write_bytes(data[:-30])  # the last record (an ACK) cut short
    result = read(path)
    assert len(result.rows) == 2
    assert len(result.rejects) == 1 and "capture truncated" in result.reasons[0][1]
    assert result.records == 3


def test_a_corrupt_record_length_stops_reading_with_a_reject(tmp_path: Path) -> None:
    path = write(tmp_path, gen.session([(GET, OK), (GET, OK)]))
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 24 + 8, 0x7FFFFFFF)  # the first record claims 2 GB
    path.write_bytes(bytes(data))
    result = read(path)
    assert not result.rows and "corrupt record header" in result.reasons[0][1]


def test_broken_compression_is_a_reject_after_what_was_read(tmp_path: Path) -> None:
    raw = write(tmp_path, gen.session([(GET, OK)] * 50)).read_bytes()
    path = tmp_path / "c.pcap.gz"
    path.write_bytes(gzip.compress(raw)[:-2000])
    result = read(path)
    assert result.rejects and result.records == len(result.rows) + len(result.rejects)


def test_rows_come_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pcap, "BATCH_ROWS", 3)
    talks = [one_exchange(Conversation(("10.0.4.1", 4000 + i))) for i in range(400)]
    packets = [p for t in talks for p in t]
    batches = list(COLLECTOR.read(Input(write(tmp_path, packets)), Options()))
    assert sum(b.exchanges.num_rows for b in batches) == 400
    assert len(batches) >= 3  # fullness is looked at every 1024 packets


def test_reading_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow's first ``pa.array`` or ``pa.scalar`` imports pandas: a third of a second of
    every run's collect stage. The collector builds its columns from buffers instead."""
    path = write(tmp_path, gen.session([(GET, OK), (GET, http_response(404))]))
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from shadowdiff.collect.pcap import Capture\n"
        "from shadowdiff.collect.base import Input, Options\n"
        "before = 'pandas' in sys.modules\n"
        f"rows = sum(b.exchanges.num_rows for b in Capture(Input(Path({str(path)!r})), "
        "Options()).batches())\n"
        "print(rows, before, 'pandas' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    rows, before, after = done.stdout.split()
    assert rows == "2"
    assert after == before


def test_sniff_and_registry() -> None:
    assert registry.get("pcap") is COLLECTOR
    for magic in (
        b"\xd4\xc3\xb2\xa1",
        b"\xa1\xb2\xc3\xd4",
        b"\x4d\x3c\xb2\xa1",
        b"\xa1\xb2\x3c\x4d",
    ):
        assert COLLECTOR.sniff(magic + b"\0" * 20) == 1.0
    assert COLLECTOR.sniff(b"\x0a\x0d\x0d\x0a\x1c\0\0\0\x4d\x3c\x2b\x1a") == 1.0
    assert COLLECTOR.sniff(b"\x0a\x0d\x0d\x0a\x1c\0\0\0nope") == 0.0
    assert COLLECTOR.sniff(b'{"http_buffered_trace": {}}') == 0.0
    assert registry.recognise(b"\xd4\xc3\xb2\xa1" + b"\0" * 20) is COLLECTOR


def test_stream_holds_bytes_until_the_hole_fills() -> None:
    got: list[bytes] = []

    class Sink:
        def feed(self, data: bytes, packet: int, time: int, seq: int, ack: int) -> None:
            got.append(data)

        def gap(self, lost: int) -> None:
            got.append(b"<%d lost>" % lost)

        def end(self) -> None:
            got.append(b"<end>")

    stream = tcpstream.Stream(Sink())
    stream.begin(99, syn=True)
    stream.segment(105, b"world", 2, 0, 0)
    stream.segment(100, b"hello", 1, 0, 0)
    stream.segment(115, b"!", 3, 0, 0)
    assert got == [b"hello", b"world"]
    stream.acked = 116
    stream.resolve()  # acknowledged beyond the hole, data after it held: lost
    assert got == [b"hello", b"world", b"<5 lost>", b"!"]
    stream.finish(116)
    assert got[-1] == b"<end>"


# Property: whatever the bytes, records or an InputError, never another exception.


def _base_capture() -> bytes:
    talk = Conversation()
    packets = [*talk.handshake()]
    packets += talk.exchange(GET, http_response(200, b"c" * 3000, chunked=True))
    packets += talk.exchange(
        http_request("HEAD", "/h"), b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"
    )
    packets += talk.exchange(http_request("POST", "/p", body=b"d" * 2000), OK)
    packets += talk.close()
    frames = gen.frames(packets)
    path = Path("/dev/null")
    del path
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for frame in frames:
        out.append(struct.pack("<IIII", int(frame.time), 0, len(frame.data), len(frame.data)))
        out.append(frame.data)
    return b"".join(out)


BASE = _base_capture()


def _check(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.pcap"
    path.write_bytes(data)
    try:
        result = Read(path)
    except InputError:
        return
    assert result.records == len(result.rows) + len(result.rejects)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_raise_nothing_but_input_error(tmp_path: Path, data: bytes) -> None:
    _check(tmp_path, data)
    _check(tmp_path, BASE[:24] + data)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(0, len(BASE)),
    flips=st.lists(st.tuples(st.integers(24, len(BASE) - 1), st.integers(1, 255)), max_size=12),
)
def test_truncated_and_bit_flipped_captures_raise_nothing(
    tmp_path: Path, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(BASE)
    for at, mask in flips:
        data[at] ^= mask
    _check(tmp_path, bytes(data[:cut] if cut >= 24 else data))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), drop=st.integers(0, 6), swaps=st.integers(0, 12))
def test_shuffled_and_lost_packets_raise_nothing_and_balance(
    tmp_path: Path, seed: int, drop: int, swaps: int
) -> None:
    rng = random.Random(seed)
    talk = Conversation()
    packets = [*talk.handshake()]
    for i in range(4):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000)))
        packets += talk.exchange(
            http_request("GET", f"/s/{i}"), http_response(200, body, chunked=i % 2 == 1)
        )
    packets += talk.close()
    for _ in range(swaps):
        a, b = rng.randrange(len(packets)), rng.randrange(len(packets))
        packets = gen.reorder(packets, a, b)
    packets = gen.drop(packets, *rng.sample(range(len(packets)), min(drop, len(packets))))
    path = write(tmp_path, packets, name="s.pcap")
    result = read(path)
    assert result.records == len(result.rows) + len(result.rejects)
    assert len(result.rows) <= 4
