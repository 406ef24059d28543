"""Reading line-oriented inputs: transparent decompression (as log rotation leaves files: ``.gz``,
``.zst``), decoding, line numbers, and the rejects that belong to bytes rather than to a format.

Line collectors get ``Lines`` chunks: Arrow columns of line numbers and text, ready for DuckDB.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import db
from shadowdiff.collect import splitlines
from shadowdiff.collect.base import Input, Unstreamable, reject, unreadable_compressed
from shadowdiff.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
HEAD_BYTES = 64 * 1024
COUNT_CHUNK = 1 << 20
NEWLINE = 10
CARRIAGE_RETURN = b"\r"
# DuckDB's line reader rejects a line over its maximum size, but one longer than its buffer it
# drops without a word: every line at least this long is checked against the rows it gave.
LONG_LINE_BYTES = 2 * 1024 * 1024


def compression(path_head: bytes) -> str | None:
    if path_head.startswith(GZIP_MAGIC):
        return "gzip"
    if path_head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def open_input(source: Input) -> BinaryIO:
    """Open ``source`` for reading its (decompressed) bytes. Raises ``InputError`` when the file
    cannot be opened at all."""
    try:
        raw = open(source.path, "rb")  # noqa: SIM115 - handed to the caller
    except OSError as e:
        raise InputError(
            f"{source.name}: cannot open ({e.strerror}). Check the path and permissions."
        ) from e
    return decompressing(raw)


def decompressing(raw: BinaryIO) -> BinaryIO:
    """``raw`` (a seekable stream at its start) read through the decompressor its first bytes
    name, if any."""
    magic = raw.read(4)
    raw.seek(0)
    kind = compression(magic)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw


def read_head(source: Input, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` decompressed bytes of ``source`` (fewer if the file is shorter)."""
    import zstandard

    with open_input(source) as stream:
        try:
            return stream.read(size)
        except (OSError, EOFError, zlib.error, ValueError, zstandard.ZstdError) as e:
            raise unreadable_compressed(source, e) from e


@dataclass(frozen=True)
class Counted:
    """What one pass over a file's bytes found: its ``lines`` (an unterminated last one
    counted) and whether any byte is a carriage return (which DuckDB's line reader would take
    for a line end: such a file is cut into lines by :mod:`~shadowdiff.collect.splitlines`)."""

    lines: int
    carriage_return: bool
    end: int | None = None  # where the counted bytes end (``count_range``)


def count_lines(source: Input, kind: str | None) -> Counted | None:
    """Lines in the (decompressed) file, blank ones and an unterminated last one included, as
    read_json counts them (only "\\n" ends a line), and whether it holds a "\\r". None when
    the file cannot be read."""
    if source.lines is not None and source.carriage_return is not None:
        return Counted(source.lines, source.carriage_return)
    try:
        if kind is None:
            return _count_plain(source)
        newlines, last, carriage_return = 0, b"\n", False
        with open_input(source) as stream:
            while chunk := stream.read(COUNT_CHUNK):
                newlines += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == NEWLINE))
                carriage_return = carriage_return or CARRIAGE_RETURN in chunk
                last = chunk[-1:]
        return Counted(newlines + (last != b"\n"), carriage_return)
    except (OSError, EOFError, ValueError, InputError):
        return None  # the exact path says what is wrong with the file


def count_range(fd: int, start: int, end: int, most: int | None = None) -> Counted:
    """Lines in bytes ``start`` to ``end`` of the open file ``fd`` (an unterminated last line
    counted), and whether they hold a carriage return. With ``most``, the count stops after that
    many whole lines, and ``Counted.end`` says where they end.

    Read a chunk at a time into one buffer, not through a memory map: a file truncated while it
    is counted would kill the process with SIGBUS at the first page past its new end; read,
    it raises ``CutShort`` for the caller to name the file."""
    if end <= start:
        return Counted(0, False, end)
    buffer = bytearray(min(COUNT_CHUNK, end - start))
    view = memoryview(buffer)
    newlines, carriage_return, last = 0, False, NEWLINE
    position = start
    while position < end:
        size = os.preadv(fd, [view[: min(len(buffer), end - position)]], position)
        if size == 0:
            raise CutShort(position, end)
        # numpy counts newlines ~3x faster than bytes.count, on one core.
        ends = np.frombuffer(buffer, np.uint8, size) == NEWLINE
        found = int(np.count_nonzero(ends))
        if most is not None and newlines + found >= most:
            size = int(np.flatnonzero(ends)[most - newlines - 1]) + 1
            end, found = position + size, most - newlines
        newlines += found
        carriage_return = carriage_return or buffer.find(CARRIAGE_RETURN, 0, size) >= 0
        last = buffer[size - 1]
        position += size
    return Counted(newlines + (last != NEWLINE), carriage_return, end)


