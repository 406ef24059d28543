"""A large log read piece by piece, so that collecting it holds one piece at a time.

The line collectors read a file whole (DuckDB parses it in one query, over every core), and
their memory grows with the file: a log of tens of gigabytes would not fit. A log larger than
``PIECE_BYTES`` is therefore cut, at line ends (:func:`cuts`, each with its lines counted), into
plain files of about that size in the run's scratch directory (:func:`copied`), each read by the
collector as if it were the log and removed once read: one after the other in this process
(:func:`pieces`), or each by a worker of its own (:mod:`shadowdiff.engine.logcuts`). Each
piece is named as the log (``Input.shown``), and :func:`place` moves the line numbers of its
locations and rejects by the lines before it, so a run cut into pieces writes exactly what a
run over the whole file writes.

The kernel copies each piece (``copy_file_range``: no pass through Python); its lines are
counted once, and the piece carries the count (``Input.lines``), so the line readers' own check
need not count them again. The copy costs about a second per gigabyte here (more when the
page cache is cold), paid only by logs larger than a piece.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff.collect.base import (
    Input,
    location_lines,
    moved_reject_lines,
    with_location_lines,
)
from shadowdiff.collect.lines import CutShort, compression_of, count_range

PIECE_BYTES = 256 * 1024 * 1024
# A piece also ends at this many lines: a piece's memory follows its records, and 256 MB of
# a text log holds about a million of them (a reading worker took ~750 MB to read and prepare
# such a cut), of a JSON log ~350k. Cut at 250k lines as well, 2 x 1M text lines peak at
# 1.2 GB for the whole run (was 1.65), JSON ones at 0.8 GB (was 0.9), in the same time.
PIECE_LINES = 250_000


@dataclass(frozen=True)
class Piece:
    """One piece of a log: the input to read, and how many lines of the log come before it."""

    source: Input
    lines_before: int = 0


@dataclass(frozen=True)
class Cut:
    """Where a piece lies in its log: bytes ``start`` to ``end``, after ``lines_before`` lines;
    ``lines``: how many it holds (an unterminated last line counted)."""

    number: int
    start: int
    end: int
    lines_before: int
    lines: int
    carriage_return: bool = False  # whether it holds a "\r" (see lines.Counted)


def pieces(source: Input, scratch: Path, piece_bytes: int = PIECE_BYTES) -> Iterator[Piece]:
    """``source`` itself when it is empty or compressed (a compressed log the snapshot did not
    copy is read as a stream) or one piece long (its lines counted), else its pieces, each
    removed when the next is asked for."""
    size = file_size(source)
    if size == 0 or compression_of(source) is not None:
        yield Piece(source)
        return
    try:
        log = open(source.path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        yield Piece(source)  # the collector's open says why
        return
    with log:
        for cut in cuts(log, size, piece_bytes, name=source.name):
            if cut.start == 0 and cut.end == size:
                yield whole(source, cut)
                return
            with copied(log, source, cut, scratch) as piece:
                yield piece


def cuts(
    log: BinaryIO,
    size: int,
    piece_bytes: int = PIECE_BYTES,
    piece_lines: int | None = None,
    name: str | None = None,
) -> Iterator[Cut]:
    """The pieces of the first ``size`` bytes of ``log`` (named ``name`` in an error: the log
    cut short meanwhile), each ending after the first newline at or past ``piece_bytes`` from
    its start, or after its ``piece_lines``-th line if that comes first (``PIECE_LINES``
    unless given), with their lines counted."""
    most = PIECE_LINES if piece_lines is None else piece_lines
    start = lines_before = number = 0
    while start < size:
        end = min(start + piece_bytes, size)
        if end < size:
            log.seek(end - 1)
            end = min(size, end + len(log.readline()) - 1)  # to the end of the line it fell in
        try:
            counted = count_range(log.fileno(), start, end, most)
        except CutShort as e:
            raise e.error(name or log.name) from e
        end = counted.end if counted.end is not None else end
        yield Cut(number, start, end, lines_before, counted.lines, counted.carriage_return)
        lines_before += counted.lines  # only the last piece may end without a newline
        start, number = end, number + 1


def piece_count(size: int, piece_bytes: int = PIECE_BYTES) -> int:
    return max(1, -(-size // piece_bytes))


@contextmanager
def copied(log: BinaryIO, source: Input, cut: Cut, scratch: Path) -> Iterator[Piece]:
    """``cut`` of ``log`` as a plain file in ``scratch``, named as ``source``, removed after."""
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"piece-{cut.number:05d}-{uuid.uuid4().hex[:8]}.log"
    try:
        _copy_range(log, path, cut.start, cut.end)
        piece = Input(path, source.side, source.name, cut.lines, cut.carriage_return)
        yield Piece(piece, cut.lines_before)
    finally:
        path.unlink(missing_ok=True)


def whole(source: Input, cut: Cut) -> Piece:
    """``source`` as the one piece it is, with what ``cut`` (all of it) counted."""
    return Piece(replace(source, lines=cut.lines, carriage_return=cut.carriage_return))


def file_size(source: Input) -> int:
    """``source``'s size in bytes, 0 when it cannot be read (its reader's open says why)."""
    try:
        return source.path.stat().st_size
    except OSError:
        return 0  # the collector's open reports it


def _copy_range(log: BinaryIO, path: Path, start: int, end: int) -> None:
    """Bytes ``start`` to ``end`` of ``log`` into a new file, copied by the kernel."""
    with open(path, "wb") as out:
        while start < end:
            copied = os.copy_file_range(log.fileno(), out.fileno(), end - start, start)
            if copied == 0:
                raise OSError(f"{path}: the copy stopped at byte {start}")
            start += copied


def place(table: pa.Table, piece: Piece) -> pa.Table:
    """``table`` (read from ``piece``) with its locations at the log's line numbers."""
    if piece.lines_before == 0 or table.num_rows == 0:
        return table
    name = piece.source.name
    return with_location_lines(table, name, pc.add(location_lines(table, name), piece.lines_before))


def place_rejects(rows: list[dict[str, object]], piece: Piece) -> list[dict[str, object]]:
    """Rejects of ``piece`` at the log's line numbers (a whole-file reject, line 0, stays)."""
    if piece.lines_before == 0:
        return rows
    return moved_reject_lines(
        rows, piece.source.name, lambda line: line + piece.lines_before if line > 0 else None
    )
