"""A large log read piece by piece, so that collecting it holds one piece at a time.

The line collectors read a file whole (DuckDB parses it in one query, over every core), and
their memory grows with the file: a 740 MB JSON log of a million lines took ~0.9 GB to read.
A log larger than ``PIECE_BYTES`` is therefore cut, at line ends, into plain files of about that
size in the run's scratch directory, one after the other, each read by the collector as if it
were the log and removed once read. Each piece is named as the log (``Input.shown``), and
:func:`place` moves the line numbers of its locations and rejects by the lines before it, so a
run cut into pieces writes exactly what a run over the whole file writes.

The copy is a single pass in large blocks that also counts the lines: about a third of a second
per gigabyte here, against the memory of the whole file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff.collect.base import Input
from shadowdiff.collect.lines import compression_of, open_input

PIECE_BYTES = 128 * 1024 * 1024
BLOCK = 4 * 1024 * 1024


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
    with open_input(source) as stream:
        for number in range(size // piece_bytes + 2):
            path = scratch / f"piece-{number:05d}.log"
            lines, written = _copy_piece(stream, path, piece_bytes)
            if written == 0:
                path.unlink(missing_ok=True)
                return
            try:
                yield Piece(Input(path, source.side, shown=source.name), lines_before)
            finally:
                path.unlink(missing_ok=True)
            lines_before += lines


def _copy_piece(stream: BinaryIO, path: Path, piece_bytes: int) -> tuple[int, int]:
    """Copy about ``piece_bytes`` of ``stream`` to ``path``, to the end of a line; return the
    lines (newlines) and bytes copied."""
    lines = written = 0
    block = b""
    with open(path, "wb") as out:
        while written < piece_bytes:
            block = stream.read(min(BLOCK, piece_bytes - written))
            if not block:
                return lines, written
            out.write(block)
            lines += block.count(b"\n")
            written += len(block)
        if not block.endswith(b"\n"):
            rest = stream.readline()  # the rest of the line the block ended in
            out.write(rest)
            lines += rest.count(b"\n")
            written += len(rest)
    return lines, written


def place(table: pa.Table, piece: Piece) -> pa.Table:
    """``table`` (read from ``piece``) with its locations at the log's line numbers."""
    if piece.lines_before == 0 or table.num_rows == 0:
        return table
    prefix = piece.source.name + ":"
    locations = table.column("location")
    numbers = pc.cast(pc.utf8_slice_codeunits(locations, len(prefix)), pa.int64())
    moved = pc.add(numbers, piece.lines_before)
    fixed = pc.binary_join_element_wise(prefix, pc.cast(moved, pa.string()), "")
    return table.set_column(table.schema.get_field_index("location"), "location", fixed)


def place_rejects(rows: list[dict[str, object]], piece: Piece) -> list[dict[str, object]]:
    """Rejects of ``piece`` at the log's line numbers (a whole-file reject, line 0, stays)."""
    if piece.lines_before == 0:
        return rows
    prefix = piece.source.name + ":"
    for row in rows:
        location = str(row.get("location") or "")
        if location.startswith(prefix) and location[len(prefix) :].isdigit():
            number = int(location[len(prefix) :])
            if number > 0:
                row["location"] = f"{prefix}{number + piece.lines_before}"
    return rows
