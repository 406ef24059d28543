"""The ``pcap`` collector: HTTP/1.x exchanges, with bodies, from pcap and pcapng captures.

The layers, each in its own module: records of the file and the link, IP and TCP headers (here,
``struct`` on the file's bytes: scapy's dissection reads under 10k packets/s, this reads several
hundred thousand), one ``tcpstream.Stream`` per direction of each connection (reassembly), and
``http1`` (httptools) for the messages and their pairing.

Decisions:

- **Files.** pcap in either byte order, with microsecond or nanosecond stamps (and the old
  "modified" format of Alexey Kuznetsov's patches), and pcapng (every section, an interface
  block per interface with its own link type, ``if_tsresol`` and ``if_tsoffset``; enhanced, simple
  and obsolete packet blocks). gzip and zstd files are read through as the log collectors read
  them. The file is read in large chunks and records are sliced out of them: no call per packet
  goes to the file. A file that is not a capture, or a pcap whose link type is not read here,
  is an ``InputError``; a record cut short at the end of the file (a capture still being written)
  or a corrupt record header is one ``rejects`` row, and what came before it is kept.
- **Links.** Ethernet (802.1Q and QinQ tags, 0x8100/0x88a8/0x9100), Linux cooked SLL and
  SLL2, BSD loopback (either byte order) and OpenBSD loop, raw IP (101, 12, 14, 228, 229). Only
  IPv4 and IPv6 carrying TCP are read; everything else (ARP, UDP, IP fragments, frames too
  short for their headers) is skipped and counted in ``Figures``, since it holds no HTTP/1.x.
- **Flows.** A connection is the two directional keys (addresses, ports, VLAN tags) mapped to
  one ``_Connection``: one dict lookup per packet. The same connection seen on several VLANs (a
  mirror port) is several connections, as it is on the wire.
- **Who is the client.** The SYN's sender, or the SYN-ACK's receiver. Without a handshake in
  the capture, the side whose bytes hold an HTTP request line (the other: a status line); until
  then the connection's bytes are held (at most ``MAX_UNDECIDED_BYTES``), and a connection that
  never shows either is one ``rejects`` row ("not HTTP").
- **Memory.** Only open connections are kept. A connection is closed (its last records emitted,
  its state dropped) on RST, when both FINs were reached, or after ``IDLE_SECONDS`` of capture
  time without a packet; for ``CLOSED_SECONDS`` after that its keys ignore late packets (a
  retransmission after the close must not open a connection that starts mid-stream). Rows are
  emitted in batches as they complete.
- **Records.** Every request becomes an exchange or a ``rejects`` row, and so does every final
  response that answers no request seen; ``location`` is ``file#packet`` of the request's first
  packet (1-based, as tshark and Wireshark number frames). Interim responses (1xx) are not
  records. ``start_time`` is the request's first packet, ``duration_ms`` runs to the response's
  last packet. ``server_addr``/``server_port``/``client_addr`` come from the connection, so a
  ``[sides]`` rule can split one capture by port or address; ``side`` is left to those rules.
- **Bodies** are stored as sent (chunked coding removed, content-encoding kept), cut at
  ``Options.max_body_bytes`` and marked truncated, as are bodies the capture lost part of or
  that the capture or connection ended inside.
- **Speed.** The packet loop is written out flat, once per packet; an exchange becomes a tuple
  when it completes and the tuples become Arrow columns per batch, from numpy buffers (not
  ``pa.array``, whose first call imports pandas). The cyclic garbage collector is off while a
  file is read (thousands of long-lived connection objects would be rescanned again and
  again); a closed connection breaks its own reference cycles so that it is freed at once.
  Batches are small enough (``BATCH_ROWS``) that peak memory does not grow with the capture.
"""

from __future__ import annotations

import gc
import itertools
import socket
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from shadowdiff import schema
from shadowdiff.collect.base import Batch, Input, Options, reject
from shadowdiff.collect.http1 import REQUEST_LINE, STATUS_LINE, Conversation, Message
from shadowdiff.collect.lines import open_input
from shadowdiff.collect.tcpstream import MASK, Stream
from shadowdiff.errors import InputError

NAME = "pcap"
BATCH_ROWS = 20_000
BATCH_BODY_BYTES = 64 * 1024 * 1024
READ_CHUNK = 4 * 1024 * 1024
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a record claiming more is a corrupt header
IDLE_SECONDS = 300
CLOSED_SECONDS = 60
SWEEP_SECONDS = 10  # of capture time between looks for idle connections
MAX_UNDECIDED_BYTES = 64 * 1024
NS = 1_000_000_000

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1, 16),
    b"\x34\xcd\xb2\xa1": ("<", 1000, 24),  # "modified" pcap: 8 more bytes per record
    b"\xa1\xb2\xcd\x34": (">", 1000, 24),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
PCAPNG_BYTE_ORDER = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}

# Link types (LINKTYPE_* values written in files)
ETHERNET, SLL, SLL2, NULL, LOOP = 1, 113, 276, 0, 108
RAW_LINKS = frozenset({101, 12, 14, 228, 229})
LINKS = frozenset({ETHERNET, SLL, SLL2, NULL, LOOP, *RAW_LINKS})
LINK_NAMES = "Ethernet (1), Linux cooked SLL (113) and SLL2 (276), loopback (0, 108), raw IP (101)"

IPV4, IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
IPV6_FAMILIES = frozenset({10, 24, 28, 30})
IPV6_EXTENSIONS = frozenset({0, 43, 60, 135, 139, 140})
TCP_PROTOCOL, IPV6_FRAGMENT, IPV6_AH = 6, 44, 51
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

