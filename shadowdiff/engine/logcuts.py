"""A plain log read as cuts, each by a worker of its own: the cores read one log, or several,
at once, and each cut is prepared (normalized, spilled into the buckets) where it was read.

A log read in this process goes one piece at a time, and the preparing of each piece waits for
the reading and the reading for the preparing; DuckDB's reading spreads over the cores but the
preparing does not. Read as cuts by the reading workers (or a Dask cluster's), every core reads
and prepares a cut of its own, and nothing of a cut crosses to this process but its figures.

Only a log that is as the run found it at its start is cut (uncompressed, not in a wrapper, the
same file at the same size: :func:`splittable`); any other is read on its own as before
(:mod:`~shadowdiff.collect.snapshot` pins it). This process plans the cuts (at line ends, their
lines counted, :func:`~shadowdiff.collect.pieces.cuts`), so every cut knows the log's line
numbers before it, and each cut's batches are named by the cut and their place in it: what the
buckets get, and so a run's tables, are the same as when the log is read whole.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from shadowdiff import db, schema
from shadowdiff.collect import pieces, registry, snapshot, unwrap
from shadowdiff.collect.base import (
    Batch,
    Collector,
    Input,
    InputReport,
    Options,
    file_reason,
    reads_lines,
    reject,
)
from shadowdiff.collect.lines import compression_of, read_head
from shadowdiff.engine.tasks import Prepare, Prepared
from shadowdiff.errors import InputError

Rows = list[dict[str, object]]
CutResult = tuple[Rows, InputReport, Prepared]


@dataclass(frozen=True)
class Expected:
    """What a cut's worker must find: the log at least ``size`` bytes long and, where the
    worker shares this machine's files (``device`` and ``inode`` known), the same file."""

    size: int
    device: int | None = None
    inode: int | None = None


def splittable(
    collector: Collector, source: Input, pinned: snapshot.Pin | None, pinning: bool
) -> Expected | None:
    """What to expect of ``source`` when it is read as cuts, or ``None`` to read it on its own:
    not a line log, compressed, in a wrapper, or changed since it was pinned (``pinning``: this
    run pins its inputs; a Dask cluster's reading does not, see docs/scaling.md)."""
    if not reads_lines(collector):
        return None
    try:
        if unwrap.detect(read_head(source)) is not None:
            return None
    except (OSError, InputError):
        return None  # read on its own, where the error is reported
    return expected(source, pinned, pinning)


def expected(source: Input, pinned: snapshot.Pin | None, pinning: bool) -> Expected | None:
    """What to expect of a plain file that workers read at once (as cuts or shares), or
    ``None`` when it must be read on its own: compressed, or changed since it was pinned."""
    try:
        st = os.stat(source.path)
        if compression_of(source) is not None:
            return None
    except (OSError, InputError):
        return None  # read on its own, where the error is reported
    if not pinning:
        return Expected(st.st_size)
    if pinned is None or (pinned.size, pinned.device, pinned.inode) != (
        st.st_size,
        st.st_dev,
        st.st_ino,
    ):
        return None
    return Expected(st.st_size, st.st_dev, st.st_ino)


def plan_cuts(source: Input, expected: Expected) -> Iterator[pieces.Cut]:
    """The cuts of ``source``, each planned as the last one's lines are counted."""
    with open(source.path, "rb") as log:
        yield from pieces.cuts(log, expected.size, pieces.PIECE_BYTES, name=source.name)


@dataclass(frozen=True)
class CutTask:
    """One cut's work: which log (read by ``collector``, named as ``source``), where, and the
    run's order of it (``number``: the input's place among the run's)."""

    source: Input
    collector: str
    cut: pieces.Cut
    expected: Expected
    number: int
    scratch: str
    threads: int | None = None  # DuckDB's threads for the cut, if not the worker's own


def read_cut(task: CutTask, options: Options, prepare: Prepare) -> CutResult:
    """Read and prepare one cut; its figures as a report of the log (``size`` 0: the log's
    report, merged from its cuts', has the size)."""
    collector = registry.get(task.collector)
    source, cut = task.source, task.cut
    report = InputReport(source.name, source.side, collector.name, 0)
    rows: Rows = []
    prepared = Prepared()
    before = db.threads
    if task.threads is not None:
        db.threads = task.threads
    try:
        with opened(task.source, task.expected) as log:
            with _piece(log, task) as piece:
                read_batches(
                    collector.read(piece.source, options),
                    piece,
                    prepare,
                    lambda batch: f"{task.number:07d}-{cut.number:06d}-{batch:06d}",
                    report,
                    rows,
                    prepared,
                )
    finally:
        db.threads = before
    return rows, report, prepared


