"""A large log read piece by piece, so that collecting it holds one piece at a time.

The line collectors read a file whole (DuckDB parses it in one query, over every core), and
their memory grows with the file: a log of tens of gigabytes would not fit. A log larger than
``PIECE_BYTES`` is therefore cut, at line ends, into plain files of about that size in the run's
scratch directory, one after the other, each read by the collector as if it were the log and
removed once read. Each piece is named as the log (``Input.shown``), and :func:`place` moves the
line numbers of its locations and rejects by the lines before it, so a run cut into pieces
writes exactly what a run over the whole file writes.

The kernel copies each piece (``copy_file_range``: no pass through Python); its lines are
counted once, and the piece carries the count (``Input.lines``), so the line readers' own check
need not count them again. The copy costs about a second per gigabyte here (more when the
page cache is cold), paid only by logs larger than a piece.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
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
from shadowdiff.collect.lines import compression_of, count_lines

PIECE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Piece:
    """One piece of a log: the input to read, and how many lines of the log come before it."""

    source: Input
    lines_before: int = 0


def pieces(source: Input, scratch: Path, piece_bytes: int = PIECE_BYTES) -> Iterator[Piece]:
    """``source`` itself when it is small or compressed (a compressed log the snapshot did not
    copy is read as a stream), else its pieces, each removed when the next is asked for."""
    try:
        size = source.path.stat().st_size
    except OSError:
        size = 0  # the collector's open reports it
    if size <= piece_bytes or compression_of(source) is not None:
        yield Piece(source)
        return
    scratch.mkdir(parents=True, exist_ok=True)
    lines_before = 0
    with open(source.path, "rb") as log:
        start = 0
        for number, end in enumerate(_cuts(log, size, piece_bytes)):
            path = scratch / f"piece-{number:05d}.log"
            _copy_range(log, path, start, end)
            try:
                lines = count_lines(Input(path), None)
                yield Piece(Input(path, source.side, source.name, lines), lines_before)
            finally:
                path.unlink(missing_ok=True)
            lines_before += lines or 0  # only the last piece may end without a newline
            start = end


def _cuts(log: BinaryIO, size: int, piece_bytes: int) -> Iterator[int]:
    """Where the pieces end: after the first newline at or past each ``piece_bytes``."""
    start = 0
    while start < size:
        end = min(start + piece_bytes, size)
        if end < size:
            log.seek(end - 1)
            end += len(log.readline()) - 1  # to the end of the line the cut fell in
        yield end
        start = end


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