_TCP = struct.Struct("!IIBB")  # seq, ack, data offset, flags (from the segment's 5th byte)
_U16 = struct.Struct("!H")


@dataclass
class Figures:
    """What a capture held besides exchanges and rejects: packets read and why some were not
    used, and what reassembly met. Not records: none of it is an HTTP message."""

    packets: int = 0
    tcp_packets: int = 0
    not_ip: int = 0
    not_tcp: int = 0
    ip_fragments: int = 0
    short_frames: int = 0  # cut before the end of their TCP header (snap length)
    unknown_link: int = 0
    late_packets: int = 0  # packets of a connection after it closed
    connections: int = 0
    idle_closed: int = 0
    retransmitted: int = 0
    conflicting_overlaps: int = 0
    gaps: int = 0
    lost_bytes: int = 0
    links: dict[int, int] = field(default_factory=dict)  # packets per link type


class _Stop(Exception):
    """The rest of the file cannot be read; the message is the ``rejects`` reason."""

    def __init__(self, packet: int, reason: str, excerpt: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.packet = packet
        self.excerpt = excerpt


# Reading records. Each yields (packet number, time in ns, link type, buffer, start, end).

Record = tuple[int, int, int, bytes, int, int]


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        try:
            chunk = stream.read(READ_CHUNK)
        except (OSError, EOFError, zlib.error, ValueError, zstandard.ZstdError) as e:
            raise _Stop(
                0, f"the compressed data cannot be read on ({e}); is the file complete?"
            ) from e
        if not chunk:
            return
        yield chunk


def _pcap_records(stream: BinaryIO, header: bytes, name: str) -> Iterator[Record]:
    order, scale, size = PCAP_MAGICS[header[:4]]
    if len(header) < 24:
        raise InputError(f"{name}: the pcap file header is cut short ({len(header)} of 24 bytes).")
    network = struct.unpack_from(f"{order}I", header, 20)[0]
    link = network & 0x0FFFFFFF
    fcs = ((network >> 28) * 2) if network & 0x04000000 else 0  # bytes of FCS at frame ends
    if link not in LINKS:
        raise InputError(
            f"{name}: link type {link} is not one the pcap source reads ({LINK_NAMES}). "
            "Capture on an Ethernet interface or with `tcpdump -i any`."
        )
    record = struct.Struct(f"{order}IIII")
    buf = header[24:]
    pos = 0
    number = 0
    chunks = _chunks(stream)
    while True:
        limit = len(buf)
        while pos + size <= limit:
            seconds, fraction, caplen, _ = record.unpack_from(buf, pos)
            end = pos + size + caplen
            if caplen > MAX_RECORD_BYTES:
                raise _Stop(
                    number + 1,
                    f"corrupt record header at packet {number + 1} (a length of {caplen} "
                    "bytes); the packets after it were not read",
                    buf[pos : pos + size],
                )
            if end > limit:
                break
            number += 1
            yield number, seconds * NS + fraction * scale, link, buf, pos + size, end - fcs
            pos = end
        chunk = next(chunks, None)
        if chunk is None:
            break
        buf = buf[pos:] + chunk
        pos = 0
    if pos < len(buf):
        raise _Stop(
            number + 1,
            f"capture truncated: packet {number + 1} is cut short ({len(buf) - pos} bytes of its "
            "record); the packets before it were read. Was the capture still being written?",
            buf[pos : pos + 16],
        )


@dataclass
class _Interface:
    link: int
    multiply: int = 1000  # ns = stamp * multiply // divide + offset
    divide: int = 1
    offset: int = 0


def _interface(body: bytes, at: int, end: int, order: str) -> _Interface:
    link = struct.unpack_from(f"{order}H", body, at)[0]
    interface = _Interface(link)
    at += 8
    while at + 4 <= end:
        code, length = struct.unpack_from(f"{order}HH", body, at)
        value = body[at + 4 : at + 4 + length]
        at += 4 + length + (-length % 4)
        if code == 0:
            break
        if code == 9 and length >= 1:  # if_tsresol
            resolution = value[0]
            if resolution & 0x80:
                interface.multiply, interface.divide = NS, 1 << (resolution & 0x7F)
            elif resolution <= 9:
                interface.multiply, interface.divide = 10 ** (9 - resolution), 1
            else:
                interface.multiply, interface.divide = 1, 10 ** (resolution - 9)
        elif code == 14 and length >= 8:  # if_tsoffset, seconds
            interface.offset = struct.unpack_from(f"{order}q", value)[0] * NS
    return interface


def _pcapng_records(stream: BinaryIO, header: bytes, name: str) -> Iterator[Record]:
    buf = header
    pos = 0
    number = 0
    order = "<"
    interfaces: list[_Interface] = []
    time = 0
    chunks = _chunks(stream)
    block = struct.Struct("<II")
    epb = struct.Struct("<IIIII")
    while True:
        limit = len(buf)
        while pos + 12 <= limit:
            if buf[pos : pos + 4] == PCAPNG_MAGIC:
                found = PCAPNG_BYTE_ORDER.get(buf[pos + 8 : pos + 12])
                if found is None:
                    raise _Stop(number + 1, "corrupt pcapng section header", buf[pos : pos + 12])
                if found != order:
                    order = found
                    block, epb = struct.Struct(f"{order}II"), struct.Struct(f"{order}IIIII")
                interfaces = []
            kind, length = block.unpack_from(buf, pos)
            if length < 12 or length % 4 or length > MAX_RECORD_BYTES:
                raise _Stop(
                    number + 1,
                    f"corrupt pcapng block after packet {number} (type {kind:#x}, length "
                    f"{length}); the rest of the file was not read",
                    buf[pos : pos + 16],
                )
            end = pos + length
            if end > limit:
                break
            if kind == 6 or kind == 2:  # enhanced packet block, obsolete packet block
                iface, high, low, caplen, _ = epb.unpack_from(buf, pos + 8)
                if kind == 2:
                    iface &= 0xFFFF
                start = pos + 28
                number += 1
                if iface >= len(interfaces) or start + caplen > end - 4:
                    raise _Stop(
                        number,
                        f"corrupt packet block (packet {number}: interface {iface} of "
                        f"{len(interfaces)}, {caplen} bytes)",
                        buf[pos : pos + 32],
                    )
                interface = interfaces[iface]
                stamp = (high << 32) | low
                time = stamp * interface.multiply // interface.divide + interface.offset
                yield number, time, interface.link, buf, start, start + caplen
            elif kind == 3:  # simple packet block: interface 0, no time stamp
                number += 1
                original = block.unpack_from(buf, pos + 8)[0]
                caplen = min(original, length - 16)
                if not interfaces:
                    raise _Stop(number, "simple packet block before any interface block")
                yield number, time, interfaces[0].link, buf, pos + 12, pos + 12 + caplen
            elif kind == 1:
                interfaces.append(_interface(buf, pos + 8, end - 4, order))
            pos = end
        chunk = next(chunks, None)
        if chunk is None:
            break
        buf = buf[pos:] + chunk
        pos = 0
    if pos < len(buf):
        raise _Stop(
            number + 1,
            f"capture truncated: the block after packet {number} is cut short "
            f"({len(buf) - pos} bytes); the packets before it were read. Was the capture still "
            "being written?",
            buf[pos : pos + 16],
        )


def _records(stream: BinaryIO, name: str) -> Iterator[Record]:
    header = stream.read(24)
    magic = header[:4]
    if magic in PCAP_MAGICS:
        return _pcap_records(stream, header, name)
    if magic == PCAPNG_MAGIC and header[8:12] in PCAPNG_BYTE_ORDER:
        return _pcapng_records(stream, header, name)
    raise InputError(
        f"{name}: not a packet capture (it starts with {header[:8].hex(' ')}). The pcap source "
        "reads pcap and pcapng files (also gzip- or zstd-compressed); name another --source "
        "for other formats."
    )


# Link and network layers.


def _link(link: int, buf: bytes, start: int, end: int) -> tuple[int, int, bytes]:
    """(ethertype, offset of the network header, VLAN tags) of a frame; ethertype 0 when the
    frame carries no IP."""
    if link == ETHERNET:
        if end - start < 14:
            return 0, start, b""
        kind = _U16.unpack_from(buf, start + 12)[0]
        at = start + 14
        tags = b""
        while kind in VLAN_TPIDS and at + 4 <= end:
            tags += _U16.pack(_U16.unpack_from(buf, at)[0] & 0x0FFF)
            kind = _U16.unpack_from(buf, at + 2)[0]
            at += 4
        return kind, at, tags
    if link == SLL:
        return (
            (_U16.unpack_from(buf, start + 14)[0], start + 16, b"")
            if end - start >= 16
            else (
                0,
                start,
                b"",
            )
        )
    if link == SLL2:
        return (
            (_U16.unpack_from(buf, start)[0], start + 20, b"")
            if end - start >= 20
            else (
                0,
                start,
                b"",
            )
        )
    if link == NULL or link == LOOP:
        if end - start < 4:
            return 0, start, b""
        family = struct.unpack_from("<I" if link == NULL else ">I", buf, start)[0]
        if family > 0xFFFF:  # written in the other byte order
            family = struct.unpack_from(">I" if link == NULL else "<I", buf, start)[0]
        kind = IPV4 if family == 2 else IPV6 if family in IPV6_FAMILIES else 0
        return kind, start + 4, b""
    if link in RAW_LINKS and end > start:
        version = buf[start] >> 4
        return (IPV4 if version == 4 else IPV6 if version == 6 else 0), start, b""
    return 0, start, b""


def _ipv6_tcp(buf: bytes, at: int, end: int) -> int:
    """Offset of the TCP header in the IPv6 packet at ``at`` (past extension headers); -1 when
    it is not TCP, -2 for a fragment."""
    following = buf[at + 6]
    offset = at + 40
    while following in IPV6_EXTENSIONS or following == IPV6_AH:
        if offset + 8 > end:
            return -1
        size = (buf[offset + 1] + 2) * 4 if following == IPV6_AH else (buf[offset + 1] + 1) * 8
        following = buf[offset]
        offset += size
    if following == IPV6_FRAGMENT:
        return -2
    return offset if following == TCP_PROTOCOL else -1


def _address(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(packed) == 16 else socket.AF_INET, packed)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# Connections.


class _Undecided:
    """Holds a direction's pieces until the connection knows which side is the client."""

    def __init__(self, connection: _Connection, direction: int) -> None:
        self.connection = connection
        self.direction = direction
        self.events: list[tuple[bytes, int, int, int, int] | int | None] = []
        self.size = 0
        self.head = b""

    def feed(self, data: bytes, packet: int, time: int, seq: int, ack: int) -> None:
        self.events.append((data, packet, time, seq, ack))
        self.size += len(data)
        if len(self.head) < 4096:
            self.head += data[: 4096 - len(self.head)]
        self.connection.detect(self)

    def gap(self, lost: int) -> None:
        self.events.append(lost)

    def end(self) -> None:
        self.events.append(None)


class _Connection:
    __slots__ = (
        "capture",
        "keys",
        "streams",
        "addresses",
        "client",
        "conversation",
        "last_seen",
        "done",
        "first_packet",
    )

    def __init__(
        self, capture: Capture, keys: tuple[bytes, bytes], addresses: tuple[str, int, str, int]
    ) -> None:
        self.capture = capture
        self.keys = keys
        self.addresses = addresses  # (address, port) of direction 0's sender, then receiver
        self.streams = (Stream(_Undecided(self, 0)), Stream(_Undecided(self, 1)))
        self.client: int | None = None
        self.conversation: Conversation | None = None
        self.last_seen = 0
        self.done = False
        self.first_packet = 0

    def begin(self, direction: int, seq: int, flags: int) -> None:
        """The first packet of ``direction``."""
        stream = self.streams[direction]
        syn = bool(flags & SYN)
        stream.begin(seq, syn)
        if syn and self.client is None:
            self.decide(direction ^ 1 if flags & ACK else direction)
        elif not syn and self.conversation is not None:
            reader = self.conversation.requests if direction == self.client else None
            (reader or self.conversation.responses).unaligned()

    def detect(self, holder: _Undecided) -> None:
        """Decide the client from the bytes held, when one side's show an HTTP start line."""
        if self.client is not None:
            return
        if REQUEST_LINE.search(holder.head):
            self.decide(holder.direction)
        elif STATUS_LINE.search(holder.head):
            self.decide(holder.direction ^ 1)
        else:
            total = sum(s.sink.size for s in self.streams if isinstance(s.sink, _Undecided))
            if total > MAX_UNDECIDED_BYTES:
                self.foreign(holder)

    def foreign(self, holder: _Undecided | None) -> None:
        """Neither side speaks HTTP/1.x: one reject for the connection, and no more parsing."""
        held = [h for h in (holder, *(s.sink for s in self.streams)) if isinstance(h, _Undecided)]
        first = next((h for h in held if h.events), None)
        if first is not None:
            piece = next(e for e in first.events if isinstance(e, tuple))
            self.capture.reject(
                piece[1],
                "not HTTP: neither side of the connection sent an HTTP/1.x request or status line",
                first.head,
            )
        self.client = -1
        for stream in self.streams:
            stream.sink = _IGNORED

    def decide(self, client: int) -> None:
        self.client = client
        conversation = Conversation(
            self.capture.records(self), self.capture.max_body, self.streams[client]
        )
        self.conversation = conversation
        readers = {client: conversation.requests, client ^ 1: conversation.responses}
        for direction in (client, client ^ 1):
            stream = self.streams[direction]
            holder = stream.sink
            reader = readers[direction]
            stream.sink = reader
            if stream.started and not stream.aligned:
                reader.unaligned()
            if isinstance(holder, _Undecided):
                for event in holder.events:
                    if isinstance(event, tuple):
                        reader.feed(*event)
                    elif event is None:
                        reader.end()
                    else:
                        reader.gap(event)

    def close(self) -> None:
        """Flush both directions and emit the connection's last records."""
        if self.done:
            return
        self.done = True
        for stream in self.streams:
            stream.flush()
        if self.conversation is not None:
            self.conversation.finish()
        elif self.client is None:
            if any(isinstance(s.sink, _Undecided) and s.sink.events for s in self.streams):
                self.foreign(None)
        figures = self.capture.figures
        for stream in self.streams:
            figures.retransmitted += stream.retransmitted
            figures.conflicting_overlaps += stream.conflicts
            figures.gaps += stream.gaps
            figures.lost_bytes += stream.lost_bytes
            stream.sink = _IGNORED
            stream.recent.clear()
            stream.held.clear()
        self.conversation = None


class _Ignored:
    def feed(self, data: bytes, packet: int, time: int, seq: int, ack: int) -> None:
        pass

    def gap(self, lost: int) -> None:
        pass

    def end(self) -> None:
        pass


_IGNORED = _Ignored()


# Rows. An exchange is a tuple when it completes (its messages are still in the CPU's caches)
# and the tuples become columns at batch time: ``zip(*rows)``, then Arrow's compute functions.

Row = tuple[Any, ...]
# Positions in a row
(
    CLIENT,
    SERVER,
    PORT,
    PACKET,
    FIRST_TIME,
    LAST_TIME,
    METHOD,
    TARGET,
    VERSION,
    STATUS,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    REQUEST_BODY,
    RESPONSE_BODY,
    REQUEST_TRUNCATED,
    RESPONSE_TRUNCATED,
    REQUEST_HEADERS,
    RESPONSE_HEADERS,
) = range(18)


def _row(ends: tuple[str, str, int], request: Message, response: Message | None) -> Row:
    body = request.body
    request_body = body[0] if len(body) == 1 else b"".join(body)
    if response is None:
        return (
            *ends,
            request.first_packet,
            request.first_time,
            None,
            request.method,
            request.target,
            request.version,
            None,
            request.body_size,
            None,
            request_body,
            None,
            request.truncated,
            None,
            request.headers,
            None,
        )
    body = response.body
    return (
        *ends,
        request.first_packet,
        request.first_time,
        response.last_time,
        request.method,
        request.target,
        request.version,
        response.status,
        request.body_size,
        response.body_size,
        request_body,
        body[0] if len(body) == 1 else b"".join(body),
        request.truncated,
        response.truncated,
        request.headers,
        response.headers,
    )


def _table(rows: list[Row], source: Input, request_id: str) -> pa.Table:
    """The exchanges of ``rows`` as an Arrow table of the exchange schema."""
    n = len(rows)
    if not n:
        return schema.empty(schema.EXCHANGES)
    columns = list(zip(*rows, strict=True))
    first = np.asarray(columns[FIRST_TIME], dtype=np.int64)
    answered = np.fromiter((t is not None for t in columns[LAST_TIME]), dtype=bool, count=n)
    last = np.fromiter((0 if t is None else t for t in columns[LAST_TIME]), np.int64, count=n)
    request_headers, names, values = _header_lists(columns[REQUEST_HEADERS])
    lowered = pc.utf8_lower(names)
    host = _first_header(request_headers, lowered, values, "host")
    authority, path = _split_targets(_text(columns[TARGET]), host)
    request_truncated = np.asarray(columns[REQUEST_TRUNCATED], dtype=bool)
    response_truncated = np.fromiter((t is True for t in columns[RESPONSE_TRUNCATED]), bool, n)
    protocols = [_PROTOCOLS.get(v) or f"HTTP/{v}".encode() for v in columns[VERSION]]
    out: dict[str, pa.Array] = {
        "request_id": _first_header(request_headers, lowered, values, request_id, empty=False),
        "side": pa.nulls(n, pa.string()) if source.side is None else _repeat(source.side, n),
        "source": _repeat(NAME, n),
        "location": _strings([f"{source.name}#{number}" for number in columns[PACKET]]),
        "start_time": _array(schema.TIMESTAMP, first // 1000),
        "duration_ms": _array(pa.float64(), (last - first) / 1e6, answered),
        "method": _strings(columns[METHOD]),
        "authority": authority,
        "path": path,
        "protocol": _binary(protocols).view(pa.string()),
        "status": _numbers(columns[STATUS], np.int32, pa.int32()),
        "client_addr": _strings(columns[CLIENT]),
        "server_addr": _strings(columns[SERVER]),
        "server_port": _numbers(columns[PORT], np.int32, pa.int32()),
        "bytes_received": _numbers(columns[REQUEST_SIZE], np.int64, pa.int64()),
        "bytes_sent": _numbers(columns[RESPONSE_SIZE], np.int64, pa.int64()),
        "request_headers": request_headers,
        "response_headers": _header_lists(columns[RESPONSE_HEADERS])[0],
        "request_body": _binary(columns[REQUEST_BODY], nullable=False),
        "response_body": _binary(columns[RESPONSE_BODY]),
        "request_body_truncated": _bools(request_truncated),
        "response_body_truncated": _bools(response_truncated, answered),
        "body_truncated": _bools(request_truncated | response_truncated),
    }
    return pa.Table.from_arrays(
        [out[f.name] if f.name in out else pa.nulls(n, f.type) for f in schema.EXCHANGES],
        schema=schema.EXCHANGES,
    )


_PROTOCOLS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}

# Arrow arrays from Python values, built from numpy buffers. Not ``pa.array``: its first call in
# a process imports pandas (a third of a second, charged to the collect stage), and building
# the buffers directly is faster too.


_NUMPY_TYPES = {pa.int32(): np.int32, pa.int64(): np.int64, pa.uint64(): np.uint64}


def _numpy(array: pa.Array) -> np.ndarray:
    """The values of an integer ``array`` without nulls, as numpy (``to_numpy`` imports
    pandas)."""
    data = np.frombuffer(array.buffers()[1], dtype=_NUMPY_TYPES[array.type])
    return data[array.offset : array.offset + len(array)].astype(np.int64)


def _validity(present: np.ndarray | None) -> pa.Buffer | None:
    if present is None or present.all():
        return None
    return pa.py_buffer(np.packbits(present, bitorder="little"))


def _array(kind: pa.DataType, data: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    return pa.Array.from_buffers(kind, len(data), [_validity(present), pa.py_buffer(data)])


def _numbers(values: tuple[Any, ...], dtype: type, kind: pa.DataType) -> pa.Array:
    present = None
    if None in values:
        present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
        values = tuple(0 if v is None else v for v in values)
    return _array(kind, np.asarray(values, dtype=dtype), present)


def _bools(values: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    bits = pa.py_buffer(np.packbits(values, bitorder="little"))
    return pa.Array.from_buffers(pa.bool_(), len(values), [_validity(present), bits])


def _binary(values: Sequence[bytes | None], nullable: bool = True) -> pa.Array:
    n = len(values)
    present = None
    if nullable and None in values:
        present = np.fromiter((v is not None for v in values), dtype=bool, count=n)
        values = [b"" if v is None else v for v in values]
    sizes = np.fromiter(map(len, values), dtype=np.int64, count=n)  # type: ignore[arg-type]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = pa.py_buffer(b"".join(values))  # type: ignore[arg-type]
    if offsets[-1] < 2**31:
        buffers = [_validity(present), pa.py_buffer(offsets.astype(np.int32)), data]
        return pa.Array.from_buffers(pa.binary(), n, buffers)
    buffers = [_validity(present), pa.py_buffer(offsets), data]
    return pa.Array.from_buffers(pa.large_binary(), n, buffers).cast(pa.binary())


def _strings(values: Sequence[str | None]) -> pa.Array:
    encoded = [None if v is None else v.encode("utf-8", "surrogateescape") for v in values]
    return _text(encoded)


def _repeat(text: str, n: int) -> pa.Array:
    value = text.encode("utf-8")
    offsets = np.arange(n + 1, dtype=np.int64) * len(value)
    data = pa.py_buffer(value * n)
    if offsets[-1] < 2**31:
        buffers = [None, pa.py_buffer(offsets.astype(np.int32)), data]
        return pa.Array.from_buffers(pa.string(), n, buffers)
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), data]).cast(
        pa.string()
    )