@contextlib.contextmanager
def opened(source: Input, expected: Expected) -> Iterator[int]:
    """The file's descriptor, once it is known to be the file the run planned."""
    try:
        fd = os.open(source.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise InputError(
            f"{source.name}: cannot open ({e.strerror}) where the run reads it. Check the "
            "path and permissions (on a cluster: that every worker mounts it)."
        ) from e
    try:
        st = os.fstat(fd)
        replaced = expected.inode is not None and (st.st_dev, st.st_ino) != (
            expected.device,
            expected.inode,
        )
        if replaced or st.st_size < expected.size:
            raise InputError(
                f"{source.name}: replaced or cut short while the run read it (was "
                f"{expected.size:,} bytes, now {st.st_size:,}). Run again once the file is no "
                "longer rotated or truncated, or on a copy of it."
            )
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _piece(fd: int, task: CutTask) -> Iterator[pieces.Piece]:
    """The cut as a file the collector reads: the log itself when the cut is all of it and
    nothing was added since, else a copy of the cut's bytes."""
    source, cut = task.source, task.cut
    if cut.start == 0 and cut.end == os.fstat(fd).st_size:
        yield pieces.whole(source, cut)
        return
    with open(fd, "rb", closefd=False) as log:
        with pieces.copied(log, source, cut, Path(task.scratch)) as piece:
            yield piece


def read_batches(
    read: Iterable[Batch],
    piece: pieces.Piece,
    prepare: Prepare,
    name: Callable[[int], str],
    report: InputReport,
    rows: Rows,
    prepared: Prepared,
    unwrapped: unwrap.Unwrapped | None = None,
) -> int:
    """Prepare each batch a collector ``read`` of ``piece`` as it comes (named by ``name(k)``
    for the k-th batch), adding its rejects to ``rows`` and its figures to ``report``; how
    many batches it had."""
    notes = [report.note] if report.note else []
    batches = 0
    for batch in read:
        table = pieces.place(sided(batch.exchanges, piece.source.side), piece)
        pieces.place_rejects(batch.rejects, piece)
        if unwrapped is not None:
            table = unwrap.restore(table, unwrapped)
            unwrap.restore_rejects(batch.rejects, unwrapped)
        prepared.add(prepare(table, name(batches)))
        batches += 1
        rows.extend(batch.rejects)
        report.records += batch.records
        report.rejected += len(batch.rejects)
        report.blank += batch.blank
        if batch.note and batch.note not in notes:
            notes.append(batch.note)
        del batch, table  # not held while the next batch is read
    report.note = "; ".join(notes) or None
    return batches


def sided(exchanges: pa.Table, side: str | None) -> pa.Table:
    table = schema.conform(exchanges)
    if side is not None:
        sides = pa.repeat(pa.scalar(side, pa.string()), table.num_rows)
        table = table.set_column(table.schema.get_field_index("side"), "side", sides)
    return table


def merged(
    source: Input,
    collector: str,
    size: int,
    strict: bool,
    results: Sequence[CutResult | InputError],
) -> CutResult:
    """One log's rejects, report and preparation from its cuts', in order. A cut that could
    not be read ends the run for a log named on its own (``strict``), else it is one reject
    row, as a log read on its own would be."""
    report = InputReport(source.name, source.side, collector, size)
    rows: Rows = []
    prepared = Prepared()
    notes: list[str] = []
    failed = False
    for result in results:
        if isinstance(result, InputError):
            if strict:
                raise result
            if not failed:
                rows.append(reject(source, 0, file_reason(result, source), b""))
                report.records += 1
                report.rejected += 1
            failed = True
            continue
        cut_rows, cut_report, cut_prepared = result
        rows.extend(cut_rows)
        prepared.add(cut_prepared)
        report.records += cut_report.records
        report.rejected += cut_report.rejected
        report.blank += cut_report.blank
        for note in (cut_report.note or "").split("; "):
            if note and note not in notes:
                notes.append(note)
    report.note = "; ".join(notes) or None
    return rows, report, prepared