class CutShort(Exception):  # noqa: N818 - what was found, as ``Unstreamable``
    """The file ended at byte ``found`` where a count expected ``wanted``: it was truncated
    while the run read it. ``error`` is the run's message for it."""

    def __init__(self, found: int, wanted: int) -> None:
        super().__init__(f"ends at byte {found:,}, {wanted:,} expected")
        self.found, self.wanted = found, wanted

    def error(self, name: str) -> InputError:
        return InputError(
            f"{name}: cut short while the run read it (it {self}). Run again once the file is "
            "no longer rotated or truncated, or on a copy of it."
        )


def _count_plain(source: Input) -> Counted:
    with open(source.path, "rb") as f:
        try:
            return count_range(f.fileno(), 0, f.seek(0, 2))
        except CutShort as e:
            raise e.error(source.name) from e


@dataclass
class Lines:
    """The parsed lines of one input, in file order.

    ``table`` holds a ``line_no`` column (1-based line numbers in the decompressed file), the
    raw ``line`` where parsing failed (else null), and the columns the caller's SQL produced.
    Blank lines are counted in ``blank`` and left out; lines DuckDB's reader itself rejected
    (not UTF-8) are already ``rejects`` rows. ``unterminated`` is the number of the last line when
    it has no final newline (a write cut short), else ``None``.
    """

    table: pa.Table
    rejects: list[dict[str, object]] = field(default_factory=list)
    blank: int = 0
    unterminated: int | None = None


def _csv_options(kind: str | None) -> str:
    # One VARCHAR column per line: no quoting, and a delimiter no log line contains, so DuckDB's
    # parallel reader splits only on newlines (and at a carriage return, which is why a file
    # with one is cut by splitlines instead).
    return (
        "columns={'line': 'VARCHAR'}, delim='\x1f\x1e\x1d', quote='', escape='', "
        "header=false, auto_detect=false, strict_mode=false, new_line='\\n', "
        "ignore_errors=true, store_rejects=true, "
        f"compression='{kind or 'none'}'"
    )


def compression_of(source: Input) -> str | None:
    """How ``source`` is compressed on disk (``gzip``, ``zstd``), or None. Raises
    ``InputError`` when it cannot be opened."""
    try:
        with open(source.path, "rb") as f:
            return compression(f.read(4))
    except OSError as e:
        raise InputError(
            f"{source.name}: cannot open ({e.strerror}). Check the path and permissions."
        ) from e


def recorded_size(source: Input) -> int | None:
    """The decompressed size a compressed file records of itself, where it does: a gzip
    file's trailer (the length of its last member, modulo 4 GiB: the whole file's for one
    member under that), a zstd frame's header (when the writer knew the size: the first
    frame's); None for a plain file, one that cannot be read, or a size not recorded."""
    try:
        with open(source.path, "rb") as f:
            head = f.read(18)
            kind = compression(head)
            if kind == "gzip":
                f.seek(-4, os.SEEK_END)
                (size,) = struct.unpack("<I", f.read(4))
                return int(size)
    except (OSError, struct.error):
        return None
    if kind == "zstd":
        import zstandard

        try:
            size = zstandard.frame_content_size(head)
        except zstandard.ZstdError:
            return None
        return int(size) if size >= 0 else None
    return None


def _last_byte_is_newline(source: Input, kind: str | None) -> bool:
    if kind is not None:
        return True  # not cheap to tell for a compressed stream; the parse error still says why
    return ends_with_newline(source)