def _ends(connection: _Connection) -> tuple[str, str, int]:
    """(client_addr as host:port, server_addr, server_port) of a connection."""
    source, sport, destination, dport = connection.addresses
    if connection.client == 1:
        return _host_port(destination, dport), source, sport
    return _host_port(source, sport), destination, dport


def _text(values: Sequence[bytes | None], nullable: bool = True) -> pa.Array:
    """Text: UTF-8 where it is, else Latin-1 (every byte a character), checked in bulk."""
    raw = _binary(values, nullable)
    try:
        return raw.cast(pa.string())
    except (pa.ArrowInvalid, ValueError):
        fixed = [None if v is None else _decode(v).encode("utf-8") for v in values]
        return _binary(fixed).view(pa.string())


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _header_lists(lists: tuple[list[bytes] | None, ...]) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The header lists (each ``[name, value, name, value, ...]``) as an Arrow list array,
    with its names and values as text."""
    nulls = None
    present: tuple[list[bytes], ...]
    if None in lists:
        nulls = _bools(np.fromiter((h is None for h in lists), dtype=bool, count=len(lists)))
        present = tuple(h if h is not None else [] for h in lists)
    else:
        present = lists  # type: ignore[assignment]
    flat = list(itertools.chain.from_iterable(present))
    sizes = np.fromiter(map(len, present), dtype=np.int32, count=len(present))
    offsets = np.zeros(len(present) + 1, dtype=np.int32)
    np.cumsum(sizes // 2, out=offsets[1:])
    name_text, value_text = _text(flat[0::2], False), _text(flat[1::2], False)
    structs = pa.StructArray.from_arrays([name_text, value_text], fields=list(schema.HEADER))
    array = pa.ListArray.from_arrays(_array(pa.int32(), offsets), structs, mask=nulls)
    return array.cast(schema.HEADERS), name_text, value_text


def _first_header(
    lists: pa.Array, lowered: pa.Array, values: pa.Array, wanted: str, empty: bool = True
) -> pa.Array:
    """Per row, the value of the first header named ``wanted`` (``lowered``: the names in lower
    case), or null; with ``empty=False`` an empty value is null too."""
    n = len(lists)
    hits = pc.is_in(lowered, value_set=_strings([wanted.lower()]))
    matches = _numpy(pc.indices_nonzero(hits))
    if not len(matches):
        return pa.nulls(n, pa.string())
    parents = _numpy(pc.list_parent_indices(lists))[matches]
    rows, first = np.unique(parents, return_index=True)
    index = np.full(n, -1, dtype=np.int64)
    index[rows] = matches[first]
    if not empty:
        sizes = _numpy(pc.binary_length(values))
        index[(index >= 0) & (sizes[np.maximum(index, 0)] == 0)] = -1
    present = index >= 0
    return values.take(_array(pa.int64(), np.where(present, index, 0), present))


def _split_targets(targets: pa.Array, hosts: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(authority, path) per request: the Host header's and the target, except for an
    absolute URL (a proxy's request), which carries its own."""
    absolute = pc.or_(
        pc.starts_with(targets, pattern="http://", ignore_case=True),
        pc.starts_with(targets, pattern="https://", ignore_case=True),
    )
    if not pc.any(absolute).as_py():
        return hosts, targets
    rows = zip(targets.to_pylist(), hosts.to_pylist(), absolute.to_pylist(), strict=True)
    pairs = [_split_target(t, h) if a else (h, t) for t, h, a in rows]
    return _strings([p[0] for p in pairs]), _strings([p[1] for p in pairs])


