"""What every collector is: a name, a sniff score for ``--source auto``, and a reader that turns
one input into Arrow batches of exchanges plus the rejects it met on the way."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import schema
from shadowdiff.errors import InputError


@dataclass(frozen=True)
class Input:
    """One input file, and the side it was given for (``None``: to be decided by normalisation)."""

    path: Path
    side: str | None = None
    # The name shown for it, when what is read is another file (a plain copy of a compressed
    # input, the descriptor of a rotated one): locations and rejects name the original.
    shown: str | None = None
    # How many lines the file holds, when that is known before it is read (a piece of a log,
    # counted as it was cut): the line readers' check then need not count them again.
    lines: int | None = None
    # Whether it holds a carriage return, when that was seen as its lines were counted: a file
    # with one is cut into lines by ``collect.splitlines`` rather than DuckDB's line reader.
    carriage_return: bool | None = None

    @property
    def name(self) -> str:
        return self.shown if self.shown is not None else str(self.path)


@dataclass(frozen=True)
class Options:
    """Collector options from the CLI or a pipeline file."""

    log_format: str | None = None  # envoy-text: a user's format string, verbatim
    request_id_header: str = "x-request-id"
    batch_lines: int = 500_000
    max_body_bytes: int = 16 * 1024 * 1024


@dataclass
class Batch:
    """A piece of one input: exchanges (``schema.EXCHANGES`` columns, plus extra string columns
    for operators the schema does not name) and rejects (``schema.REJECTS`` rows).

    ``records`` is what the collector read in this piece; it must equal
    ``exchanges.num_rows + len(rejects)``. Blank lines are not records and are counted apart.
    """

    exchanges: pa.Table
    rejects: list[dict[str, object]] = field(default_factory=list)
    blank: int = 0
    # Set by ``read_many``: the figures of each input the batch finished, in input order.
    inputs: list[InputReport] = field(default_factory=list)
    # What else the input held, for its manifest entry (a capture's skipped packets, say).
    note: str | None = None

    @property
    def records(self) -> int:
        return self.exchanges.num_rows + len(self.rejects)


@dataclass
class InputReport:
    """What was read from one input, for the manifest (``inputs``): the one record of it, filled
    by the engine for a file read on its own and by ``read_many`` for each of many.

    ``source`` is the collector's name, or ``"-"`` for a file that held nothing to read;
    ``sha256`` is the digest of the file's bytes on disk (``None`` until someone took it).
    """

    path: str
    side: str | None
    source: str
    size: int
    records: int = 0
    rejected: int = 0
    blank: int = 0
    sha256: str | None = None
    # What happened to the input while it was read (it grew, was rotated, was cut short).
    note: str | None = None


class Collector(Protocol):
    name: str

    def sniff(self, head: bytes) -> float:
        """How sure (0..1) this collector is that a file starting with ``head`` is its format."""
        ...

    def read(self, source: Input, options: Options) -> Iterator[Batch]:
        """Yield batches for one input; raise ``InputError`` only when the whole file is
        unusable."""
        ...


@runtime_checkable
class ManyInputsCollector(Collector, Protocol):
    """A collector of many small inputs (a directory of tap files): one reader over a whole
    list of files, so the cost per file is reading and decoding it, nothing else.

    ``read_many`` never raises for one file: a file that is not its format, cannot be opened or
    holds nothing becomes a ``rejects`` row, and every input gets its ``InputReport``.
    """

    def read_many(self, sources: Sequence[Input], options: Options) -> Iterator[Batch]: ...


class Unstreamable(Exception):  # noqa: N818 - a finding, not a failure: the log is read as cuts
    """Raised by a :class:`StreamingCollector`'s ``stream`` when the log holds what only its
    exact reading handles (a line that is not a record, a null record): the batches it gave
    are taken back, and the log is read again another way."""


@runtime_checkable
class StreamingCollector(Collector, Protocol):
    """A line collector that can give a plain log's records a batch at a time as they are
    parsed, one per line, each batch's lines following the last's: what lets one worker read
    a whole log in bounded memory with no copy of it (:mod:`~shadowdiff.engine.logstream`).

    ``stream`` raises ``Unstreamable`` as soon as it meets what it cannot give that way. It
    does not count the file's lines: the caller counts them beside it and takes the batches
    back when the records and blank lines fall short of them (a line the parser skipped), or
    when the file holds a carriage return and ``streams_carriage_returns`` is false (the
    exact reading cuts such a file by :mod:`~shadowdiff.collect.splitlines`)."""

    streams_carriage_returns: bool

    def stream(self, source: Input, options: Options, batch_rows: int) -> Iterator[Batch]: ...


def reads_lines(collector: object) -> bool:
    """Whether ``collector`` reads a log a record per line (its ``reads_lines``): such a log
    may be cut in pieces, streamed, or unwrapped from the lines of another format."""
    return bool(getattr(collector, "reads_lines", False))


def capped(body: bytes, truncated: bool, limit: int) -> tuple[bytes, bool]:
    """``body`` cut at ``limit`` bytes (``Options.max_body_bytes``), and whether it is now cut
    (or was already: ``truncated``)."""
    if len(body) > limit:
        return body[:limit], True
    return body, truncated


def rows_table(rows: Sequence[dict[str, object]]) -> pa.Table:
    """An exchanges table (``schema.EXCHANGES``) from row dicts; a column a row lacks is null."""
    return pa.Table.from_arrays(
        [pa.array([row.get(f.name) for row in rows], f.type) for f in schema.EXCHANGES],
        schema=schema.EXCHANGES,
    )


def location_lines(table: pa.Table, name: str) -> pa.Array | pa.ChunkedArray:
    """The line numbers of ``table``'s locations, every one ``name:LINE``."""
    prefix = name + ":"
    return pc.cast(pc.utf8_slice_codeunits(table.column("location"), len(prefix)), pa.int64())