def ends_with_newline(source: Input) -> bool:
    """Whether the plain file ``source`` is empty or ends with a newline."""
    with open(source.path, "rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) == b"\n"


# Cheap blank test first: trim() on every line costs a copy of the file.
# (CASE, not AND: DuckDB evaluates both sides of an AND.)
BLANK = "line IS NULL OR CASE WHEN ord(line) IN (9, 13, 32) THEN trim(line) = '' ELSE false END"


def scan(source: Input, select: str) -> Lines:
    """Read ``source`` line by line with DuckDB and run ``select`` over it.

    ``select`` is a SELECT statement over the relation ``lines`` (columns ``line`` and
    ``_blank``) that keeps row order (projections only) and returns ``line``, ``_blank``, a
    boolean ``_ok`` and a text ``_reason`` for the lines it cannot parse, plus its own columns.

    DuckDB's line reader cuts the file, unless it holds a carriage return, which that reader
    takes for a line end: such a file is cut by :mod:`~shadowdiff.collect.splitlines`.

    Raises ``InputError`` when the file as a whole cannot be read.
    """
    kind = compression_of(source)
    if source.lines is not None and source.carriage_return:
        return _scan_split(source, select, kind)
    query = _query(_read_lines(source, kind), select)
    con = db.connect()
    failure: duckdb.Error | None = None
    # Counting the lines (the check that none was dropped, and for a carriage return) runs
    # beside the query.
    with ThreadPoolExecutor(max_workers=1) as pool:
        counting = pool.submit(count_lines, source, kind)
        try:
            table = con.sql(query).to_arrow_table()
            errors = con.sql(
                "SELECT line, error_type, error_message, csv_line FROM reject_errors ORDER BY line"
            ).fetchall()
        except duckdb.Error as e:
            failure = e
        finally:
            con.close()
        counted = counting.result()
    if counted is not None and counted.carriage_return:
        return _scan_split(source, select, kind)
    if failure is not None:
        raise _unreadable_lines(source, failure) from failure
    rejected = sorted({int(row[0]) for row in errors})
    rejects = [
        reject(source, int(line), _reader_reason(str(error), str(message)), str(text or ""))
        for line, error, message, text in errors
    ]
    missing = (counted.lines if counted is not None else 0) - table.num_rows - len(rejected)
    if missing > 0:
        # Lines DuckDB dropped without a reject (longer than its buffer): found by length.
        dropped = _longest_lines(source, set(rejected), missing)
        rejects += [reject(source, n, splitlines.too_long(size), head) for n, size, head in dropped]
        rejected = sorted({*rejected, *(n for n, _, _ in dropped)})
    return _numbered(source, kind, table, rejects, rejected)


def stream_scan(source: Input, select: str, batch_rows: int) -> Iterator[Lines]:
    """:func:`scan` over a plain file, ``batch_rows`` lines at a time as DuckDB reads them,
    each batch numbered after the last: right only while every line is a row, so the caller
    counts the lines beside it (``StreamingCollector``: a line DuckDB's reader rejects, not
    UTF-8, is not a row, and the count tells). Raises ``Unstreamable`` where the reader fails."""
    query = _query(_read_lines(source, None), select)
    con = db.connect()
    first = 1
    try:
        for table in db.batches(con.sql(query), batch_rows):
            numbers = np.arange(first, first + table.num_rows, dtype=np.int64)
            first += table.num_rows
            kept, blank = _without_blank(table.add_column(0, "line_no", pa.array(numbers)))
            del table
            yield Lines(kept, [], blank)
            del kept
    except duckdb.Error as e:
        raise Unstreamable(f"{source.name}: {str(e).splitlines()[0]}") from e
    finally:
        con.close()


def _scan_split(source: Input, select: str, kind: str | None) -> Lines:
    """:func:`scan` over the lines :mod:`~shadowdiff.collect.splitlines` cuts."""
    with open_input(source) as stream:
        split = splitlines.Split(source, stream)
        con = db.connect()
        try:
            con.register("split_lines", split.reader())
            relation = "SELECT nullif(line, '') AS line FROM split_lines"
            table = con.sql(_query(relation, select)).to_arrow_table()
        except duckdb.Error as e:
            raise _unreadable_lines(source, e) from e
        finally:
            con.close()
    if split.error is not None:
        raise split.error
    return _numbered(source, kind, table, split.rejects, split.rejected)


def _read_lines(source: Input, kind: str | None) -> str:
    """DuckDB's line reader over ``source`` (compressed as ``kind`` says): one ``line`` column."""
    return f"SELECT line FROM read_csv({db.literal(str(source.path))}, {_csv_options(kind)})"


def _unreadable_lines(source: Input, error: duckdb.Error) -> InputError:
    return InputError(
        f"{source.name}: cannot be read as lines ({str(error).splitlines()[0]}). "
        "Is it complete, and is it a log file?"
    )


def _query(relation: str, select: str) -> str:
    """``select`` over the lines of ``relation`` (one column, ``line``)."""
    return (
        f"WITH lines AS (SELECT line, {BLANK} AS _blank FROM ({relation})), "
        f"parsed AS ({select}) "
        # Keep the raw text only where it is evidence for a reject: copying every line is slow.
        "SELECT CASE WHEN _blank OR coalesce(_ok, false) THEN NULL ELSE line END AS line, "
        "* EXCLUDE (line) FROM parsed"
    )


def _numbered(
    source: Input,
    kind: str | None,
    table: pa.Table,
    rejects: list[dict[str, object]],
    rejected: list[int],
) -> Lines:
    """The scanned rows numbered by their lines, blank ones counted and left out."""
    # Rows come in file order; lines the reader rejected are missing. Every other line number
    # is the next one not rejected.
    everything = np.arange(1, table.num_rows + len(rejected) + 1, dtype=np.int64)
    line_no = everything[~np.isin(everything, rejected)] if rejected else everything
    table, blank_lines = _without_blank(
        table.add_column(0, "line_no", pa.array(line_no, pa.int64()))
    )
    last = int(everything[-1]) if len(everything) else 0
    unterminated = None if _last_byte_is_newline(source, kind) else last
    return Lines(table, rejects, blank_lines, unterminated)


def _without_blank(table: pa.Table) -> tuple[pa.Table, int]:
    """``table`` without its blank lines' rows (and its ``_blank`` column), and how many."""
    blank_mask = pc.fill_null(table.column("_blank"), True)
    blank_lines = int(pc.sum(blank_mask).as_py() or 0)
    if blank_lines:  # filtering copies every column: only when there is something to drop
        table = table.filter(pc.invert(blank_mask))
    return table.drop_columns(["_blank"]), blank_lines


def _longest_lines(source: Input, skip: set[int], count: int) -> list[tuple[int, int, bytes]]:
    """The ``count`` longest lines of at least ``LONG_LINE_BYTES`` not in ``skip``: (line
    number, length, first bytes), in line order. Line lengths come from the newlines' offsets,
    a chunk at a time, so a line of any size costs no more memory than a chunk."""
    found: list[tuple[int, int, bytes]] = []
    number, length, head = 1, 0, b""
    with open_input(source) as stream:
        while chunk := stream.read(COUNT_CHUNK):
            ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == NEWLINE)
            start = 0
            for end in ends.tolist():
                if not length:
                    head = chunk[start : start + 200]
                length += end - start
                if length >= LONG_LINE_BYTES and number not in skip:
                    found.append((number, length, head))
                number, length, start = number + 1, 0, end + 1
            if start < len(chunk):
                if not length:
                    head = chunk[start : start + 200]
                length += len(chunk) - start
    if length >= LONG_LINE_BYTES and number not in skip:
        found.append((number, length, head))
    longest = sorted(found, key=lambda item: -item[1])[:count]
    return sorted(longest)


def _reader_reason(error: str, message: str) -> str:
    if "ENCODING" in error.upper():
        return "not UTF-8: the line holds bytes that are not valid UTF-8"
    first = message.splitlines()[0] if message else error
    return f"unreadable line ({first})"


def is_text(head: bytes) -> bool:
    """Whether ``head`` looks like text (a log), not a binary file: no NUL byte, and at most a
    few bytes that are not UTF-8 (a log line with a stray byte is still a log)."""
    sample = head[:4096]
    if b"\x00" in sample:
        return False
    bad = sample.decode("utf-8", errors="replace").count("\ufffd")
    return bad <= max(2, len(sample) // 100)