def _split_target(target: str, host: str | None) -> tuple[str | None, str]:
    """(authority, path) of a request target: an absolute URL (a proxy's request) carries its
    authority; other forms take the Host header's."""
    lowered = target[:8].lower()
    if lowered.startswith(("http://", "https://")):
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        if slash < 0:
            return rest or host, "/"
        return rest[:slash] or host, rest[slash:]
    return host, target


# The reader.


class Capture:
    """Reads one capture file into batches; ``figures`` says what else it held.

    >>> capture = Capture(Input(Path("mirror.pcap")), Options())
    >>> for batch in capture.batches():
    ...     batch.exchanges.num_rows, len(batch.rejects)  # doctest: +SKIP
    >>> capture.figures.packets  # doctest: +SKIP
    """

    def __init__(self, source: Input, options: Options) -> None:
        self.source = source
        self.options = options
        self.max_body = options.max_body_bytes
        self.request_id = options.request_id_header.lower()
        self.figures = Figures()
        self.rows: list[Row] = []  # exchanges not yet in a batch
        self.body_bytes = 0
        self.rejects: list[dict[str, object]] = []
        self.flows: dict[bytes, tuple[_Connection, int]] = {}
        self.open: dict[_Connection, None] = {}
        self.closed: dict[_Connection, int] = {}  # closed connections, by the time they closed
        self.now = 0
        self.next_sweep = 0

    # Records out.

    def reject(self, packet: int, reason: str, text: bytes) -> None:
        self.rejects.append(reject(self.source, f"#{packet}", reason, text))

    def records(self, connection: _Connection) -> _Records:
        return _Records(self, connection)

    def batch(self) -> Batch:
        table = _table(self.rows, self.source, self.request_id)
        batch = Batch(table, self.rejects)
        self.rows = []
        self.rejects = []
        self.body_bytes = 0
        return batch

    def full(self) -> bool:
        return len(self.rows) >= BATCH_ROWS or self.body_bytes >= BATCH_BODY_BYTES

    # Reading.

    def batches(self) -> Iterator[Batch]:
        """The capture's batches. The cyclic garbage collector is off meanwhile: the objects
        of open connections live long and are many, and it would scan them again and again,
        while closing a connection frees its objects by reference counting."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            yield from self._batches()
        finally:
            if collecting:
                gc.enable()

    def _batches(self) -> Iterator[Batch]:
        with open_input(self.source) as stream:
            try:
                records = _records(stream, self.source.name)
            except (OSError, EOFError, zlib.error, ValueError, zstandard.ZstdError) as e:
                raise InputError(
                    f"{self.source.name}: cannot be read ({e}). If it is compressed, is it "
                    "complete? Decompress it by hand to check."
                ) from e
            try:
                for _ in self._packets(records):
                    yield self.batch()
            except _Stop as stop:
                self.reject(stop.packet, stop.reason, stop.excerpt)
        for connection in list(self.open):
            self._close(connection)
        if not self.figures.tcp_packets and self.figures.packets and self.figures.unknown_link:
            raise InputError(
                f"{self.source.name}: no packet is on a link type the pcap source reads "
                f"({LINK_NAMES}); link types seen: "
                f"{', '.join(map(str, sorted(self.figures.links)))}."
            )
        yield self.batch()

    def _packets(self, records: Iterator[Record]) -> Iterator[None]:
        """Decode every record, feeding TCP segments to their connections; yields when a batch
        is full. The loop is written out flat: it runs once per packet."""
        flows = self.flows
        figures = self.figures
        links = figures.links
        tcp_fields = _TCP.unpack_from
        u16 = _U16.unpack_from
        # Constants as locals: the loop reads them for every packet.
        ethernet, ipv4, ipv6, tcp_protocol = ETHERNET, IPV4, IPV6, TCP_PROTOCOL
        vlan_tpids, ack_flag, fin_rst = VLAN_TPIDS, ACK, FIN | RST
        packets = tcp_packets = 0
        number = 0
        time = 0
        next_sweep = self.next_sweep
        try:
            for number, time, link, buf, start, end in records:
                packets += 1
                if link == ethernet and end - start >= 14:
                    kind = (buf[start + 12] << 8) | buf[start + 13]
                    at = start + 14
                    tags = b""
                    if kind in vlan_tpids:
                        kind, at, tags = _link(link, buf, start, end)
                else:
                    if link not in LINKS:
                        figures.unknown_link += 1
                        links[link] = links.get(link, 0) + 1
                        continue
                    kind, at, tags = _link(link, buf, start, end)
                if kind == ipv4:
                    if at + 20 > end:
                        figures.short_frames += 1
                        continue
                    first = buf[at]
                    header = (first & 0x0F) * 4
                    if first >> 4 != 4 or header < 20:
                        figures.not_ip += 1
                        continue
                    if buf[at + 9] != tcp_protocol:
                        figures.not_tcp += 1
                        continue
                    if u16(buf, at + 6)[0] & 0x3FFF:
                        figures.ip_fragments += 1
                        continue
                    total = u16(buf, at + 2)[0]
                    stop = at + total if header <= total and at + total <= end else end
                    tcp = at + header
                    if tcp + 20 > stop:
                        figures.short_frames += 1
                        continue
                    if header == 20:
                        key = buf[at + 12 : at + 24] + tags
                    else:
                        key = buf[at + 12 : at + 20] + buf[tcp : tcp + 4] + tags
                elif kind == ipv6:
                    if at + 40 > end or buf[at] >> 4 != 6:
                        figures.short_frames += 1
                        continue
                    tcp = _ipv6_tcp(buf, at, end)
                    if tcp < 0:
                        if tcp == -2:
                            figures.ip_fragments += 1
                        else:
                            figures.not_tcp += 1
                        continue
                    length = u16(buf, at + 4)[0]
                    stop = at + 40 + length if length and at + 40 + length <= end else end
                    if tcp + 20 > stop:
                        figures.short_frames += 1
                        continue
                    key = buf[at + 8 : at + 40] + buf[tcp : tcp + 4] + tags
                else:
                    figures.not_ip += 1
                    continue
                tcp_packets += 1
                seq, ack, offset, flags = tcp_fields(buf, tcp + 4)
                data_at = tcp + ((offset >> 4) << 2)
                entry = flows.get(key)
                if entry is None or entry[0].done:
                    entry = self._new(key, kind == ipv6, tags, flags, entry, number, time)
                    if entry is None:
                        continue
                connection, direction = entry
                connection.last_seen = time
                stream = connection.streams[direction]
                if not stream.started:
                    connection.begin(direction, seq, flags)
                if flags & ack_flag:
                    connection.streams[direction ^ 1].acked = ack
                if data_at < stop:
                    payload = buf[data_at:stop]
                    if seq == stream.next and not stream.held:
                        # In order (tcpstream.Stream.segment's first case, written out here).
                        stream.next = (seq + stop - data_at) & MASK
                        stream.recent.append((seq, payload))
                        stream.sink.feed(payload, number, time, seq, ack)
                    else:
                        stream.segment(seq, payload, number, time, ack)
                if flags & fin_rst:
                    self._control(connection, direction, flags, seq, stop - data_at)
                if time >= next_sweep:
                    self._sweep(time)
                    next_sweep = self.next_sweep
                if not tcp_packets & 1023 and self.full():
                    yield
        finally:
            figures.packets += packets
            figures.tcp_packets += tcp_packets
            self.now = time

    def _new(
        self,
        key: bytes,
        ipv6: bool,
        tags: bytes,
        flags: int,
        entry: tuple[_Connection, int] | None,
        number: int,
        time: int,
    ) -> tuple[_Connection, int] | None:
        """A packet of no open connection: a new one, unless it is a late packet of one that
        closed (only a SYN opens a connection again on the same addresses and ports)."""
        if entry is not None and not (flags & SYN and not flags & ACK):
            self.figures.late_packets += 1
            return None
        size = 16 if ipv6 else 4
        ports = key[2 * size : 2 * size + 4]
        reverse = key[size : 2 * size] + key[:size] + ports[2:] + ports[:2] + tags
        source, destination = _address(key[:size]), _address(key[size : 2 * size])
        sport, dport = _U16.unpack_from(ports)[0], _U16.unpack_from(ports, 2)[0]
        connection = _Connection(self, (key, reverse), (source, sport, destination, dport))
        connection.first_packet = number
        connection.last_seen = time
        for old in (self.flows.get(key), self.flows.get(reverse)):
            if old is not None:
                self.closed.pop(old[0], None)
        self.flows[key] = (connection, 0)
        self.flows[reverse] = (connection, 1)
        self.open[connection] = None
        self.figures.connections += 1
        return connection, 0

    def _control(
        self, connection: _Connection, direction: int, flags: int, seq: int, size: int
    ) -> None:
        if flags & RST:
            self._close(connection)
            return
        stream = connection.streams[direction]
        stream.finish((seq + size) & MASK)
        if connection.streams[0].ended and connection.streams[1].ended:
            self._close(connection)

    def _close(self, connection: _Connection) -> None:
        connection.close()
        self.open.pop(connection, None)
        self.closed[connection] = connection.last_seen

    def _sweep(self, now: int) -> None:
        """Close connections idle past ``IDLE_SECONDS`` and forget those closed long ago."""
        self.next_sweep = now + SWEEP_SECONDS * NS
        idle = now - IDLE_SECONDS * NS
        for connection in [c for c in self.open if c.last_seen < idle]:
            self.figures.idle_closed += 1
            self._close(connection)
        forget = now - CLOSED_SECONDS * NS
        while self.closed:
            connection, closed_at = next(iter(self.closed.items()))
            if closed_at >= forget:
                break
            del self.closed[connection]
            for key in connection.keys:
                entry = self.flows.get(key)
                if entry is not None and entry[0] is connection:
                    del self.flows[key]


class _Records:
    """A connection's records, to the capture's rows and rejects."""

    __slots__ = ("capture", "ends")

    def __init__(self, capture: Capture, connection: _Connection) -> None:
        self.capture = capture
        self.ends = _ends(connection)

    def exchange(self, request: Message, response: Message | None) -> None:
        capture = self.capture
        capture.rows.append(_row(self.ends, request, response))
        capture.body_bytes += request.kept + (response.kept if response is not None else 0)

    def reject(self, message: Message, reason: str) -> None:
        self.capture.reject(message.first_packet, reason, message.start_line())


class PcapCollector:
    """Reads HTTP/1.x exchanges from pcap/pcapng captures (see the module's docstring).

    >>> for batch in COLLECTOR.read(Input(Path("capture.pcap")), Options()):
    ...     batch.exchanges.num_rows, len(batch.rejects)  # doctest: +SKIP
    """

    name = NAME

    def sniff(self, head: bytes) -> float:
        magic = head[:4]
        if magic in PCAP_MAGICS:
            return 1.0
        if magic == PCAPNG_MAGIC and head[8:12] in PCAPNG_BYTE_ORDER:
            return 1.0
        return 0.0

    def read(self, source: Input, options: Options) -> Iterator[Batch]:
        """The capture's batches; the last one's ``note`` says what else the capture held
        (packets skipped and why, what reassembly met, a live capture's kernel drops)."""
        capture = Capture(source, options)
        last: Batch | None = None
        for batch in capture.batches():
            if last is not None:
                yield last
            last = batch
        if last is None:
            last = Batch(schema.empty(schema.EXCHANGES))
        last.note = figures_note(capture.figures, source)
        yield last


def figures_note(figures: Figures, source: Input) -> str | None:
    """The manifest's note for a capture: packets read and not used, what reassembly met, and
    what a live capture (``shadowdiff capture``, its sidecar) lost."""
    from shadowdiff.capture import sidecar_note

    skipped = {
        "not IP": figures.not_ip,
        "not TCP": figures.not_tcp,
        "IP fragments": figures.ip_fragments,
        "cut by the snap length": figures.short_frames,
        "on an unknown link": figures.unknown_link,
        "after both FINs (final ACKs and the like)": figures.late_packets,
    }
    met = {
        "retransmitted segments": figures.retransmitted,
        "conflicting overlaps": figures.conflicting_overlaps,
        "gaps": figures.gaps,
        "bytes lost in gaps": figures.lost_bytes,
    }
    parts = [f"{figures.packets:,} packets, {figures.connections:,} TCP connections"]
    if any(skipped.values()):
        parts.append("skipped: " + ", ".join(f"{n:,} {k}" for k, n in skipped.items() if n))
    if any(met.values()):
        parts.append("reassembly: " + ", ".join(f"{n:,} {k}" for k, n in met.items() if n))
    live = sidecar_note(source.path) if source.shown is None else sidecar_note(Path(source.name))
    if live:
        parts.append(live)
    return "; ".join(parts)


COLLECTOR = PcapCollector()