def with_location_lines(table: pa.Table, name: str, lines: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table`` with its locations ``name:LINE`` at ``lines`` (a copy's lines put back at its
    original's, say)."""
    fixed = pc.binary_join_element_wise(name + ":", pc.cast(lines, pa.string()), "")
    return table.set_column(table.schema.get_field_index("location"), "location", fixed)


def moved_reject_lines(
    rows: list[dict[str, object]], name: str, move: Callable[[int], int | None]
) -> list[dict[str, object]]:
    """Rejects whose ``location`` is ``name:LINE`` at the line ``move`` gives (None: left as it
    is, as a whole-file reject at line 0 is)."""
    prefix = name + ":"
    for row in rows:
        location = str(row.get("location") or "")
        if location.startswith(prefix) and location[len(prefix) :].isdigit():
            moved = move(int(location[len(prefix) :]))
            if moved is not None:
                row["location"] = f"{prefix}{moved}"
    return rows


def unreadable_compressed(source: Input, error: Exception) -> InputError:
    """The error for a compressed input whose data stops making sense (cut short, corrupt)."""
    return InputError(
        f"{source.name}: the compressed data cannot be read ({error}). "
        "Is the file complete? Decompress it by hand to check."
    )


def reject(source: Input, line: int | str, reason: str, text: str | bytes) -> dict[str, object]:
    """One ``rejects`` row for a record of ``source``."""
    location = f"{source.name}:{line}" if isinstance(line, int) else f"{source.name}{line}"
    return {
        "source": source.name,
        "side": source.side,
        "location": location,
        "reason": reason,
        "excerpt": schema.excerpt(text),
    }


def file_reason(error: Exception, source: Input) -> str:
    """A whole-file error's message as a ``rejects`` reason: without the file name, which the
    row's location already gives."""
    message = str(error)
    prefix = f"{source.name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
