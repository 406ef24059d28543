"""The TCP segments of a stretch of frames (``pcap_records.Frames``): link, IP and TCP headers
decoded into columns (``Segments``), and the frames that carry none counted (``Skipped``).

- **The common case at once.** Ethernet without VLAN tags, IPv4, TCP, not a fragment: the
  fields of every such frame of the stretch are read with numpy (fancy indexing at each frame's
  offsets), with the checks the per-frame code makes, so exactly the frames it would take.
- **Every other frame on its own**, by the same rules in Python: Ethernet (802.1Q and QinQ
  tags, 0x8100/0x88a8/0x9100), Linux cooked SLL and SLL2, BSD loopback (either byte order) and
  OpenBSD loop, raw IP (101, 12, 14, 228, 229); IPv4 with options, IPv6 past its extension
  headers. Everything that is not TCP over IP (ARP, UDP, IP fragments, frames too short for
  their headers) is counted in ``Skipped``, since it holds no HTTP/1.x.

Decoding a frame depends on nothing but its bytes, so the two kinds are decoded apart and put
back in capture order. The flows are numbered too, each direction and each connection (both
directions) within the stretch, for ``pcap_acks``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from shadowdiff.collect.pcap_records import (
    ETHERNET,
    LINKS,
    LOOP,
    NULL,
    RAW_LINKS,
    SLL,
    SLL2,
    Frames,
)

IPV4, IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
IPV6_FAMILIES = frozenset({10, 24, 28, 30})
IPV6_EXTENSIONS = frozenset({0, 43, 60, 135, 139, 140})
TCP_PROTOCOL, IPV6_FRAGMENT, IPV6_AH = 6, 44, 51
# The shortest Ethernet frame with an IPv4 and a TCP header
COMMON_MINIMUM = 14 + 20 + 20

_TCP = struct.Struct("!IIBB")  # seq, ack, data offset, flags (from the segment's 5th byte)
_U16 = struct.Struct("!H")

Shape = tuple[bool, bytes]  # whether IPv6, the VLAN tags


@dataclass
class Skipped:
    """Packets that carry no TCP segment to read, by why."""

    not_ip: int = 0
    not_tcp: int = 0
    ip_fragments: int = 0
    short_frames: int = 0  # cut before the end of their TCP header (snap length)
    unknown_link: int = 0
    links: dict[int, int] = field(default_factory=dict)  # packets per link type not read


@dataclass
class Segments:
    """The TCP segments of a stretch, in capture order. Segment ``i`` came in packet
    ``numbers[i]`` at ``times[i]`` on the flow ``keys[i]`` (addresses, ports, VLAN tags: one
    bytes object per flow and stretch); ``shapes[i]`` is ``None`` for IPv4 without VLAN tags;
    its data is ``buf[data_starts[i]:data_ends[i]]`` (none when the start is not before the
    end). ``flows[i]`` numbers its key within the stretch, ``pairs[i]`` the key and its reverse
    together (both directions of a connection), whose lesser is ``sides[i]``."""

    buf: bytes
    numbers: np.ndarray
    times: np.ndarray
    keys: list[bytes]
    shapes: list[Shape | None]
    seqs: np.ndarray
    acks: np.ndarray
    flags: np.ndarray
    data_starts: np.ndarray
    data_ends: np.ndarray
    flows: np.ndarray
    pairs: np.ndarray
    sides: list[bytes]

    def __len__(self) -> int:
        return len(self.numbers)


@dataclass
class _Columns:
    """Decoded segments of some of a stretch's frames (``index``), as arrays; ``sides`` holds
    the lesser of each key and its reverse (the same for both directions). ``flows`` and
    ``pairs`` number the keys and sides, where they were numbered already."""

    index: np.ndarray
    keys: list[bytes]
    sides: list[bytes]
    shapes: list[Shape | None]
    seqs: np.ndarray
    acks: np.ndarray
    flags: np.ndarray
    data_starts: np.ndarray
    data_ends: np.ndarray
    flows: np.ndarray | None = None
    pairs: np.ndarray | None = None


def segments(frames: Frames, skipped: Skipped) -> Segments:
    """The TCP segments of ``frames``; the frames without one are counted in ``skipped``."""
    common = _common_segments(frames)
    if len(common.index) == len(frames):
        return _segments(frames, common)
    rest = np.ones(len(frames), dtype=bool)
    rest[common.index] = False
    other = _other_segments(frames, np.flatnonzero(rest), skipped)
    return _segments(frames, _merged(common, other))


def _segments(frames: Frames, columns: _Columns) -> Segments:
    index = columns.index
    return Segments(
        frames.buf,
        index + frames.first,
        frames.times if len(index) == len(frames) else frames.times[index],
        columns.keys,
        columns.shapes,
        columns.seqs.astype(np.int64),
        columns.acks.astype(np.int64),
        columns.flags.astype(np.int64),
        columns.data_starts,
        columns.data_ends,
        _numbered(columns.keys) if columns.flows is None else columns.flows,
        _numbered(columns.sides) if columns.pairs is None else columns.pairs,
        columns.sides,
    )


def _numbered(values: list[bytes]) -> np.ndarray:
    """Each value's number: the same for equal values."""
    numbers: dict[bytes, int] = {}
    return np.array([numbers.setdefault(v, len(numbers)) for v in values], dtype=np.int64)


