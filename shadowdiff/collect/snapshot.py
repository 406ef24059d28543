"""Inputs as they were when the run started, whatever happens to them while it reads.

A log may still be written while shadowdiff reads it, rotated away from its path, or be a
compressed file cut short by a copy that did not finish. Each input read on its own is *pinned*
when the run starts: its size and identity are noted and the file is kept open, so that:

- a file that grew is read up to the size it had at the start (the rest is the next window's);
- a file rotated away (renamed, a new file at its path) is still read, through the descriptor
  opened at the start;
- a file that shrank (truncated in place by ``copytruncate``) is refused: its lines are gone;
- a compressed file is decompressed here, up to where its data ends: a cut ``.gz`` or ``.zst``
  keeps every line before the cut, and the cut itself is a ``rejects`` row.

What changed is said in the input's ``note`` in the manifest. A file that did not change and is
not compressed is read where it is, at no cost.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shadowdiff.collect.base import Input, reject
from shadowdiff.collect.lines import compression
from shadowdiff.errors import InputError

# Descriptors kept open from the start: enough for any list of logs, well under the usual limit
# of 1024. Inputs past it are still checked (by identity and size), only not readable once
# rotated away.
MAX_OPEN = 256
COPY_CHUNK = 8 * 1024 * 1024
# Compressed bytes decoded at a time: a log's lines compress 10 to 20 times, so a few MB of
# text are held at once; 8 MB of a gzip log decoded at a time held ~130 MB, and its copies
# (the joined pieces, the pending line before them, the whole lines written) ~500 MB.
DECODE_CHUNK = 256 * 1024
FEED_PIECE = 64 * 1024


@dataclass(frozen=True)
class Pin:
    """An input at the start of the run: size, identity, and the descriptor kept open."""

    size: int
    device: int
    inode: int
    fd: int | None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def pin(path: Path, keep_open: bool) -> Pin | None:
    """``path`` pinned now; ``None`` when it cannot be opened (its reader says why)."""
    try:
        if not keep_open:
            st = os.stat(path)
            return Pin(st.st_size, st.st_dev, st.st_ino, None)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    return Pin(st.st_size, st.st_dev, st.st_ino, fd)


@dataclass
class Stable:
    """What to read for an input: ``source`` (the file itself, its descriptor's path, or a
    plain copy in the scratch directory, named as the input), the manifest's ``note``, and a
    reject for a compressed stream cut short."""

    source: Input
    note: str | None = None
    rejects: list[dict[str, object]] = field(default_factory=list)


def stable(source: Input, pinned: Pin | None, scratch: Path) -> Stable:
    """``source`` as it was at the start (see the module's text). Raises ``InputError`` for a
    file that shrank, or was replaced with no descriptor kept to read the original."""
    if pinned is None:
        return Stable(source)
    notes: list[str] = []
    readable = _readable_path(source, pinned, notes)
    now = _size_of(readable, pinned)
    if now < pinned.size:
        raise InputError(
            f"{source.name}: shrank from {pinned.size:,} to {now:,} bytes during the run "
            "(truncated in place, as logrotate's copytruncate does?): lines read at the start "
            "are gone. Run on the rotated copy instead."
        )
    if now > pinned.size:
        notes.append(
            f"grew from {pinned.size:,} to {now:,} bytes during the run: read the first "
            f"{pinned.size:,}, as at the start"
        )
    with open(readable, "rb") as raw:
        kind = compression(raw.read(4))
    if kind is not None:
        copy = scratch_file(scratch, source)
        cut = _decompress(readable, pinned.size, kind, copy)
        rejects = [] if cut is None else [_cut_reject(source, cut)]
        if cut is not None:
            notes.append(cut.note)
        return Stable(_named(copy, source), "; ".join(notes) or None, rejects)
    if now > pinned.size:
        copy = scratch_file(scratch, source)
        _copy_prefix(readable, pinned.size, copy)
        return Stable(_named(copy, source), "; ".join(notes))
    if readable != source.path:
        return Stable(_named(readable, source), "; ".join(notes))
    return Stable(source, "; ".join(notes) or None)


def _named(path: Path, source: Input) -> Input:
    """An input read from ``path`` (a copy, a descriptor) but named as ``source`` in every
    location, reject and report."""
    return Input(path, source.side, shown=source.name)


def _readable_path(source: Input, pinned: Pin, notes: list[str]) -> Path:
    """The path that reads the file pinned at the start: its own, unless it was replaced."""
    try:
        st = os.stat(source.path)
        same = (st.st_dev, st.st_ino) == (pinned.device, pinned.inode)
    except OSError:
        same = False
    if same:
        return source.path
    if pinned.fd is None:
        raise InputError(
            f"{source.name}: was replaced or removed during the run (rotated?), and the file "
            "that was there at the start cannot be read any more. Run on the rotated copy."
        )
    notes.append("replaced at its path during the run (rotated): read the file of the start")
    return Path(f"/proc/self/fd/{pinned.fd}")


def _size_of(path: Path, pinned: Pin) -> int:
    if pinned.fd is not None:
        return os.fstat(pinned.fd).st_size
    return os.stat(path).st_size


def scratch_file(scratch: Path, source: Input) -> Path:
    """A new file in ``scratch`` for a plain copy of ``source``."""
    scratch.mkdir(parents=True, exist_ok=True)
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in source.path.name)[-60:]
    number = sum(1 for _ in scratch.iterdir())
    return scratch / f"{number:05d}-{stem}.plain"


def _copy_prefix(path: Path, size: int, copy: Path) -> None:
    with open(path, "rb") as src, open(copy, "wb") as dst:
        left = size
        while left > 0:
            sent = os.sendfile(dst.fileno(), src.fileno(), None, min(left, COPY_CHUNK))
            if sent == 0:
                break
            left -= sent


@dataclass(frozen=True)
class _Cut:
    """Where a compressed stream ended early: after ``compressed`` of ``size`` bytes, with
    ``lines`` whole lines decompressed and ``tail`` the bytes of the line the cut broke."""

    compressed: int
    size: int
    lines: int
    tail: bytes
    reason: str

    @property
    def note(self) -> str:
        where = "" if self.compressed >= self.size else f" at byte {self.compressed:,}"
        return (
            f"compressed data cut short{where} ({self.reason}): the {self.lines:,} lines "
            "before the cut were read, the rest is lost"
        )


def _decompress(path: Path, size: int, kind: str, copy: Path) -> _Cut | None:
    """Decompress the first ``size`` bytes of ``path`` into ``copy``, every byte that can be
    decoded. A stream cut short: the broken last line is left out of the copy and returned in
    the ``_Cut``; a whole stream: ``None``."""
    decoder = _Decoder(kind)
    lines = 0
    taken = 0
    error: str | None = None
    with open(path, "rb") as src, open(copy, "wb") as dst:
        pending = b""
        while taken < size:
            chunk = src.read(min(DECODE_CHUNK, size - taken))
            if not chunk:
                break
            taken += len(chunk)
            try:
                data = decoder.feed(chunk)
            except _Broken as e:
                data, error = e.decoded, e.reason
            data = pending + data
            cut = data.rfind(b"\n") + 1  # whole lines now, the rest waits for the next chunk
            dst.write(data[:cut])
            lines += data.count(b"\n", 0, cut)
            pending = data[cut:]
            if error is not None:
                break
        if error is None and not decoder.finished:
            error = "the stream ends before its end marker"
        if error is None:
            dst.write(pending)  # a last line without a newline: its reader says so
            return None
    return _Cut(taken, size, lines, pending, error)


def _cut_reject(source: Input, cut: _Cut) -> dict[str, object]:
    return reject(source, cut.lines + 1, cut.note, cut.tail)


class _Broken(Exception):
    def __init__(self, decoded: bytes, reason: str) -> None:
        super().__init__(reason)
        self.decoded = decoded
        self.reason = reason


class _Decoder:
    """An incremental gzip or zstd decoder over concatenated members/frames, that hands back
    every byte it could decode before an error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._new()

    def _new(self) -> None:
        if self.kind == "gzip":
            self._obj: Any = zlib.decompressobj(wbits=31)
        else:
            import zstandard

            self._obj = zstandard.ZstdDecompressor().decompressobj()
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """The bytes ``data`` decodes to. On an error, ``_Broken`` carries what the pieces
        before it decoded to: zlib and zstd give nothing of a piece they fail on, so the data
        goes in small pieces and at most one piece's worth is lost before the error."""
        out: list[bytes] = []
        for start in range(0, len(data), FEED_PIECE):
            piece = data[start : start + FEED_PIECE]
            try:
                out.append(self._feed(piece))
            except _Broken as e:
                raise _Broken(b"".join(out) + e.decoded, e.reason) from e
        return b"".join(out)

    def _feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            if self.finished:
                if self.kind == "gzip" and not data.lstrip(b"\x00"):
                    return b"".join(out)  # zero padding after the last member
                self._new()
            try:
                out.append(self._obj.decompress(data))
            except Exception as e:  # zlib.error, zstandard.ZstdError
                raise _Broken(b"".join(out), f"corrupt data: {e}") from e
            data = self._leftover()
        return b"".join(out)

    def _leftover(self) -> bytes:
        """What follows the member or frame that just ended (the next one), else nothing."""
        self.finished = bool(self._obj.eof)
        return self._obj.unused_data if self.finished else b""


def pins(sources: Iterator[Input] | list[Input]) -> dict[str, Pin]:
    """Pins for ``sources`` (the inputs read on their own), the first ``MAX_OPEN`` kept open."""
    found: dict[str, Pin] = {}
    for number, source in enumerate(sources):
        pinned = pin(source.path, keep_open=number < MAX_OPEN)
        if pinned is not None:
            found[source.name] = pinned
    return found
