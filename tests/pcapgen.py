"""A small writer of synthetic packet captures for tests, built with ``struct`` only.

A test describes TCP conversations (``Conversation``: handshake, data split at any boundary,
close), turns them into ``Packet`` lists, changes them (``reorder``, ``retransmit``, ``drop``,
``interleave``), frames them for a link layer (``ethernet``, ``sll``, ``sll2``, ``null``, ``raw``)
and writes a file (``write_pcap`` in either byte order and time resolution, ``write_pcapng``).

>>> talk = Conversation(("10.0.0.1", 40000), ("10.0.0.2", 8080))
>>> packets = [*talk.handshake(), *talk.exchange(http_request(), http_response(204))]
>>> write_pcap(path, frames(packets))  # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Link types (LINKTYPE_* of the tcpdump.org registry)
LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP, LINK_SLL, LINK_SLL2 = 0, 1, 101, 108, 113, 276
LINK_RAW_OPENBSD = 12  # DLT_RAW on most systems, written as-is by some tools

Address = tuple[str, int]


@dataclass(frozen=True)
class Packet:
    """One TCP segment between two endpoints, before link framing."""

    src: Address
    dst: Address
    seq: int
    ack: int
    flags: int
    payload: bytes = b""
    time: float = 0.0
    vlans: tuple[int, ...] = ()  # 802.1Q tags, outermost first

    @property
    def ipv6(self) -> bool:
        return ":" in self.src[0]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_segment(packet: Packet) -> bytes:
    header = struct.pack(
        "!HHIIBBHHH",
        packet.src[1],
        packet.dst[1],
        packet.seq & 0xFFFFFFFF,
        packet.ack & 0xFFFFFFFF,
        5 << 4,
        packet.flags,
        65535,
        0,  # checksum: readers of captures do not check it (offloading leaves it wrong)
        0,
    )
    return header + packet.payload


def ip_packet(packet: Packet, options: bytes = b"") -> bytes:
    """The IPv4 or IPv6 packet carrying ``packet``'s segment (IPv4 ``options`` padded to 4)."""
    segment = tcp_segment(packet)
    if packet.ipv6:
        src = ipaddress.IPv6Address(packet.src[0]).packed
        dst = ipaddress.IPv6Address(packet.dst[0]).packed
        return struct.pack("!IHBB", 6 << 28, len(segment), 6, 64) + src + dst + segment
    options += b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    src = ipaddress.IPv4Address(packet.src[0]).packed
    dst = ipaddress.IPv4Address(packet.dst[0]).packed
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(segment), 1, 0, 64, 6, 0, src, dst
    )
    header = header[:10] + struct.pack("!H", checksum(header + options)) + header[12:]
    return header + options + segment


def _ethertype(packet: Packet) -> int:
    return 0x86DD if packet.ipv6 else 0x0800


def ethernet(packet: Packet, qinq: bool = False) -> bytes:
    """An Ethernet II frame; ``packet.vlans`` as 802.1Q tags (the outer one 802.1ad with
    ``qinq``)."""
    frame = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01"
    for i, vlan in enumerate(packet.vlans):
        tpid = 0x88A8 if qinq and i == 0 and len(packet.vlans) > 1 else 0x8100
        frame += struct.pack("!HH", tpid, vlan & 0x0FFF)
    return frame + struct.pack("!H", _ethertype(packet)) + ip_packet(packet)


def sll(packet: Packet) -> bytes:
    """Linux cooked capture v1 (``tcpdump -i any``)."""
    header = struct.pack("!HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0", _ethertype(packet))
    return header + ip_packet(packet)


