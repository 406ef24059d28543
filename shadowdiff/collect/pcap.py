"""The ``pcap`` collector: HTTP/1.x exchanges, with bodies, from pcap and pcapng captures.

The layers, each in its own module: records of the file (``pcap_records``, a stretch of the
file at a time), their link, IP and TCP headers (``pcap_headers``, numpy on the file's bytes:
scapy's dissection reads under 10k packets/s), one ``tcpstream.Stream`` per direction of each
connection (reassembly), and ``http1`` (httptools) for the messages and their pairing.

Decisions:

- **Files.** pcap in either byte order, with microsecond or nanosecond stamps (and the old
  "modified" format of Alexey Kuznetsov's patches), and pcapng (every section, an interface
  block per interface with its own link type, ``if_tsresol`` and ``if_tsoffset``; enhanced, simple
  and obsolete packet blocks). gzip and zstd files are read through as the log collectors read
  them. A file that is not a capture, or a pcap whose link type is not read here, is an
  ``InputError``; a record cut short at the end of the file (a capture still being written) or a
  corrupt record header is one ``rejects`` row, and what came before it is kept.
- **Links.** Ethernet (802.1Q and QinQ tags), Linux cooked SLL and SLL2, BSD and OpenBSD
  loopback, raw IP. Only IPv4 and IPv6 carrying TCP are read; everything else (ARP, UDP, IP
  fragments, frames too short for their headers) is skipped and counted in ``Figures``, since
  it holds no HTTP/1.x.
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
- **Speed.** Nothing is done per packet that can be done per stretch of the file (about
  ``READ_CHUNK`` bytes): record headers are walked in one short loop, the link, IP and TCP
  headers of the common frames (Ethernet, IPv4, TCP) are decoded for the whole stretch with
  numpy, and so are the flows. Pure ACKs (no data, no SYN/FIN/RST), about half of a busy
  capture's packets, are applied in bulk (``pcap_acks``), so the packet loop, written out flat,
  runs only for the segments that carry data or a SYN, FIN or RST. What is left is mostly
  httptools and its callbacks, about a third of the time, and building the columns. An
  exchange becomes a tuple when it completes and the tuples become Arrow columns per batch,
  from numpy buffers (not ``pa.array``, whose first call imports pandas). The cyclic garbage
  collector is off while a file is read (thousands of long-lived connection objects would be
  rescanned again and again); a closed connection breaks its own reference cycles so that it is
  freed at once. Batches are small enough (``BATCH_ROWS``) that peak memory does not grow with
  the capture.
- **Shares.** A large capture is read by several processes at once, each taking the
  connections of its share (``pcap_shares``). That needs every connection to be independent of
  the others: a sweep for idle connections runs at the first segment past its time, whichever
  connection's it is (a late packet too), and a closed connection is forgotten at the first
  sweep ``CLOSED_SECONDS`` after it closed, whatever the others did.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import socket
import struct
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from shadowdiff import schema
from shadowdiff.collect import pcap_acks, pcap_shares
from shadowdiff.collect.base import Batch, Input, Options, reject
from shadowdiff.collect.http1 import REQUEST_LINE, STATUS_LINE, Conversation, Message
from shadowdiff.collect.lines import open_input
from shadowdiff.collect.pcap_headers import Segments, Shape, Skipped, reverse_key, segments
from shadowdiff.collect.pcap_records import (
    LINK_NAMES,
    NS,
    PCAP_MAGICS,
    PCAPNG_BYTE_ORDER,
    PCAPNG_MAGIC,
    Frames,
    Stop,
    frames,
)
from shadowdiff.collect.pcap_shares import TICK, Share
from shadowdiff.collect.tcpstream import MASK, Stream
from shadowdiff.errors import InputError

NAME = "pcap"
BATCH_ROWS = 20_000
BATCH_BODY_BYTES = 64 * 1024 * 1024
IDLE_SECONDS = 300
CLOSED_SECONDS = 60
SWEEP_SECONDS = 10  # of capture time between looks for idle connections
MAX_UNDECIDED_BYTES = 64 * 1024
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

_PORTS = struct.Struct("!HH")


@dataclass
class Figures(Skipped):
    """What a capture held besides exchanges and rejects: packets read and why some were not
    used (``Skipped``), and what reassembly met. Not records: none of it is an HTTP message."""

    packets: int = 0
    tcp_packets: int = 0
    late_packets: int = 0  # packets of a connection after it closed
    connections: int = 0
    idle_closed: int = 0
    retransmitted: int = 0
    conflicting_overlaps: int = 0
    gaps: int = 0
    lost_bytes: int = 0


# What every share of a capture counts alike (it reads every packet): the rest is counted per
# connection, in the share that has it.
PER_PACKET = ("packets", "tcp_packets", *(f.name for f in fields(Skipped)))


def merged_figures(shares: Sequence[Figures]) -> Figures:
    """The figures of a capture from those of its shares (``Capture(share=...)``)."""
    merged = Figures()
    for name in (f.name for f in fields(Figures)):
        if name in PER_PACKET:
            setattr(merged, name, getattr(shares[0], name) if shares else 0)
        else:
            setattr(merged, name, sum(getattr(figures, name) for figures in shares))
    return merged


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


def _row(ends: tuple[bytes, bytes, int], request: Message, response: Message | None) -> Row:
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
        "location": _locations(source.name, columns[PACKET]),
        "start_time": _array(schema.TIMESTAMP, first // 1000),
        "duration_ms": _array(pa.float64(), (last - first) / 1e6, answered),
        "method": _strings(columns[METHOD]),
        "authority": authority,
        "path": path,
        "protocol": _binary(protocols).view(pa.string()),
        "status": _numbers(columns[STATUS], np.int32, pa.int32()),
        "client_addr": _text(columns[CLIENT]),
        "server_addr": _text(columns[SERVER]),
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


def _locations(name: str, packets: Sequence[int]) -> pa.Array:
    """``file#packet`` of each row."""
    prefix = name.encode("utf-8", "surrogateescape") + b"#%d"
    return _text([prefix % number for number in packets])


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