def _numbered_rows(rows: np.ndarray) -> np.ndarray:
    """Each row's number (of 12 bytes): the same for equal rows."""
    words = rows.view(">u4")
    order = np.lexsort((words[:, 2], words[:, 1], words[:, 0]))
    ordered = words[order]
    starts = (ordered[1:] != ordered[:-1]).any(axis=1)
    numbers = np.empty(len(rows), dtype=np.int64)
    numbers[order] = np.concatenate([[0], np.cumsum(starts)]) if len(rows) else order
    return numbers


def _common_segments(frames: Frames) -> _Columns:
    """The segments of the frames of the common shape (Ethernet, IPv4, TCP, no fragment),
    decoded all at once, by the rules of ``_segment``."""
    raw = np.frombuffer(frames.buf, dtype=np.uint8)
    ends = frames.ends
    # Long enough for every header: each index read below is inside its frame.
    index = np.flatnonzero((frames.links == ETHERNET) & (ends - frames.starts >= COMMON_MINIMUM))
    at = frames.starts[index] + 14
    end = ends[index]
    first = raw[at]
    header = (first & 0x0F).astype(np.int64) * 4
    total = (raw[at + 2].astype(np.int64) << 8) | raw[at + 3]
    stop = np.where((header <= total) & (at + total <= end), at + total, end)
    tcp = at + header
    common = (
        (raw[at - 2] == IPV4 >> 8)
        & (raw[at - 1] == IPV4 & 0xFF)
        & (first >> 4 == 4)
        & (header >= 20)
        & (raw[at + 9] == TCP_PROTOCOL)
        & (raw[at + 6] & 0x3F == 0)  # neither "more fragments" nor an offset
        & (raw[at + 7] == 0)
        & (tcp + 20 <= stop)
    )
    index, at, tcp, stop = index[common], at[common], tcp[common], stop[common]
    head = raw[tcp[:, None] + np.arange(14)]  # ports, seq, ack, data offset, flags
    addresses = raw[at[:, None] + np.arange(12, 20)]
    keys = np.concatenate([addresses, head[:, :4]], axis=1)
    reverse = keys[:, [4, 5, 6, 7, 0, 1, 2, 3, 10, 11, 8, 9]]
    sides = np.ascontiguousarray(np.where(_lesser_rows(keys, reverse)[:, None], keys, reverse))
    return _Columns(
        index,
        keys.view("V12").ravel().tolist(),
        sides.view("V12").ravel().tolist(),
        [None] * len(index),
        np.ascontiguousarray(head[:, 4:8]).view(">u4").ravel(),
        np.ascontiguousarray(head[:, 8:12]).view(">u4").ravel(),
        head[:, 13],
        tcp + (head[:, 12] >> 4).astype(np.int64) * 4,
        stop,
        _numbered_rows(keys),
        _numbered_rows(sides),
    )


