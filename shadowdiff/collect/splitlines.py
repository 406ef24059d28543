"""A log cut into lines at its newlines only, for the files DuckDB's line reader misreads.

DuckDB's ``read_csv`` ends a line at a lone carriage return whatever ``new_line`` says, and with
``new_line='\\r\\n'`` it also drops the byte after one. A line with a stray ``\\r`` then becomes
two rows, every later line is numbered one too high, and a value can change (``20\\r3`` read as
status ``3``). A file that holds a carriage return anywhere is therefore cut here instead:
``\\n`` alone ends a line, one ``\\r`` before it is part of the line end (CRLF; so is one that
ends the file, a CRLF cut short), and any other ``\\r`` stays in the line, where the parser sees
it and rejects the line if it must.

The lines go to DuckDB as Arrow record batches, a chunk of the file at a time, so memory holds
a chunk, not the file. What DuckDB's reader would reject is rejected here, with the same
reasons: a line that is not UTF-8, and a line longer than ``LINE_LIMIT``. Every other line is
a row, in file order, blank ones included; ``rejects`` get the rest, by line number.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from shadowdiff.collect.base import Input, reject, unreadable_compressed
from shadowdiff.errors import InputError

CHUNK_BYTES = 16 * 1024 * 1024
LINE_LIMIT = 2 * 1024 * 1024  # DuckDB's max_line_size: a longer line is rejected
SCHEMA = pa.schema([("line", pa.large_string())])
NOT_UTF8 = "not UTF-8: the line holds bytes that are not valid UTF-8"
EXCERPT_BYTES = 200


def too_long(size: int) -> str:
    return f"line of {size / 2**20:.0f} MB exceeds the line limit"


@dataclass
class Split:
    """The lines of one file as record batches (:meth:`reader`: read it once), and, once they
    are all read, the lines rejected on the way (``rejects``, in line order) and their
    numbers (``rejected``). A read error (compressed data cut short) ends the batches after
    every line before it, and is kept as ``error`` (raised by the caller once DuckDB is done:
    an error raised inside the batches would reach it only as DuckDB's text)."""

    source: Input
    stream: BinaryIO  # the decompressed file
    rejects: list[dict[str, object]] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    error: InputError | None = None

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(SCHEMA, self.batches())

    def batches(self) -> Iterator[pa.RecordBatch]:
        before = 0  # lines of the file before the chunk
        rest = b""
        skipping: tuple[int, bytes] | None = None  # a line over the limit: its size, its head
        while True:
            try:
                chunk = self.stream.read(CHUNK_BYTES)
            except (OSError, EOFError, ValueError, zlib.error) as e:
                self.error = unreadable_compressed(self.source, e)
                break  # the line the error cut short is not a line
            end_of_file = not chunk
            if skipping is not None:  # to the end of the line over the limit
                size, head = skipping
                end = chunk.find(b"\n")
                if end < 0 and not end_of_file:
                    skipping = (size + len(chunk), head)
                    continue
                self._reject(before + 1, too_long(size + max(end, 0)), head)
                before, skipping = before + 1, None
                if end < 0:
                    break  # the file ended inside that line
                chunk = chunk[end + 1 :]
            data = rest + chunk
            if end_of_file:
                if data:  # an unterminated last line is a line too
                    yield self._lines(data + b"\n", before)[0]
                break
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                batch, count = self._lines(data[:cut], before)
                before += count
                yield batch
            if len(rest) > LINE_LIMIT + 1:  # too long even if its last byte is a CRLF's CR
                skipping, rest = (len(rest), rest[:EXCERPT_BYTES]), b""

    def _lines(self, data: bytes, before: int) -> tuple[pa.RecordBatch, int]:
        """The lines of ``data`` (whole lines, each ending with ``\\n``) as one batch, the
        first being line ``before + 1``, and how many there were; those DuckDB's reader would
        reject go to ``rejects`` instead."""
        raw = np.frombuffer(data, np.uint8)
        ends = np.flatnonzero(raw == ord("\n"))
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        crlf = (ends > starts) & (raw[ends - 1] == ord("\r"))
        lengths = ends - crlf - starts
        keep = np.ones(raw.size, np.bool_)
        keep[ends] = False
        keep[ends[crlf] - 1] = False
        offsets = np.zeros(ends.size + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = raw[keep]
        binary = pa.Array.from_buffers(
            pa.large_binary(), ends.size, [None, pa.py_buffer(offsets), pa.py_buffer(values)]
        )
        long = np.flatnonzero(lengths > LINE_LIMIT).tolist()
        reasons = {i: too_long(int(lengths[i])) for i in long}
        if not reasons:
            try:
                return pa.record_batch([binary.cast(pa.large_string())], schema=SCHEMA), ends.size
            except pa.ArrowInvalid:
                pass  # a line that is not UTF-8: found below, line by line
        for i in range(ends.size):
            if i not in reasons:
                try:
                    values[offsets[i] : offsets[i + 1]].tobytes().decode("utf-8")
                except UnicodeDecodeError:
                    reasons[i] = NOT_UTF8
        for i in sorted(reasons):
            excerpt = values[offsets[i] : min(offsets[i + 1], offsets[i] + EXCERPT_BYTES)]
            self._reject(before + i + 1, reasons[i], excerpt.tobytes())
        good = np.ones(ends.size, np.bool_)
        good[list(reasons)] = False
        kept = binary.filter(pa.array(good)).cast(pa.large_string())
        return pa.record_batch([kept], schema=SCHEMA), ends.size

    def _reject(self, line: int, reason: str, excerpt: bytes) -> None:
        self.rejects.append(reject(self.source, line, reason, excerpt))
        self.rejected.append(line)
