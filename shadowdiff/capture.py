"""``shadowdiff capture``: a live packet capture into rotating pcap files, for teams that cannot
turn on Envoy's tap filter.

scapy's ``AsyncSniffer`` runs the capture on a Linux packet socket of our own (a subclass of
scapy's ``L2ListenSocket``) that hands each frame on as bytes, never dissected: dissection runs
at under 10k packets/s, far below a loaded service. Frames are written as they come, with
nanosecond timestamps, to ``<prefix>-00000.pcap``, ``-00001`` … (a new file by size or age).

A capture must not lose packets silently. The socket's receive buffer is sized (scapy's
default of 64 KiB drops packets on a busy loopback), and the kernel's drop counter
(``PACKET_STATISTICS``) is read as the capture goes: drops show in the progress line and in
each file's sidecar ``<file>.stats.json``, which the ``pcap`` collector reads into the run's
manifest. On the loopback interface each packet is seen leaving and arriving; as libpcap does,
only the arriving copy is kept.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

from shadowdiff.errors import ShadowdiffError

SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_RCVBUFFORCE = 33  # past net.core.rmem_max; needs CAP_NET_ADMIN, else SO_RCVBUF is used
ARPHRD_LOOPBACK = 772
PACKET_OUTGOING = 4
# Link types: Linux's ARPHRD (the socket's hardware type) → pcap's LINKTYPE.
LINKTYPES = {1: 1, ARPHRD_LOOPBACK: 1, 65534: 101, 776: 101, 778: 101}
PCAP_NS_MAGIC = 0xA1B23C4D
SIDECAR_SUFFIX = ".stats.json"
DEFAULT_BUFFER = 64 * 1024 * 1024
DEFAULT_SNAPLEN = 262_144


class CaptureError(ShadowdiffError):
    """The capture cannot start or go on (privilege, interface, filter, disk)."""


@dataclass
class FileStats:
    """What one capture file holds: what its sidecar says."""

    file: str
    interface: str
    filter: str | None
    started_at: str
    finished_at: str | None = None
    packets: int = 0
    bytes: int = 0
    kernel_drops: int = 0  # packets the kernel dropped while this file was written
    buffer_bytes: int = 0
    complete: bool = False  # the capture closed this file (not killed)


@dataclass
class Totals:
    packets: int = 0
    bytes: int = 0
    kernel_drops: int = 0
    files: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"captured {self.packets:,} packets, {self.bytes / 1e6:,.1f} MB, "
            f"{len(self.files)} file(s), {self.kernel_drops:,} dropped by the kernel"
        )


class RotatingPcap:
    """Writes frames to ``<prefix>-NNNNN.pcap`` files, starting a new one past ``max_bytes``
    or ``max_seconds``; each file gets its sidecar when it is closed."""

    def __init__(
        self,
        prefix: Path,
        linktype: int,
        snaplen: int,
        interface: str,
        bpf: str | None,
        buffer_bytes: int,
        max_bytes: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.prefix = prefix
        self.linktype = linktype
        self.snaplen = snaplen
        self.interface = interface
        self.bpf = bpf
        self.buffer_bytes = buffer_bytes
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.totals = Totals()
        self._file: BinaryIO | None = None
        self._stats: FileStats | None = None
        self._opened = 0.0
        self._lock = threading.Lock()

    def write(self, data: bytes, when: float) -> None:
        with self._lock:
            if self._file is None or self._full():
                self._rotate()
            assert self._file is not None and self._stats is not None
            seconds = int(when)
            nanos = int((when - seconds) * 1e9)
            kept = data[: self.snaplen]
            self._file.write(struct.pack("<IIII", seconds, nanos, len(kept), len(data)) + kept)
            self._stats.packets += 1
            self._stats.bytes += len(data)
            self.totals.packets += 1
            self.totals.bytes += len(data)

    def dropped(self, count: int) -> None:
        """``count`` more packets the kernel dropped (while the current file is open)."""
        if not count:
            return
        with self._lock:
            self.totals.kernel_drops += count
            if self._stats is None:
                self._rotate()
            assert self._stats is not None
            self._stats.kernel_drops += count

    def close(self) -> None:
        with self._lock:
            self._finish()

    def _full(self) -> bool:
        assert self._stats is not None
        if self.max_bytes is not None and self._stats.bytes >= self.max_bytes:
            return True
        return self.max_seconds is not None and time.monotonic() - self._opened >= self.max_seconds

    def _rotate(self) -> None:
        self._finish()
        path = Path(f"{self.prefix}-{len(self.totals.files):05d}.pcap")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")  # noqa: SIM115 - closed by _finish
        header = struct.pack("<IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, self.snaplen, self.linktype)
        self._file.write(header)
        self._stats = FileStats(
            str(path), self.interface, self.bpf, _now(), buffer_bytes=self.buffer_bytes
        )
        self._write_sidecar()  # a killed capture still leaves what it saw
        self._opened = time.monotonic()
        self.totals.files.append(str(path))

    def _finish(self) -> None:
        if self._file is None or self._stats is None:
            return
        self._file.close()
        self._stats.finished_at = _now()
        self._stats.complete = True
        self._write_sidecar()
        self._file = None

    def _write_sidecar(self) -> None:
        assert self._stats is not None
        sidecar = Path(self._stats.file + SIDECAR_SUFFIX)
        temp = sidecar.with_suffix(".tmp")
        temp.write_text(json.dumps(asdict(self._stats), indent=1) + "\n")
        os.replace(temp, sidecar)


def read_sidecar(capture: Path) -> FileStats | None:
    """The stats a capture left beside ``capture``, if any (what the ``pcap`` collector puts
    in the manifest)."""
    sidecar = Path(str(capture) + SIDECAR_SUFFIX)
    try:
        data = json.loads(sidecar.read_text())
        return FileStats(**{k: data[k] for k in FileStats.__dataclass_fields__ if k in data})
    except (OSError, ValueError, TypeError):
        return None


def sidecar_note(capture: Path) -> str | None:
    """A manifest note on what the live capture of ``capture`` saw, when its sidecar says
    anything worth a note: kernel drops, or a capture that was killed before closing it."""
    stats = read_sidecar(capture)
    if stats is None:
        return None
    notes = []
    if stats.kernel_drops:
        notes.append(
            f"the live capture lost {stats.kernel_drops:,} packets (dropped by the kernel) "
            f"while writing this file of {stats.packets:,}"
        )
    if not stats.complete:
        notes.append("the capture ended without closing this file (killed?)")
    return "; ".join(notes) or None


def _now() -> str:
    return datetime.now(UTC).isoformat()


# --- the socket ---------------------------------------------------------------------------------


class Frame:
    """A captured frame as ``AsyncSniffer`` passes it on: bytes and a time, not dissected."""

    __slots__ = ("data", "time", "sniffed_on")

    def __init__(self, data: bytes, when: float) -> None:
        self.data = data
        self.time = when
        self.sniffed_on: Any = None


def open_socket(interface: str, bpf: str | None, buffer_bytes: int) -> Any:
    """A packet socket on ``interface`` with ``bpf`` attached and a ``buffer_bytes`` receive
    buffer, handing frames on as :class:`Frame`."""
    from scapy.arch.linux import L2ListenSocket
    from scapy.error import Scapy_Exception

    class RawListen(L2ListenSocket):
        loopback = False
        linktype = 1
        buffer_bytes = 0

        def recv(self, x: int = 262_144, **kwargs: Any) -> Frame | None:  # type: ignore[override]
            data, address, when = self._recv_raw(self.ins, x)
            if data is None:
                return None
            if self.loopback and address[2] == PACKET_OUTGOING:
                return None  # seen again as it arrives
            if when is None:
                when = time.time()
            return Frame(data, when)

    quiet = logging.getLogger("scapy.runtime")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # not "Unable to guess type" for loopback: we know it
    try:
        sock = RawListen(iface=interface, filter=bpf, promisc=False)
    except PermissionError as e:
        raise CaptureError(
            f"capturing on {interface} needs the CAP_NET_RAW privilege ({e.strerror}): run as "
            "root, or give the Python binary the capability "
            "(sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which python3)))."
        ) from e
    except OSError as e:
        raise CaptureError(f"cannot capture on {interface!r}: {e.strerror or e}.") from e
    except Scapy_Exception as e:
        raise CaptureError(f"cannot capture on {interface!r} with filter {bpf!r}: {e}") from e
    finally:
        quiet.setLevel(level)
    hardware = sock.ins.getsockname()[3]
    sock.loopback = hardware == ARPHRD_LOOPBACK
    sock.linktype = LINKTYPES.get(hardware, 1)
    sock.buffer_bytes = _size_buffer(sock.ins, buffer_bytes)
    return sock


def _size_buffer(raw: socket.socket, wanted: int) -> int:
    """Set the receive buffer to ``wanted`` bytes (past the system's cap when privileged);
    what the kernel granted (it reports twice what it keeps for bookkeeping)."""
    try:
        raw.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, wanted)
    except OSError:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
    return int(raw.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)) // 2


def kernel_drops(raw: socket.socket) -> int:
    """Packets the kernel dropped on ``raw`` since the last call (reading resets the count)."""
    data = raw.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    _packets, drops = struct.unpack("II", data)
    return int(drops)


# --- the capture ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    interface: str
    prefix: Path
    bpf: str | None = None
    duration: float | None = None
    rotate_bytes: int | None = None
    rotate_seconds: float | None = None
    buffer_bytes: int = DEFAULT_BUFFER
    snaplen: int = DEFAULT_SNAPLEN


def capture(
    settings: Settings,
    progress: Callable[[str], None] | None = None,
    ready: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> Totals:
    """Capture until ``settings.duration`` passes, ``stop`` is set, or SIGINT/SIGTERM arrives
    (from the main thread); every file closed and its sidecar written on the way out.
    ``ready`` is called once packets are being captured."""
    from scapy.sendrecv import AsyncSniffer

    say = progress or (lambda _line: None)
    sock = open_socket(settings.interface, settings.bpf, settings.buffer_bytes)
    writer = RotatingPcap(
        settings.prefix,
        sock.linktype,
        settings.snaplen,
        settings.interface,
        settings.bpf,
        sock.buffer_bytes,
        settings.rotate_bytes,
        settings.rotate_seconds,
    )
    done = stop or threading.Event()
    sniffer = AsyncSniffer(
        opened_socket=sock, prn=lambda f: writer.write(f.data, f.time), store=False
    )
    with _stopping_on_signals(done):
        sniffer.start()
        try:
            if ready is not None:
                ready()
            deadline = None if settings.duration is None else time.monotonic() + settings.duration
            while not done.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                done.wait(0.5 if left is None else min(0.5, left))
                writer.dropped(kernel_drops(sock.ins))
                say(writer.totals.line())
        finally:
            if sniffer.running:
                sniffer.stop(join=True)
            writer.dropped(kernel_drops(sock.ins))
            sock.close()
            writer.close()
    say(writer.totals.line())
    return writer.totals


@contextmanager
def _stopping_on_signals(done: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``done`` (only the main thread may take signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def parse_size(text: str) -> int:
    """``100MB``, ``64k``, ``1GiB`` or a plain number of bytes."""
    units = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}
    cleaned = text.strip().lower().removesuffix("b")
    number = cleaned.rstrip("kmgi")
    unit = cleaned[len(number) :]
    try:
        value = float(number) * units[unit]
    except (KeyError, ValueError):
        raise CaptureError(f"{text!r} is not a size: write e.g. 100MB, 64MiB or 5000000.") from None
    if value <= 0:
        raise CaptureError(f"{text!r}: a size must be more than zero.")
    return int(value)
