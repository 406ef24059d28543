"""A plain log read whole by one worker, as its collector parses it: no copy of the log, and no
count of its lines before the work starts.

Read as cuts (:mod:`~shadowdiff.engine.logcuts`), a log is copied a piece at a time into the
scratch directory (DuckDB reads whole files only), and this process counts its lines first, so
that every cut knows the line numbers before it. When the run has a log for every worker (a
primary's and a mirror's, on two cores), each worker can instead read logs of its own from
start to end: the collector's ``stream`` (:class:`~shadowdiff.collect.base.StreamingCollector`)
gives the records ``STREAM_ROWS`` lines at a time as they are parsed, each batch is prepared as
it comes, named by the log and its place in it as a cut's batches are (so the buckets, and the
run's tables, are the same), and the lines are counted beside it: the check that each line was
a record.

When the stream gives up (``Unstreamable``: a line that is not a record), or its records and
blank lines are not the file's lines (a line the parser skipped or split), or the file holds a
carriage return its collector's stream does not read as the exact reading does (asked of the
count once the first batch is in), or it changed
while it was read, what it prepared is taken back (``Prepare.discard``) and the worker reads
the log as cuts, one after the other: the same tables as any other reading, for the price of
reading the log twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from shadowdiff.collect import lines, pieces, registry
from shadowdiff.collect.base import (
    Batch,
    Input,
    InputReport,
    Options,
    StreamingCollector,
    Unstreamable,
)
from shadowdiff.engine import logcuts
from shadowdiff.engine.logcuts import CutResult, Expected, Rows
from shadowdiff.engine.tasks import Prepare, Prepared
from shadowdiff.errors import InputError

# Lines per streamed batch, what a worker holds at once: a cut's most. Fewer cost more in the
# preparing (a batch's endpoints are worked out once per distinct request: 1M JSON lines in
# batches of 100k took 0.74 s there, in batches of 250k 0.26 s).
STREAM_ROWS = pieces.PIECE_LINES


@dataclass(frozen=True)
class StreamTask:
    """One log's work: which (read by ``collector``, named as ``source``), what it must be
    (``expected``), the run's order of it (``number``), where its cuts go if it is read as
    cuts after all (``scratch``), and its lines per batch (``rows``)."""

    source: Input
    collector: str
    expected: Expected
    number: int
    scratch: str
    rows: int


def streams(collector: object) -> bool:
    return isinstance(collector, StreamingCollector)


def read_stream(task: StreamTask, options: Options, prepare: Prepare) -> CutResult:
    """Read and prepare a whole log as its collector streams it, or as cuts when the stream
    cannot give it (see the module's docstring); its figures as a report of the log (``size``
    0: the run's merge gives it)."""
    names: list[str] = []
    try:
        return _streamed(task, options, prepare, names)
    except Unstreamable:
        for name in names:
            prepare.discard(name)
        return _as_cuts(task, options, prepare)


def _streamed(task: StreamTask, options: Options, prepare: Prepare, names: list[str]) -> CutResult:
    collector = registry.get(task.collector)
    assert isinstance(collector, StreamingCollector)
    source = task.source
    report = InputReport(source.name, source.side, collector.name, 0)
    rows: Rows = []
    prepared = Prepared()

    def name(batch: int) -> str:
        names.append(f"{task.number:07d}-{0:06d}-{batch:06d}")
        return names[-1]

    with logcuts.opened(source, task.expected) as fd:
        # Read through the descriptor: the file the run pinned, even if the log is rotated.
        pinned = _through(source, fd)
        with ThreadPoolExecutor(max_workers=1) as pool:
            counting = pool.submit(lines.count_range, fd, 0, task.expected.size)
            stream = collector.stream(pinned, options, task.rows)
            batches = _checked(stream, counting, collector, source)
            piece = pieces.Piece(pinned)
            logcuts.read_batches(batches, piece, prepare, name, report, rows, prepared)
            counted = _counted(counting, source)
        if counted.lines != report.records + report.blank:
            raise Unstreamable(f"{source.name}: {counted.lines} lines, {report.records} records")
        _check_returns(counted, collector, source)
        if os.fstat(fd).st_size != task.expected.size:
            raise Unstreamable(f"{source.name}: written to while it was read")
    return rows, report, prepared


def _checked(
    batches: Iterator[Batch],
    counting: Future[lines.Counted],
    collector: StreamingCollector,
    source: Input,
) -> Iterator[Batch]:
    """``batches``, given up after the first when the count (awaited then: it runs far ahead
    of the parsing) found a carriage return the stream does not read as the exact reading
    does, rather than at the end, which would read the whole log twice."""
    first = True
    for batch in batches:  # not enumerate(): its tuple would hold each batch through the next
        yield batch
        del batch  # not held while the next is parsed
        if first:
            _check_returns(_counted(counting, source), collector, source)
            first = False


def _counted(counting: Future[lines.Counted], source: Input) -> lines.Counted:
    try:
        return counting.result()
    except lines.CutShort as e:
        raise e.error(source.name) from e


def _check_returns(counted: lines.Counted, collector: StreamingCollector, source: Input) -> None:
    if counted.carriage_return and not collector.streams_carriage_returns:
        raise Unstreamable(f"{source.name}: holds a carriage return")


def _through(source: Input, fd: int) -> Input:
    """``source`` read through the open descriptor ``fd`` where the system names one by a
    path (Linux), else by its own path."""
    path = Path(f"/proc/self/fd/{fd}")
    return replace(source, path=path, shown=source.name) if path.exists() else source


def _as_cuts(task: StreamTask, options: Options, prepare: Prepare) -> CutResult:
    """The log read as cuts, one after the other, in this worker."""
    results: list[CutResult | InputError] = []
    for cut in logcuts.plan_cuts(task.source, task.expected):
        number, scratch = task.number, task.scratch
        cut_task = logcuts.CutTask(task.source, task.collector, cut, task.expected, number, scratch)
        results.append(logcuts.read_cut(cut_task, options, prepare))
    return logcuts.merged(task.source, task.collector, 0, True, results)
