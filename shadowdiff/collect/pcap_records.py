"""The records of pcap and pcapng files, a stretch of the file at a time (``Frames``).

The file is read in large chunks (``READ_CHUNK``) and the records are sliced out of them: no
call per packet goes to the file. A stretch's frames are columns (where each one starts and ends
in the chunk, its link type and time), so that the link, IP and TCP headers of the whole stretch
can be decoded at once (``pcap_headers``).

- **pcap**, in either byte order, with microsecond or nanosecond stamps (and the old "modified"
  format of Alexey Kuznetsov's patches). A record's place depends on the length of the one
  before it, so a short loop walks the record headers; their times are then read for the whole
  stretch with numpy.
- **pcapng**: every section, an interface block per interface with its own link type,
  ``if_tsresol`` and ``if_tsoffset``; enhanced, simple and obsolete packet blocks. Read block by
  block (pcapng is not the common case; its times can exceed 64 bits in a corrupt file).

A record cut short at the end of the file or a corrupt header ends the reading with ``Stop``,
after the stretch of frames before it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import zstandard

from shadowdiff.errors import InputError

READ_CHUNK = 4 * 1024 * 1024
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a record claiming more is a corrupt header
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


class Stop(Exception):
    """The rest of the file cannot be read; the message is the ``rejects`` reason."""

    def __init__(self, packet: int, reason: str, excerpt: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.packet = packet
        self.excerpt = excerpt


@dataclass
class Frames:
    """The records of one stretch of a capture: frame ``i`` is ``buf[starts[i]:ends[i]]`` (an
    end before its start: a frame shorter than its FCS), on link type ``links[i]``, captured at
    ``times[i]`` (ns; Python integers where a corrupt pcapng's exceed 64 bits), packet number
    ``first + i``."""

    buf: bytes
    first: int
    times: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    links: np.ndarray

    def __len__(self) -> int:
        return len(self.times)


def frames(stream: BinaryIO, name: str) -> Iterator[Frames]:
    """The stretches of frames of a capture file; ``InputError`` if it is not one."""
    header = stream.read(24)
    magic = header[:4]
    if magic in PCAP_MAGICS:
        return _pcap_frames(stream, header, name)
    if magic == PCAPNG_MAGIC and header[8:12] in PCAPNG_BYTE_ORDER:
        return _PcapngReader().frames(stream, header)
    raise InputError(
        f"{name}: not a packet capture (it starts with {header[:8].hex(' ')}). The pcap source "
        "reads pcap and pcapng files (also gzip- or zstd-compressed); name another --source "
        "for other formats."
    )


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        try:
            chunk = stream.read(READ_CHUNK)
        except (OSError, EOFError, zlib.error, ValueError, zstandard.ZstdError) as e:
            raise Stop(
                0, f"the compressed data cannot be read on ({e}); is the file complete?"
            ) from e
        if not chunk:
            return
        yield chunk


# pcap


def _pcap_frames(stream: BinaryIO, header: bytes, name: str) -> Iterator[Frames]:
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
    caplen_at = struct.Struct(f"{order}I").unpack_from
    stamps = np.dtype(f"{order}u4")
    buf = header[24:]
    pos = 0
    number = 0
    chunks = _chunks(stream)
    while True:
        offsets, pos, corrupt = _pcap_offsets(buf, pos, size, caplen_at)
        if offsets:
            yield _pcap_stretch(buf, offsets, number + 1, link, fcs, size, stamps, scale)
            number += len(offsets)
        if corrupt:
            caplen = caplen_at(buf, pos + 8)[0]
            raise Stop(
                number + 1,
                f"corrupt record header at packet {number + 1} (a length of {caplen} "
                "bytes); the packets after it were not read",
                buf[pos : pos + size],
            )
        chunk = next(chunks, None)
        if chunk is None:
            break
        buf = buf[pos:] + chunk
        pos = 0
    if pos < len(buf):
        raise Stop(
            number + 1,
            f"capture truncated: packet {number + 1} is cut short ({len(buf) - pos} bytes of its "
            "record); the packets before it were read. Was the capture still being written?",
            buf[pos : pos + 16],
        )


def _pcap_offsets(
    buf: bytes, pos: int, size: int, caplen_at: Callable[[bytes, int], tuple[int, ...]]
) -> tuple[list[int], int, bool]:
    """Where the whole records in ``buf`` from ``pos`` start; where the first one not whole
    starts; whether that one's header is corrupt (a length over ``MAX_RECORD_BYTES``)."""
    offsets: list[int] = []
    found = offsets.append
    last = len(buf) - size  # where the last whole record header can start
    while pos <= last:
        caplen = caplen_at(buf, pos + 8)[0]
        if caplen > MAX_RECORD_BYTES:
            return offsets, pos, True
        end = pos + size + caplen
        if end > last + size:
            break
        found(pos)
        pos = end
    return offsets, pos, False


def _pcap_stretch(
    buf: bytes,
    offsets: list[int],
    first: int,
    link: int,
    fcs: int,
    size: int,
    stamps: np.dtype,
    scale: int,
) -> Frames:
    """The frames of the records at ``offsets``: their headers read all at once."""
    at = np.array(offsets, dtype=np.int64)
    raw = np.frombuffer(buf, dtype=np.uint8)
    headers = raw[at[:, None] + np.arange(12)].view(stamps)  # seconds, fraction, caplen
    seconds, fraction, caplen = (headers[:, i].astype(np.int64) for i in range(3))
    starts = at + size
    return Frames(
        buf,
        first,
        seconds * NS + fraction * scale,
        starts,
        starts + caplen - fcs,
        np.full(len(offsets), link, dtype=np.int64),
    )


# pcapng


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


@dataclass
class _Stretch:
    """Frames gathered block by block."""

    first: int
    times: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    links: list[int] = field(default_factory=list)

    def add(self, time: int, start: int, end: int, link: int) -> None:
        self.times.append(time)
        self.starts.append(start)
        self.ends.append(end)
        self.links.append(link)

    def frames(self, buf: bytes) -> Frames:
        return Frames(
            buf,
            self.first,
            _times(self.times),
            np.array(self.starts, dtype=np.int64),
            np.array(self.ends, dtype=np.int64),
            np.array(self.links, dtype=np.int64),
        )


def _times(times: list[int]) -> np.ndarray:
    try:
        return np.array(times, dtype=np.int64)
    except OverflowError:
        return np.array(times, dtype=object)


class _PcapngReader:
    """Reads pcapng blocks; what a block means depends on the section and interface blocks
    before it, kept here."""

    def __init__(self) -> None:
        self.number = 0
        self.order = "<"
        self.interfaces: list[_Interface] = []
        self.time = 0
        self.block = struct.Struct("<II")
        self.epb = struct.Struct("<IIIII")

    def frames(self, stream: BinaryIO, header: bytes) -> Iterator[Frames]:
        buf = header
        pos = 0
        chunks = _chunks(stream)
        while True:
            stretch = _Stretch(self.number + 1)
            try:
                pos = self._blocks(buf, pos, stretch)
            except Stop:
                if stretch.times:
                    yield stretch.frames(buf)  # the packets before the broken block
                raise
            if stretch.times:
                yield stretch.frames(buf)
            chunk = next(chunks, None)
            if chunk is None:
                break
            buf = buf[pos:] + chunk
            pos = 0
        if pos < len(buf):
            raise Stop(
                self.number + 1,
                f"capture truncated: the block after packet {self.number} is cut short "
                f"({len(buf) - pos} bytes); the packets before it were read. Was the capture "
                "still being written?",
                buf[pos : pos + 16],
            )

    def _blocks(self, buf: bytes, pos: int, stretch: _Stretch) -> int:
        """Read the whole blocks of ``buf`` from ``pos`` into ``stretch``; where the first
        block not whole starts."""
        limit = len(buf)
        while pos + 12 <= limit:
            if buf[pos : pos + 4] == PCAPNG_MAGIC:
                self._section(buf, pos)
            kind, length = self.block.unpack_from(buf, pos)
            if length < 12 or length % 4 or length > MAX_RECORD_BYTES:
                raise Stop(
                    self.number + 1,
                    f"corrupt pcapng block after packet {self.number} (type {kind:#x}, length "
                    f"{length}); the rest of the file was not read",
                    buf[pos : pos + 16],
                )
            end = pos + length
            if end > limit:
                break
            if kind == 6 or kind == 2:  # enhanced packet block, obsolete packet block
                self._packet(buf, pos, end, kind, stretch)
            elif kind == 3:  # simple packet block: interface 0, no time stamp
                self.number += 1
                original = self.block.unpack_from(buf, pos + 8)[0]
                caplen = min(original, length - 16)
                if not self.interfaces:
                    raise Stop(self.number, "simple packet block before any interface block")
                stretch.add(self.time, pos + 12, pos + 12 + caplen, self.interfaces[0].link)
            elif kind == 1:
                self.interfaces.append(_interface(buf, pos + 8, end - 4, self.order))
            pos = end
        return pos

    def _section(self, buf: bytes, pos: int) -> None:
        """A section header block: a byte order, and no interfaces yet."""
        found = PCAPNG_BYTE_ORDER.get(buf[pos + 8 : pos + 12])
        if found is None:
            raise Stop(self.number + 1, "corrupt pcapng section header", buf[pos : pos + 12])
        if found != self.order:
            self.order = found
            self.block = struct.Struct(f"{found}II")
            self.epb = struct.Struct(f"{found}IIIII")
        self.interfaces = []

    def _packet(self, buf: bytes, pos: int, end: int, kind: int, stretch: _Stretch) -> None:
        iface, high, low, caplen, _ = self.epb.unpack_from(buf, pos + 8)
        if kind == 2:
            iface &= 0xFFFF
        start = pos + 28
        self.number += 1
        if iface >= len(self.interfaces) or start + caplen > end - 4:
            raise Stop(
                self.number,
                f"corrupt packet block (packet {self.number}: interface {iface} of "
                f"{len(self.interfaces)}, {caplen} bytes)",
                buf[pos : pos + 32],
            )
        interface = self.interfaces[iface]
        stamp = (high << 32) | low
        self.time = stamp * interface.multiply // interface.divide + interface.offset
        stretch.add(self.time, start, start + caplen, interface.link)