def _lesser_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether the bytes of ``a`` are at most those of ``b`` (compared as bytes)."""
    differ = a != b
    first = np.argmax(differ, axis=1)
    rows = np.arange(len(a))
    return ~differ.any(axis=1) | (a[rows, first] < b[rows, first])


def _other_segments(frames: Frames, index: np.ndarray, skipped: Skipped) -> _Columns:
    """The segments of the frames at ``index`` (not of the common shape), one by one."""
    buf = frames.buf
    found: list[int] = []
    keys: list[bytes] = []
    sides: list[bytes] = []
    shapes: list[Shape | None] = []
    numbers: list[tuple[int, int, int, int, int]] = []
    rows = zip(
        index.tolist(),
        frames.links[index].tolist(),
        frames.starts[index].tolist(),
        frames.ends[index].tolist(),
        strict=True,
    )
    for i, link, start, end in rows:
        segment = _segment(link, buf, start, end, skipped)
        if segment is None:
            continue
        key, ipv6, tags, tcp, stop = segment
        seq, ack, offset, flags = _TCP.unpack_from(buf, tcp + 4)
        found.append(i)
        keys.append(key)
        sides.append(min(key, reverse_key(key, ipv6, tags)))
        shapes.append(None if not ipv6 and not tags else (ipv6, tags))
        numbers.append((seq, ack, flags, tcp + ((offset >> 4) << 2), stop))
    table = np.array(numbers, dtype=np.int64).reshape(-1, 5)
    return _Columns(
        np.array(found, dtype=np.int64),
        keys,
        sides,
        shapes,
        table[:, 0],
        table[:, 1],
        table[:, 2],
        table[:, 3],
        table[:, 4],
    )


def reverse_key(key: bytes, ipv6: bool, tags: bytes) -> bytes:
    """The flow key of the other direction."""
    size = 16 if ipv6 else 4
    ports = key[2 * size : 2 * size + 4]
    return key[size : 2 * size] + key[:size] + ports[2:] + ports[:2] + tags


def _merged(a: _Columns, b: _Columns) -> _Columns:
    """The segments of both, in capture order."""
    index = np.concatenate([a.index, b.index])
    order = np.argsort(index, kind="stable")
    places = order.tolist()
    keys, sides, shapes = [*a.keys, *b.keys], [*a.sides, *b.sides], [*a.shapes, *b.shapes]
    return _Columns(
        index[order],
        [keys[i] for i in places],
        [sides[i] for i in places],
        [shapes[i] for i in places],
        np.concatenate([a.seqs, b.seqs]).astype(np.int64)[order],
        np.concatenate([a.acks, b.acks]).astype(np.int64)[order],
        np.concatenate([a.flags, b.flags]).astype(np.int64)[order],
        np.concatenate([a.data_starts, b.data_starts])[order],
        np.concatenate([a.data_ends, b.data_ends])[order],
    )


# One frame at a time.


def _segment(
    link: int, buf: bytes, start: int, end: int, skipped: Skipped
) -> tuple[bytes, bool, bytes, int, int] | None:
    """(flow key, whether IPv6, VLAN tags, offset of the TCP header, end of the IP payload) of
    the frame at ``buf[start:end]``; ``None`` when it carries no TCP segment (counted)."""
    if link not in LINKS:
        skipped.unknown_link += 1
        skipped.links[link] = skipped.links.get(link, 0) + 1
        return None
    kind, at, tags = _link(link, buf, start, end)
    if kind == IPV4:
        if at + 20 > end:
            skipped.short_frames += 1
            return None
        first = buf[at]
        header = (first & 0x0F) * 4
        if first >> 4 != 4 or header < 20:
            skipped.not_ip += 1
            return None
        if buf[at + 9] != TCP_PROTOCOL:
            skipped.not_tcp += 1
            return None
        if _U16.unpack_from(buf, at + 6)[0] & 0x3FFF:
            skipped.ip_fragments += 1
            return None
        total = _U16.unpack_from(buf, at + 2)[0]
        stop = at + total if header <= total and at + total <= end else end
        tcp = at + header
        if tcp + 20 > stop:
            skipped.short_frames += 1
            return None
        return buf[at + 12 : at + 20] + buf[tcp : tcp + 4] + tags, False, tags, tcp, stop
    if kind == IPV6:
        if at + 40 > end or buf[at] >> 4 != 6:
            skipped.short_frames += 1
            return None
        tcp = _ipv6_tcp(buf, at, end)
        if tcp < 0:
            if tcp == -2:
                skipped.ip_fragments += 1
            else:
                skipped.not_tcp += 1
            return None
        length = _U16.unpack_from(buf, at + 4)[0]
        stop = at + 40 + length if length and at + 40 + length <= end else end
        if tcp + 20 > stop:
            skipped.short_frames += 1
            return None
        return buf[at + 8 : at + 40] + buf[tcp : tcp + 4] + tags, True, tags, tcp, stop
    skipped.not_ip += 1
    return None


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
        if end - start < 16:
            return 0, start, b""
        return _U16.unpack_from(buf, start + 14)[0], start + 16, b""
    if link == SLL2:
        if end - start < 20:
            return 0, start, b""
        return _U16.unpack_from(buf, start)[0], start + 20, b""
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