def _taken(values: list[Any], positions: list[int]) -> list[Any]:
    if len(positions) == len(values):
        return values
    return [values[i] for i in positions]


def _ends(connection: _Connection) -> tuple[bytes, bytes, int]:
    """(client_addr as host:port, server_addr, server_port) of a connection, the addresses
    encoded once for all its rows."""
    source, sport, destination, dport = connection.addresses
    if connection.client == 1:
        return _host_port(destination, dport).encode(), source.encode(), sport
    return _host_port(source, sport).encode(), destination.encode(), dport


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
    name_text, value_text = _names_and_values(flat)
    structs = pa.StructArray.from_arrays([name_text, value_text], fields=list(schema.HEADER))
    array = pa.ListArray.from_arrays(_array(pa.int32(), offsets), structs, mask=nulls)
    return array.cast(schema.HEADERS), name_text, value_text


def _names_and_values(flat: list[bytes]) -> tuple[pa.Array, pa.Array]:
    """The names and values of ``flat`` (name, value, name, value, ...) as text. Joined by NUL
    (which llhttp does not let into a header) and split by Arrow, that is one pass over the
    items instead of two for each half; with a NUL inside an item, or text that is not UTF-8,
    each half is made on its own."""
    joined = b"\0".join(flat)
    if flat and joined.count(b"\0") == len(flat) - 1 and len(joined) < 2**31:
        bounds = pa.py_buffer(np.array([0, len(joined)], dtype=np.int32))
        whole = pa.Array.from_buffers(pa.binary(), 1, [None, bounds, pa.py_buffer(joined)])
        items = pc.split_pattern(whole, pattern=b"\0").flatten()
        try:
            text = items.cast(pa.string())
        except (pa.ArrowInvalid, ValueError):
            pass
        else:
            names = np.arange(0, len(flat), 2, dtype=np.int64)
            return text.take(_array(pa.int64(), names)), text.take(_array(pa.int64(), names + 1))
    return _text(flat[0::2], False), _text(flat[1::2], False)


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

    def __init__(self, source: Input, options: Options, share: Share | None = None) -> None:
        self.source = source
        self.options = options
        self.share = share  # only this share's connections (pcap_shares), or every one
        self.max_body = options.max_body_bytes
        self.request_id = options.request_id_header.lower()
        self.figures = Figures()
        self.rows: list[Row] = []  # exchanges not yet in a batch
        self.body_bytes = 0
        self.rejects: list[dict[str, object]] = []
        self.flows: dict[bytes, tuple[_Connection, int]] = {}
        self.open: dict[_Connection, None] = {}
        self.closed: set[_Connection] = set()  # closed, their keys not yet forgotten
        # (time closed, order of closing, connection), to forget them when they are old
        self.closing: list[tuple[int, int, _Connection]] = []
        self.closings = itertools.count()
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

    def batches(self, stream: BinaryIO | None = None) -> Iterator[Batch]:
        """The capture's batches, read from ``stream`` if given (else the source is opened).
        The cyclic garbage collector is off meanwhile: the objects of open connections live
        long and are many, and it would scan them again and again, while closing a connection
        frees its objects by reference counting."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            yield from self._batches(stream)
        finally:
            if collecting:
                gc.enable()

    def _batches(self, given: BinaryIO | None) -> Iterator[Batch]:
        opened = open_input(self.source) if given is None else contextlib.nullcontext(given)
        with opened as stream:
            try:
                stretches = frames(stream, self.source.name)
            except (OSError, EOFError, zlib.error, ValueError, zstandard.ZstdError) as e:
                raise InputError(
                    f"{self.source.name}: cannot be read ({e}). If it is compressed, is it "
                    "complete? Decompress it by hand to check."
                ) from e
            try:
                for _ in self._packets(stretches):
                    yield self.batch()
            except Stop as stop:
                if self.share is None or self.share.index == 0:  # every share meets it
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

    def _packets(self, stretches: Iterator[Frames]) -> Iterator[None]:
        """Decode the headers of each stretch of frames and feed its TCP segments to their
        connections; yields when a batch is full."""
        figures = self.figures
        share = self.share
        for stretch in stretches:
            figures.packets += len(stretch)
            found = segments(stretch, figures)
            figures.tcp_packets += len(found)
            if share is not None:
                found = pcap_shares.owned(found, share, self.next_sweep, SWEEP_SECONDS * NS)
            yield from self._segments(found)

    def _segments(self, found: Segments) -> Iterator[None]:
        """Feed each segment to its connection, pure ACKs in bulk (``pcap_acks``); yields when
        a batch is full."""
        start = 0
        while start < len(found):
            planned = pcap_acks.plan(found, start, self.next_sweep, self._begun)
            swept = yield from self._kept(planned)
            if swept is None:
                self._apply(planned.tail)
                break
            start = swept + 1

    def _kept(self, planned: pcap_acks.Plan) -> Generator[None, None, int | None]:
        """Handle the segments kept by ``planned`` one by one; yields when a batch is full.
        Returns the position after which a sweep ran (the rest needs a new plan), or
        ``None`` at the stretch's end. The loop is written out flat: it runs once per
        packet."""
        found = planned.found
        flows = self.flows
        buf = found.buf
        kept = planned.kept
        ack_flag, fin_rst = ACK, FIN | RST  # constants as locals: read for every packet
        counted = self.figures.tcp_packets
        look = (counted | 1023) + 1  # fullness is looked at about every 1024 segments
        next_sweep = self.next_sweep
        positions = kept.tolist()
        rows = zip(
            positions,
            found.numbers[kept].tolist(),
            found.times[kept].tolist(),
            _taken(found.keys, positions),
            _taken(found.shapes, positions),
            found.seqs[kept].tolist(),
            found.acks[kept].tolist(),
            found.flags[kept].tolist(),
            found.data_starts[kept].tolist(),
            found.data_ends[kept].tolist(),
            planned.runs,
            strict=True,
        )
        for position, number, time, key, shape, seq, ack, flags, data_at, stop, run in rows:
            if run is not None:
                self._apply(run)
            entry = flows.get(key)
            if entry is None or entry[0].done:
                if entry is not None:
                    self.figures.late_packets += planned.late_before(position)
                if key != TICK:
                    entry = self._new(key, shape, flags, entry, number, time)
                if entry is None:  # a late packet, or another share's (a tick)
                    if time >= next_sweep:
                        self._apply(planned.before(position))
                        self._sweep(time)
                        return position
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
                self._apply(planned.before(position))
                self._sweep(time)
                return position
            if counted + position >= look:
                look = ((counted + position) | 1023) + 1
                if self.full():
                    yield
        return None

    def _begun(self, key: bytes) -> bool:
        """Whether the flow ``key``'s direction of its connection has begun, or the connection
        closed: a pure ACK on it sets only what it acknowledges and when (``pcap_acks``)."""
        entry = self.flows.get(key)
        if entry is None:
            return False
        connection, direction = entry
        return connection.done or connection.streams[direction].started

    def _apply(self, run: pcap_acks.Run) -> None:
        """Deferred pure ACKs: the latest of each flow sets what its packet would have."""
        flows = self.flows
        for key, ack, time, count in run:
            connection, direction = flows[key]
            if connection.done:
                self.figures.late_packets += count
            else:
                connection.streams[direction ^ 1].acked = ack
                connection.last_seen = time

    def _new(
        self,
        key: bytes,
        shape: Shape | None,
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
        ipv6, tags = shape or (False, b"")
        size = 16 if ipv6 else 4
        reverse = reverse_key(key, ipv6, tags)
        source, destination = _address(key[:size]), _address(key[size : 2 * size])
        sport, dport = _PORTS.unpack(key[2 * size : 2 * size + 4])
        connection = _Connection(self, (key, reverse), (source, sport, destination, dport))
        connection.first_packet = number
        connection.last_seen = time
        for old in (self.flows.get(key), self.flows.get(reverse)):
            if old is not None:
                self.closed.discard(old[0])
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
        self.closed.add(connection)
        heapq.heappush(self.closing, (connection.last_seen, next(self.closings), connection))

    def _sweep(self, now: int) -> None:
        """Close connections idle past ``IDLE_SECONDS`` and forget those closed long ago."""
        self.next_sweep = now + SWEEP_SECONDS * NS
        idle = now - IDLE_SECONDS * NS
        for connection in [c for c in self.open if c.last_seen < idle]:
            self.figures.idle_closed += 1
            self._close(connection)
        forget = now - CLOSED_SECONDS * NS
        closing = self.closing
        while closing and closing[0][0] < forget:
            connection = heapq.heappop(closing)[2]
            if connection not in self.closed:
                continue  # its keys were taken by a new connection
            self.closed.discard(connection)
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
    reads_shares = True  # a capture may be read in shares by several processes (pcap_shares)

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