def sll2(packet: Packet) -> bytes:
    """Linux cooked capture v2."""
    header = struct.pack("!HHIHBB8s", _ethertype(packet), 0, 2, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0")
    return header + ip_packet(packet)


def null(packet: Packet, byteorder: str = "<") -> bytes:
    """BSD loopback: a 4-byte address family in the writer's byte order (24/28/30 for IPv6)."""
    family = 30 if packet.ipv6 else 2
    return struct.pack(f"{byteorder}I", family) + ip_packet(packet)


def loop(packet: Packet) -> bytes:
    """OpenBSD loopback: the address family in network byte order."""
    return struct.pack("!I", 24 if packet.ipv6 else 2) + ip_packet(packet)


def raw(packet: Packet) -> bytes:
    return ip_packet(packet)


FRAMERS: dict[int, Callable[[Packet], bytes]] = {
    LINK_ETHERNET: ethernet,
    LINK_SLL: sll,
    LINK_SLL2: sll2,
    LINK_NULL: null,
    LINK_LOOP: loop,
    LINK_RAW: raw,
}


@dataclass(frozen=True)
class Frame:
    """A framed packet as a capture file holds it."""

    data: bytes
    time: float
    linktype: int = LINK_ETHERNET
    interface: int = 0


def frames(
    packets: Iterable[Packet], linktype: int = LINK_ETHERNET, interface: int = 0
) -> list[Frame]:
    framer = FRAMERS[linktype]
    return [Frame(framer(p), p.time, linktype, interface) for p in packets]


def write_pcap(
    path: Path,
    items: Sequence[Frame],
    byteorder: str = "<",
    nanoseconds: bool = False,
    linktype: int | None = None,
    snaplen: int = 262144,
) -> Path:
    """A classic pcap file (``byteorder`` ``<`` or ``>``; microsecond or nanosecond stamps)."""
    kind = linktype if linktype is not None else (items[0].linktype if items else LINK_ETHERNET)
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    scale = 1_000_000_000 if nanoseconds else 1_000_000
    out = [struct.pack(f"{byteorder}IHHiIII", magic, 2, 4, 0, 0, snaplen, kind)]
    for item in items:
        seconds, fraction = divmod(round(item.time * scale), scale)
        data = item.data[:snaplen]
        out.append(struct.pack(f"{byteorder}IIII", seconds, fraction, len(data), len(item.data)))
        out.append(data)
    path.write_bytes(b"".join(out))
    return path


def _block(kind: int, body: bytes, byteorder: str) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(f"{byteorder}II", kind, length) + body + struct.pack(f"{byteorder}I", length)


def _option(code: int, value: bytes, byteorder: str) -> bytes:
    return struct.pack(f"{byteorder}HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def write_pcapng(
    path: Path,
    items: Sequence[Frame],
    byteorder: str = "<",
    tsresol: int | None = None,
    simple: bool = False,
) -> Path:
    """A pcapng file: one section, an interface block per interface seen (each with the link
    type of its frames), enhanced packet blocks (simple packet blocks with ``simple``).
    ``tsresol`` is the if_tsresol option byte (default: none, microseconds)."""
    links: dict[int, int] = {}
    for item in items:
        links.setdefault(item.interface, item.linktype)
    shb = struct.pack(f"{byteorder}IHHq", 0x1A2B3C4D, 1, 0, -1)
    out = [_block(0x0A0D0D0A, shb, byteorder)]
    resolution = 1_000_000
    if tsresol is not None:
        resolution = 10**tsresol if tsresol < 128 else 2 ** (tsresol & 0x7F)
    for interface in range(max(links) + 1 if links else 1):
        options = b""
        if tsresol is not None:
            options = _option(9, bytes([tsresol]), byteorder) + _option(0, b"", byteorder)
        body = struct.pack(f"{byteorder}HHI", links.get(interface, LINK_ETHERNET), 0, 0)
        out.append(_block(1, body + options, byteorder))
    for item in items:
        if simple:
            out.append(
                _block(3, struct.pack(f"{byteorder}I", len(item.data)) + item.data, byteorder)
            )
            continue
        stamp = round(item.time * resolution)
        body = struct.pack(
            f"{byteorder}IIIII",
            item.interface,
            stamp >> 32,
            stamp & 0xFFFFFFFF,
            len(item.data),
            len(item.data),
        )
        out.append(_block(6, body + item.data, byteorder))
    path.write_bytes(b"".join(out))
    return path


class Conversation:
    """One TCP connection between ``client`` and ``server``: builds its packets in order, with
    sequence numbers kept right, one ``time_step`` apart."""

    def __init__(
        self,
        client: Address = ("10.0.0.1", 40000),
        server: Address = ("10.0.0.2", 8080),
        start: float = 1_700_000_000.0,
        time_step: float = 0.001,
        client_isn: int = 1000,
        server_isn: int = 5000,
        vlans: tuple[int, ...] = (),
        mss: int = 1460,
    ) -> None:
        self.client, self.server = client, server
        self.time, self.step = start, time_step
        self.seq = {True: client_isn, False: server_isn}  # next sequence number by side
        self.vlans = vlans
        self.mss = mss

    def _packet(self, from_client: bool, flags: int, payload: bytes = b"") -> Packet:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        self.time += self.step
        packet = Packet(
            src,
            dst,
            self.seq[from_client],
            self.seq[not from_client],
            flags,
            payload,
            self.time,
            self.vlans,
        )
        self.seq[from_client] += len(payload) + (1 if flags & (SYN | FIN) else 0)
        return packet

    def handshake(self) -> list[Packet]:
        return [
            self._packet(True, SYN),
            self._packet(False, SYN | ACK),
            self._packet(True, ACK),
        ]

    def send(
        self, from_client: bool, data: bytes, sizes: Sequence[int] | None = None
    ) -> list[Packet]:
        """``data`` in segments of ``sizes`` bytes (the rest in MSS-sized ones), then an ACK
        from the other side."""
        pieces: list[bytes] = []
        at = 0
        for size in sizes or ():
            pieces.append(data[at : at + size])
            at += size
        while at < len(data):
            pieces.append(data[at : at + self.mss])
            at += self.mss
        packets = [self._packet(from_client, PSH | ACK, p) for p in pieces if p]
        return [*packets, self._packet(not from_client, ACK)]

    def request(self, data: bytes, sizes: Sequence[int] | None = None) -> list[Packet]:
        return self.send(True, data, sizes)

    def response(self, data: bytes, sizes: Sequence[int] | None = None) -> list[Packet]:
        return self.send(False, data, sizes)

    def exchange(self, request: bytes, response: bytes) -> list[Packet]:
        return [*self.request(request), *self.response(response)]

    def close(self, by_client: bool = True) -> list[Packet]:
        return [
            self._packet(by_client, FIN | ACK),
            self._packet(not by_client, FIN | ACK),
            self._packet(by_client, ACK),
        ]

    def reset(self, by_client: bool = True) -> list[Packet]:
        return [self._packet(by_client, RST | ACK)]


def session(
    exchanges: Sequence[tuple[bytes, bytes]], conversation: Conversation | None = None
) -> list[Packet]:
    """A whole connection: handshake, each (request, response) in turn, close."""
    talk = conversation or Conversation()
    packets = talk.handshake()
    for request, response in exchanges:
        packets += talk.exchange(request, response)
    return packets + talk.close()


# Changing packet lists the way networks and capture points do.


def data_indexes(packets: Sequence[Packet]) -> list[int]:
    return [i for i, p in enumerate(packets) if p.payload]


def reorder(packets: Sequence[Packet], first: int, second: int) -> list[Packet]:
    """Swap two packets (their times too, so the file stays in time order)."""
    out = list(packets)
    a, b = out[first], out[second]
    out[first], out[second] = replace(b, time=a.time), replace(a, time=b.time)
    return out


def retransmit(packets: Sequence[Packet], index: int, payload: bytes | None = None) -> list[Packet]:
    """Send packet ``index`` again right after itself (with other bytes: a conflicting copy)."""
    out = list(packets)
    copy = out[index] if payload is None else replace(out[index], payload=payload)
    out.insert(index + 1, replace(copy, time=copy.time + 1e-6))
    return out


def drop(packets: Sequence[Packet], *indexes: int) -> list[Packet]:
    """Leave packets out, as a capture that lost them."""
    gone = set(indexes)
    return [p for i, p in enumerate(packets) if i not in gone]


def interleave(*conversations: Sequence[Packet], seed: int = 0) -> list[Packet]:
    """The packets of several connections merged in time order (each keeps its own order),
    choosing at random which connection speaks next."""
    rng = random.Random(seed)
    queues = [list(c) for c in conversations if c]
    merged: list[Packet] = []
    while queues:
        queue = rng.choice(queues)
        merged.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    start = min((p.time for p in merged), default=0.0)
    return [replace(p, time=start + i * 1e-4) for i, p in enumerate(merged)]


def http_request(
    method: str = "GET",
    path: str = "/",
    headers: Sequence[tuple[str, str]] = (("Host", "app"),),
    body: bytes = b"",
    chunked: bool = False,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + chunk(body)
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_response(
    status: int = 200,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    chunked: bool = False,
    length: bool = True,
    reason: str = "OK",
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + chunk(body)
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunk(body: bytes, size: int = 100) -> bytes:
    """``body`` in chunked transfer coding, ``size`` bytes a chunk."""
    parts = [
        f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def keepalive_traffic(
    connections: int = 2000,
    exchanges: int = 10,
    seed: int = 0,
    server_ports: Sequence[int] = (8080, 8081),
    chunked_share: float = 0.2,
) -> list[Packet]:
    """Busy keep-alive HTTP/1.1 traffic for benchmarks: ``connections`` interleaved
    connections of ``exchanges`` requests each, JSON bodies of 200-2000 bytes (a share of them
    chunked), MSS-sized segments. Each request's ``x-request-id`` is sent to every port of
    ``server_ports`` in turn (a primary and its mirror), so a run pairs them."""
    rng = random.Random(seed)
    talks: list[list[Packet]] = []
    for index in range(connections):
        port = server_ports[index % len(server_ports)]
        talk = Conversation(
            (f"10.1.{index // 250 % 250}.{index % 250 + 1}", 20000 + index // len(server_ports)),
            ("10.0.0.2", port),
            client_isn=rng.randrange(1 << 32),
            server_isn=rng.randrange(1 << 32),
        )
        packets = talk.handshake()
        for number in range(exchanges):
            request_id = f"req-{index // len(server_ports)}-{number}"
            request = http_request(
                "GET",
                f"/api/items/{rng.randrange(1000)}?page={number}",
                (("Host", "app"), ("User-Agent", "bench/1"), ("x-request-id", request_id)),
            )
            size = rng.randrange(200, 2000)
            body = (b'{"items": [' + b'{"id": 1, "name": "x"},' * (size // 23) + b"{}]}")[:size]
            response = http_response(
                200,
                body,
                (("Content-Type", "application/json"), ("Server", f"app-{port}")),
                chunked=rng.random() < chunked_share,
            )
            packets += talk.exchange(request, response)
        talks.append(packets + talk.close())
    return interleave(*talks, seed=seed)
