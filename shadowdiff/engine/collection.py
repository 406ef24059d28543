"""Collecting: every input file read by its collector, piece by piece, each piece handed to a
``prepare`` step as soon as it is read (a run's: normalized and spilled into its buckets, see
:mod:`~shadowdiff.engine.tasks`), with the rejects met on the way and each input's figures
for the manifest. Nothing of a piece is kept once it is prepared, so collecting holds one piece
at a time, whatever the window.

Two costs decide the speed on real inputs, and both are paid per group of files, not per file:

- **Choosing a collector.** ``--source auto`` sniffs a directory or glob on a sample of its
  files (``SNIFF_SAMPLE``); when the sample agrees, every file of the group is read by that
  collector, and a file that turns out not to be its format is a ``rejects`` row. Only a group
  whose sample disagrees is sniffed file by file (a file no collector knows is then a reject);
  a file named on its own keeps the clear error of ``registry.sniff``.
- **Reading many small files.** A collector that reads many inputs at once (``read_many``, the
  tap collector: Envoy's ``file_per_tap`` sink writes a file per request) gets the files in
  chunks, read and prepared in worker processes on every core when the group is large:
  decoding JSON and base64 is Python work that threads would run one at a time, and a chunk
  prepared where it was read never sends its bodies to this process.
- **Reading large logs.** Logs of ``PARALLEL_MIN_LOG_BYTES`` or more in all are read by the
  same workers, each piece prepared where it was read: with a log for every worker, each
  worker streams whole logs of its own (:mod:`~shadowdiff.engine.logstream`); else they are
  read as cuts (:mod:`~shadowdiff.engine.logcuts`). In this process, the preparing of a piece
  would wait for its reading and the reading for the preparing. With a Dask cluster
  (``submit``), every input is read by the cluster's workers.
- **Reading compressed inputs.** A compressed file cannot be cut: it is decompressed into a
  plain copy and read whole. When there are as many as workers or more (a window of rotated
  ``.gz`` logs, say), each is read by a worker of its own; fewer are read in this process,
  where DuckDB has every core. Each copy is removed once its input is read.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from shadowdiff import db, schema
from shadowdiff.collect import pieces, registry, snapshot, unwrap
from shadowdiff.collect.base import (
    Collector,
    Input,
    InputReport,
    ManyInputsCollector,
    Options,
    file_reason,
    reads_lines,
    reject,
)
from shadowdiff.collect.lines import HEAD_BYTES, compression_of, read_head, recorded_size
from shadowdiff.engine import buckets, captureshares, logcuts, logstream
from shadowdiff.engine.buckets import Layout
from shadowdiff.engine.tasks import Prepare, Prepared
from shadowdiff.errors import InputError

SNIFF_SAMPLE = 5  # files of a group sniffed to choose its collector
# Files per task of a worker process: as few tasks as keep every worker busy, since the pool
# hands a worker its next task only when this process has taken the last one's result; at
# most MAX_CHUNK_FILES, so that progress shows and a task's table stays small.
MIN_CHUNK_FILES = 1000
MAX_CHUNK_FILES = 5000
PARALLEL_MIN_FILES = 2 * MIN_CHUNK_FILES  # fewer files are read in this process
# Logs of fewer bytes in all are read in this process; more, as cuts in the workers.
PARALLEL_MIN_LOG_BYTES = 64 * 1024 * 1024
EMPTY = "-"  # the source of an input that held nothing to read
SIZE_SAMPLE = 64  # files of a group measured for the run's size
COMPRESSION_GUESS = 8  # how much larger than its file a compressed log is, about
COMPRESSED_SUFFIXES = (".gz", ".zst")
# The bytes of a capture, a tap, a HAR or a GoReplay file are nearly all messages, which their
# buckets hold whole with their bodies (a log's lines become a few narrow columns): a 40 MB
# capture's bucket took 200 MB to pair and diff, and a bucket of 166 MB of tap files 270 MB.
# Counted at this many times their size, such inputs get buckets no larger than a log's, and
# a run of 40k tap pairs peaks at 1.3x the memory of one of 10k (was 1.7x: one bucket of the
# 10k, while two workers each held a bucket of the 40k, 1.3 times as large).
MESSAGE_WEIGHT = 4
# A bucket is sized for BUCKET_INPUT_BYTES of JSON access-log lines (~350k records of about this
# many bytes). What a bucket holds of a log record is a few narrow columns whatever the line's
# length, so a log of shorter lines counts for as many bytes of such lines as it has records:
# 256 MB of a text log is a million records, and its bucket held three times a JSON one's.
LOG_LINE_BYTES = 768

Progress = Callable[[str], None]


@dataclass(frozen=True)
class _Refused:
    """An input no collector reads: one reject row."""

    source: Input
    reason: str
    collector: str = EMPTY


@dataclass(frozen=True)
class _One:
    """An input read on its own; ``strict``: a whole-file error ends the run (a file the user
    named alone), else it is a reject row (a file among the many of a directory)."""

    source: Input
    collector: Collector
    strict: bool


@dataclass(frozen=True)
class _Many:
    """Consecutive inputs of one group and one side, read together by a ``read_many``
    collector."""

    sources: list[Input]
    collector: ManyInputsCollector


_Item = _Refused | _One | _Many


@dataclass
class Plan:
    """Which collector reads which input, decided before any input is read."""

    inputs: list[Input]
    items: list[_Item]

    def hashed_by_collector(self) -> set[str]:
        """Inputs whose sha256 the collector takes from the bytes it reads."""
        return {s.name for item in self.items if isinstance(item, _Many) for s in item.sources}

    def size(self) -> int:
        """About how many bytes the inputs hold, for the bucket count: every file read on its
        own is measured (a compressed one by what it records of its size: ``_expanded_size``),
        a group of many files by a sample of them; inputs of messages count at
        ``MESSAGE_WEIGHT`` times their size, logs at their records' worth of JSON access-log
        lines (:func:`_log_density`)."""
        density = _log_density(self.logs())
        total = 0.0
        for item in self.items:
            if isinstance(item, _Refused):
                continue
            if isinstance(item, _Many):
                step = max(1, len(item.sources) // SIZE_SAMPLE)
                sample = item.sources[::step]
                size = sum(pieces.file_size(s) for s in sample) * len(item.sources) // len(sample)
            else:
                size = _expanded_size(item.source)
            lines = reads_lines(item.collector)
            total += size * (density if lines else MESSAGE_WEIGHT)
        return int(total)

    def holds_messages(self) -> bool:
        """Whether an input holds whole messages (taps, captures, HAR, GoReplay): their
        bodies' differences are what the noise stage tests with statistics, as a rule."""
        return any(
            not isinstance(item, _Refused) and not reads_lines(item.collector)
            for item in self.items
        )

    def logs(self) -> list[_One]:
        """The inputs a line reader reads on its own: the logs that may be cut."""
        return [
            item for item in self.items if isinstance(item, _One) and reads_lines(item.collector)
        ]

    def log_bytes(self) -> int:
        """About how many bytes the logs hold (a compressed one as ``_expanded_size`` has
        it)."""
        return sum(_expanded_size(item.source) for item in self.logs())

    def compressed(self) -> list[_One]:
        """The inputs read on their own that are compressed (``.gz``, ``.zst``), whose
        plain copies are read whole."""
        return [
            item
            for item in self.items
            if isinstance(item, _One) and item.source.path.suffix in COMPRESSED_SUFFIXES
        ]

    def shared_captures(self) -> list[_One]:
        """The captures large enough to be read in shares: plain ones (a compressed capture
        is read in this process, so it leaves the workers to the others)."""
        return [
            item
            for item in self.items
            if isinstance(item, _One)
            and getattr(item.collector, "reads_shares", False)
            and pieces.file_size(item.source) >= captureshares.MIN_SHARED_BYTES
            and _plain(item.source)
        ]

    @property
    def many_files(self) -> int:
        return sum(len(item.sources) for item in self.items if isinstance(item, _Many))


@dataclass
class Collected:
    """What collecting read: every input's figures and rejects, and what preparing the pieces
    found (:class:`~shadowdiff.engine.tasks.Prepared`). ``exchanges`` holds the collected
    exchanges themselves only where the caller kept them (no ``prepare``)."""

    exchanges: pa.Table
    rejects: list[dict[str, object]] = field(default_factory=list)
    reports: list[InputReport] = field(default_factory=list)
    prepared: Prepared = field(default_factory=Prepared)


@dataclass(frozen=True)
class Keep:
    """The pieces as read, kept in one bucket (for a caller that wants the exchanges table)."""

    layout: Layout

    def __call__(self, collected: pa.Table, piece: str) -> Prepared:
        buckets.spill(collected, self.layout, piece)
        return Prepared()

    def discard(self, piece: str) -> None:
        buckets.unspill(self.layout, piece)


class Awaited(Protocol):
    """A task's future: a process pool's or a Dask cluster's."""

    def result(self) -> Any: ...


Submit = Callable[..., Awaited]


def plan(groups: Sequence[Sequence[Input]], source_name: str | None) -> Plan:
    """The collector of every input: ``source_name`` for all of them, or sniffed per group."""
    items: list[_Item] = []
    for group in groups:
        if source_name is not None:
            collector = registry.get(source_name)
            items.extend(_by(collector, list(group), strict=len(group) == 1))
        elif len(group) == 1:
            items.append(_single(group[0]))
        else:
            items.extend(_sniffed_group(list(group)))
    return Plan([s for group in groups for s in group], _merged(items))


def _single(source: Input) -> _Item:
    if _is_empty(source):
        return _Refused(source, "empty file: nothing to read")
    return _One(source, registry.sniff(source), strict=True)


def _sniffed_group(group: list[Input]) -> list[_Item]:
    chosen = _sample_verdict(group)
    if chosen is not None:
        return _by(chosen, group, strict=False)
    items: list[_Item] = []
    for source in group:  # the sample disagrees: a mixed directory
        head = _head(source)
        if head is None or not head.strip():
            items.append(_Refused(source, "empty file: nothing to read"))
            continue
        found = registry.recognise(head)
        if found is None:
            items.append(_Refused(source, registry.unrecognised(head)))
        else:
            items.extend(_by(found, [source], strict=False))
    return items


def _sample_verdict(group: list[Input]) -> Collector | None:
    """The one collector that reads every non-empty file of a sample of ``group``, if any."""
    count = min(SNIFF_SAMPLE, len(group))
    picks = sorted({round(i * (len(group) - 1) / max(count - 1, 1)) for i in range(count)})
    verdicts: set[str] = set()
    for index in picks:
        head = _head(group[index])
        if head is None or not head.strip():
            continue
        found = registry.recognise(head)
        if found is None:
            return None
        verdicts.add(found.name)
    return registry.get(verdicts.pop()) if len(verdicts) == 1 else None


def _head(source: Input) -> bytes | None:
    try:
        return read_head(source)
    except InputError:
        return None  # read as its group's format, it becomes that reader's reject


def _by(collector: Collector, sources: list[Input], strict: bool) -> list[_Item]:
    if isinstance(collector, ManyInputsCollector):
        return [_Many(sources, collector)]
    return [
        _Refused(s, "empty file: nothing to read") if _is_empty(s) else _One(s, collector, strict)
        for s in sources
    ]


def _merged(items: list[_Item]) -> list[_Item]:
    """Neighbouring ``_Many`` items of one collector and side as one (a mixed directory's
    files, sniffed one by one)."""
    merged: list[_Item] = []
    for item in items:
        last = merged[-1] if merged else None
        if (
            isinstance(item, _Many)
            and isinstance(last, _Many)
            and last.collector is item.collector
            and last.sources[0].side == item.sources[0].side
        ):
            last.sources.extend(item.sources)  # in place: a directory holds many files
        else:
            merged.append(item)
    return merged


def _is_empty(source: Input) -> bool:
    """No bytes, or a small file (perhaps compressed) of nothing but white space."""
    try:
        size = source.path.stat().st_size
    except OSError:
        return False  # the collector's open reports it
    return size == 0 or (size <= HEAD_BYTES and not read_head(source, HEAD_BYTES).strip())


class Readers:
    """Worker processes for ``read_many`` chunks, one per core, started before any thread of
    the run: forking a process that runs other threads can copy a lock one of them holds.
    Where the caller already runs threads (a notebook's kernel), workers come from a fork
    server instead."""

    def __init__(
        self, plan: Plan, spill_in: Path | None = None, cluster_workers: int | None = None
    ) -> None:
        self.pool: Executor | None = None
        self._stopped: Executor | None = None  # the pool let go, joined on leaving
        # Where plain copies of inputs go (in the run's working directory when there is one).
        self.scratch = Path(tempfile.mkdtemp(prefix="inputs-", dir=spill_in))
        self.pins: dict[str, snapshot.Pin] = {}
        self.workers = 1  # until the pool runs
        self.share_workers = 1  # who read a capture in shares: the pool's or the cluster's
        self.forked = False
        if cluster_workers is not None:  # a cluster's workers read every input
            self.chunk_files = _chunk_files(plan.many_files, cluster_workers)
            self.share_workers = cluster_workers
            return
        # The inputs read on their own, as they are now, at the start (collect.snapshot).
        self.pins = snapshot.pins(item.source for item in plan.items if isinstance(item, _One))
        workers = min(cores(), -(-plan.many_files // MIN_CHUNK_FILES))
        self.chunk_files = _chunk_files(plan.many_files, workers)
        logs = plan.log_bytes() >= PARALLEL_MIN_LOG_BYTES or bool(plan.shared_captures())
        if logs:
            workers = cores()
        if (plan.many_files < PARALLEL_MIN_FILES and not logs) or workers < 2:
            return
        # pyarrow imports pandas on its first conversion of Python values (half a second):
        # imported here once, every worker inherits it.
        importlib.import_module("pandas")
        if threading.active_count() == 1:
            fork = multiprocessing.get_context("fork")
            self.pool = ProcessPoolExecutor(workers, fork, initializer=_worker_threads)
            self.forked = True  # after the pins: each worker holds their descriptors too
        else:
            server = multiprocessing.get_context("forkserver")
            server.set_forkserver_preload(["pandas", "shadowdiff.engine.collection"])
            self.pool = ProcessPoolExecutor(workers, server, initializer=_worker_threads)
        # Start every worker now, while this process has no other thread.
        for started in [self.pool.submit(os.getpid) for _ in range(workers)]:
            started.result()
        self.workers = self.share_workers = workers

    def __enter__(self) -> Readers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_workers()
        if self._stopped is not None:
            self._stopped.shutdown(wait=True, cancel_futures=True)
        self.discard_spill()

    def stop_workers(self) -> None:
        """Let the workers go once a run has no more work for them: they exit beside the
        window-wide stages, and the memory they hold (each kept what its last tasks took)
        is the machine's again while those stages run."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self._stopped, self.pool = self.pool, None
            self.workers = self.share_workers = 1

    def discard_spill(self) -> None:
        """Remove the inputs' plain copies, and let go of the inputs pinned at the start."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        for pinned in self.pins.values():
            pinned.close()
        self.pins.clear()


def _worker_threads() -> None:
    """In a reading worker, DuckDB gets one thread: there is a worker per core already, and
    DuckDB's default (every core, in every worker) oversubscribes the machine."""
    db.threads = 1


def _chunk_files(files: int, workers: int) -> int:
    return min(MAX_CHUNK_FILES, max(1, -(-files // max(workers, 1))))


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class _Chunk:
    """What a worker sends back: a chunk's rejects, what preparing it found, and per-input
    reports as columns (``InputReport`` fields in order): tens of thousands of small objects
    would cost the parent more to unpickle than the worker spent reading. The exchanges stay
    in the worker's buckets."""

    rejects: list[dict[str, object]]
    figures: list[list[Any]]
    prepared: Prepared

    @classmethod
    def of(
        cls, rejects: list[dict[str, object]], reports: list[InputReport], prepared: Prepared
    ) -> _Chunk:
        columns = [[getattr(r, f.name) for r in reports] for f in fields(InputReport)]
        return cls(rejects, columns, prepared)

    def reports(self) -> list[InputReport]:
        return [InputReport(*row) for row in zip(*self.figures, strict=True)]


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Parsed traces and the rows made of them are acyclic and die young: reference counting
    frees them, while the cyclic collector rescans every row kept so far, again and again."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@dataclass(frozen=True)
class _Files:
    """Many small inputs as a task sends them: their paths as strings, cheaper to send than
    ``Input`` objects, and the names they are shown by when those differ (copies of objects
    named by URL)."""

    paths: list[str]
    shown: list[str] | None = None

    @classmethod
    def of(cls, sources: Sequence[Input]) -> _Files:
        paths = [str(s.path) for s in sources]
        shown = [s.name for s in sources]
        return cls(paths, None if shown == paths else shown)

    def inputs(self, side: str | None) -> list[Input]:
        if self.shown is None:
            return [Input(Path(path), side) for path in self.paths]
        return [Input(Path(p), side, n) for p, n in zip(self.paths, self.shown, strict=True)]


def _read_chunk(
    collector_name: str,
    files: _Files,
    side: str | None,
    options: Options,
    prepare: Prepare,
    piece: str,
) -> _Chunk:
    """Read ``files`` and prepare what they hold as the piece ``piece``, where they were read:
    in a worker, the bodies never cross to the parent."""
    collector = registry.get(collector_name)
    assert isinstance(collector, ManyInputsCollector)
    sources = files.inputs(side)
    tables: list[pa.Table] = []
    rejects: list[dict[str, object]] = []
    reports: list[InputReport] = []
    with _without_cyclic_gc():
        for batch in collector.read_many(sources, options):
            tables.append(batch.exchanges)
            rejects.extend(batch.rejects)
            reports.extend(batch.inputs)
    exchanges = pa.concat_tables(tables) if tables else schema.empty(schema.EXCHANGES)
    prepared = prepare(logcuts.sided(exchanges, side), piece)
    return _Chunk.of(rejects, reports, prepared)


def collect(
    plan: Plan,
    options: Options,
    readers: Readers,
    progress: Progress,
    prepare: Prepare | None = None,
    submit: Submit | None = None,
) -> Collected:
    """Read every input of ``plan``, in input order, and ``prepare`` every piece read (as a
    run does: normalized into its buckets); without ``prepare``, the exchanges as read are
    returned in ``Collected.exchanges``. With ``submit``, the inputs are read in its tasks
    (a Dask cluster's) rather than here and in ``readers``' workers."""
    kept = None
    if prepare is None:
        kept = Layout(tempfile.mkdtemp(prefix="kept-", dir=readers.scratch), 1)
        kept.create()
        prepare = Keep(kept)
    result = Collected(schema.empty(schema.EXCHANGES))
    total = len(plan.inputs)
    records = 0
    for rejects, reports, prepared in _pieces(plan, options, readers, prepare, submit):
        result.rejects.extend(rejects)
        result.reports.extend(reports)
        result.prepared.add(prepared)
        records += sum(r.records for r in reports)
        progress(f"read {len(result.reports)}/{total} inputs, {records} records")
    if kept is not None:
        result.exchanges = buckets.read(kept, 0)
    return result


_Piece = tuple[list[dict[str, object]], list[InputReport], Prepared]


def _pieces(
    plan: Plan,
    options: Options,
    readers: Readers,
    prepare: Prepare,
    submit: Submit | None = None,
) -> Iterator[_Piece]:
    """The plan's items read and prepared, in input order. Chunks for the workers are all
    submitted first, so the workers keep busy while this process reads the rest. Each piece
    is named by its item and its place in it, so that the names sort in input order. With
    ``submit`` (a cluster's), every input is read there, a file read on its own too."""
    pending: list[Awaited | _Spread | tuple[int, _Item]] = []
    threads = _cut_threads(plan, readers, submit)
    shared = {item.source.name for item in plan.shared_captures()}
    chunked = submit or (readers.pool.submit if readers.pool is not None else None)
    pinning = submit is None
    # The logs the workers can read, each with what it must be, worked out once: only they
    # are streamed (a compressed log among them would leave its worker's core idle).
    readable = _readable_logs(plan, readers, pinning) if chunked is not None else {}
    readable_logs = [item for item in plan.logs() if item.source.name in readable]
    streamed = _streamed(readable_logs, readers.share_workers)
    whole = _whole_in_workers(plan, readers) if submit is None else set()
    for number, item in enumerate(plan.items):
        if isinstance(item, _Many) and chunked is not None:
            name, side = item.collector.name, item.sources[0].side
            size = readers.chunk_files
            for chunk, start in enumerate(range(0, len(item.sources), size)):
                files = _Files.of(item.sources[start : start + size])
                piece = _piece_name(number, chunk)
                pending.append(chunked(_read_chunk, name, files, side, options, prepare, piece))
        elif (
            isinstance(item, _One)
            and chunked is not None
            and (
                spread := _log(item, number, readers, readable, streamed, threads)
                or _shared(item, number, readers, pinning, shared)
            )
        ):
            pending.append(spread.submitted(chunked, options, prepare))
        elif isinstance(item, _One) and item.source.name in whole and chunked is not None:
            pinned = readers.pins.get(item.source.name)  # its descriptor: the worker's too
            scratch = readers.scratch / f"{number:07d}"
            pending.append(chunked(read_one, item, options, prepare, number, scratch, pinned))
        elif isinstance(item, _One) and submit is not None:
            scratch = readers.scratch / f"{number:07d}"
            pending.append(submit(read_one, item, options, prepare, number, scratch))
        else:
            pending.append((number, item))
    for entry in pending:
        if isinstance(entry, _Spread):
            yield entry.merged()
            continue
        if not isinstance(entry, tuple):
            done = entry.result()
            yield _from_chunk(done) if isinstance(done, _Chunk) else done
            continue
        number, item = entry
        if isinstance(item, _Refused):
            yield _refused(item)
        elif isinstance(item, _One):
            pinned = readers.pins.get(item.source.name)
            scratch = readers.scratch / f"{number:07d}"
            yield read_one(item, options, prepare, number, scratch, pinned)
        else:
            side = item.sources[0].side
            files = _Files.of(item.sources)
            piece = _piece_name(number, 0)
            yield _from_chunk(
                _read_chunk(item.collector.name, files, side, options, prepare, piece)
            )


@dataclass
class _Spread:
    """One input read by several tasks of the workers: a log as cuts
    (:mod:`~shadowdiff.engine.logcuts`), a capture in shares
    (:mod:`~shadowdiff.engine.captureshares`). ``merge`` makes the input's rejects, report
    and preparation of the tasks' results (each an ``InputError`` where the task raised one)."""

    tasks: Iterable[Any]
    read: Callable[..., Any]
    merge: Callable[[list[Any]], logcuts.CutResult]
    futures: list[Awaited] = field(default_factory=list)

    def submitted(self, submit: Submit, options: Options, prepare: Prepare) -> _Spread:
        """Every task submitted, each as soon as it is planned (a log's cuts are planned as
        the last one's lines are counted)."""
        for task in self.tasks:
            self.futures.append(submit(self.read, task, options, prepare))
        return self

    def merged(self) -> _Piece:
        rows, report, prepared = self.merge(_outcomes(self.futures))
        return rows, [report], prepared


def _outcomes(futures: list[Awaited]) -> list[Any]:
    """Each task's result, or the ``InputError`` it raised (the merging decides what it
    costs: the run, or a reject row)."""
    outcomes: list[Any] = []
    for future in futures:
        try:
            outcomes.append(future.result())
        except InputError as e:
            outcomes.append(e)
    return outcomes


def _expanded_size(source: Input) -> int:
    """About how many bytes ``source`` holds once decompressed: for a compressed file, what
    it records of its size (``lines.recorded_size``; access logs compress 10 to 20 times, so
    a guess alone made buckets twice the size they should be), and at least
    ``COMPRESSION_GUESS`` times its size (a gzip file of several members records its last
    one's only)."""
    size = pieces.file_size(source)
    if source.path.suffix not in COMPRESSED_SUFFIXES:
        return size
    return max(size * COMPRESSION_GUESS, recorded_size(source) or 0)


def _log_density(logs: list[_One]) -> float:
    """How many times their bytes the logs count for in the bucket count: ``LOG_LINE_BYTES``
    over the mean length of their lines, in the heads of a sample of them (1 for lines as
    long or longer)."""
    read = newlines = 0
    for item in logs[:: max(1, len(logs) // SIZE_SAMPLE)]:
        try:
            head = read_head(item.source)
        except InputError:
            continue  # read on its own, where the error is told
        whole = head.rfind(b"\n") + 1  # the head's whole lines
        read, newlines = read + whole, newlines + head.count(b"\n", 0, whole)
    if not newlines:
        return 1.0
    return max(1.0, LOG_LINE_BYTES * newlines / read)


def _plain(source: Input) -> bool:
    """Whether ``source`` is stored uncompressed (False also when it cannot be opened: it is
    then read on its own, where its error is told)."""
    try:
        return compression_of(source) is None
    except InputError:
        return False


def _shared(
    item: _One, number: int, readers: Readers, pinning: bool, shared: set[str]
) -> _Spread | None:
    """The capture ``item`` in shares for the workers (one share: read whole by one), or
    ``None`` to read it here; ``shared``: the names of the captures large enough to share
    (``Plan.shared_captures``)."""
    source = item.source
    if source.name not in shared:
        return None
    expected = logcuts.expected(source, readers.pins.get(source.name), pinning)
    if expected is None:  # compressed, or changed since it was pinned
        return None
    count = captureshares.share_count(readers.share_workers, len(shared))
    merge = functools.partial(captureshares.merged, source, expected.size, item.strict)
    tasks = captureshares.tasks(source, expected, number, count)
    return _Spread(tasks, captureshares.read_share, merge)


def _streamed(logs: list[_One], workers: int) -> set[str]:
    """The logs each read whole by one worker (:mod:`~shadowdiff.engine.logstream`): the
    largest, as many as give every worker the same number, when they differ in size by less
    than a piece (else the cuts of one would outlast the others'); the rest are cut."""
    sizes = {item.source.name: pieces.file_size(item.source) for item in logs}
    streaming = sorted(
        (item.source.name for item in logs if logstream.streams(item.collector)),
        key=sizes.__getitem__,
        reverse=True,
    )
    chosen = streaming[: workers * (len(streaming) // workers)] if workers > 1 else []
    if not chosen or sizes[chosen[0]] - sizes[chosen[-1]] > pieces.PIECE_BYTES:
        return set()
    return set(chosen)


def _readable_logs(plan: Plan, readers: Readers, pinning: bool) -> dict[str, logcuts.Expected]:
    """What each log the workers can read must be when they read it (see
    ``logcuts.splittable``), by its name; a log left out is read on its own."""
    found: dict[str, logcuts.Expected] = {}
    for item in plan.logs():
        pinned = readers.pins.get(item.source.name)
        expected = logcuts.splittable(item.collector, item.source, pinned, pinning)
        if expected is not None:
            found[item.source.name] = expected
    return found


def _log(
    item: _One,
    number: int,
    readers: Readers,
    readable: dict[str, logcuts.Expected],
    streamed: set[str],
    threads: int | None,
) -> _Spread | None:
    """The log ``item`` for the workers, streamed whole by one of them or as cuts (``threads``:
    DuckDB's for each cut), or ``None`` to read it on its own."""
    source, collector = item.source, item.collector.name
    expected = readable.get(source.name)
    if expected is None:
        return None
    scratch = str(readers.scratch / f"{number:07d}")
    merge = functools.partial(logcuts.merged, source, collector, expected.size, item.strict)
    if source.name in streamed:
        rows = logstream.STREAM_ROWS
        task = logstream.StreamTask(source, collector, expected, number, scratch, rows)
        return _Spread([task], logstream.read_stream, merge)
    tasks = (
        logcuts.CutTask(source, collector, cut, expected, number, scratch, threads)
        for cut in logcuts.plan_cuts(source, expected)
    )
    return _Spread(tasks, logcuts.read_cut, merge)


def _cut_threads(plan: Plan, readers: Readers, submit: Submit | None) -> int | None:
    """DuckDB's threads for each cut: the worker's one, unless there are fewer tasks than
    workers (one log of a few pieces), when the cores are shared among them."""
    if submit is not None or readers.pool is None:
        return None
    tasks = sum(pieces.piece_count(pieces.file_size(item.source)) for item in plan.logs())
    many = [item for item in plan.items if isinstance(item, _Many)]
    tasks += sum(-(-len(item.sources) // readers.chunk_files) for item in many)
    return max(1, readers.workers // max(tasks, 1)) if tasks < readers.workers else None


def _piece_name(item: int, piece: int) -> str:
    return f"{item:07d}-{piece:06d}"


def _nth_piece_name(item: int, first: int, n: int) -> str:
    return _piece_name(item, first + n)


def _from_chunk(chunk: _Chunk) -> _Piece:
    return chunk.rejects, chunk.reports(), chunk.prepared


def _refused(item: _Refused) -> _Piece:
    source = item.source
    row = reject(source, 0, item.reason, b"")
    report = InputReport(source.name, source.side, item.collector, pieces.file_size(source), 1, 1)
    return [row], [report], Prepared()


def _whole_in_workers(plan: Plan, readers: Readers) -> set[str]:
    """The compressed inputs each read whole by a worker: all of them, when there are at
    least as many as workers; else none (read here, DuckDB reads a copy on every core). Only
    workers forked after the pins (``Readers.forked``) hold the descriptor of each input as
    it was at the start, which a file rotated away since is read from; a fork server's
    workers do not (a caller that runs threads, a notebook's kernel), and this process
    reads the inputs then."""
    if readers.pool is None or not readers.forked:
        return set()
    compressed = plan.compressed()
    if len(compressed) < readers.share_workers:
        return set()
    return {item.source.name for item in compressed}


def read_one(
    item: _One,
    options: Options,
    prepare: Prepare,
    number: int,
    scratch: Path,
    pinned: snapshot.Pin | None = None,
) -> _Piece:
    """Read one input, preparing each batch as it comes: a batch's exchanges are in the
    buckets before the next is read. ``pinned``: the input as the run found it at its start
    (a log that grew or was rotated since reads the same); ``scratch``: the input's own
    directory for its plain copies (a compressed or wrapped log), removed once it is read, so
    that a window of large ``.gz`` logs never holds every copy on disk at once."""
    source = item.source
    size = pinned.size if pinned is not None else pieces.file_size(source)
    report = InputReport(source.name, source.side, item.collector.name, size)
    rejects: list[dict[str, object]] = []
    prepared = Prepared()
    try:
        # As it was at the start: grown, rotated or cut short since, it reads the same.
        stable = snapshot.stable(source, pinned, scratch)
        notes = [stable.note] if stable.note else []
        rejects.extend(stable.rejects)
        report.records += len(stable.rejects)
        report.rejected += len(stable.rejects)
        unwrapped = _unwrapped(item.collector, stable.source, scratch)
        if unwrapped is not None:  # lines in a wrapper: read the lines inside
            notes.append(unwrapped.note)
            rejects.extend(unwrapped.rejects)
            report.records += len(unwrapped.rejects)
            report.rejected += len(unwrapped.rejects)
            report.blank += unwrapped.blank
        readable = stable.source if unwrapped is None else unwrapped.source
        report.note = "; ".join(notes) or None
        batches = 0
        for piece in _line_pieces(item.collector, readable, scratch):
            first = batches
            batches += logcuts.read_batches(
                item.collector.read(piece.source, options),
                piece,
                prepare,
                functools.partial(_nth_piece_name, number, first),
                report,
                rejects,
                prepared,
                unwrapped,
            )
    except InputError as e:
        if item.strict:
            raise
        # One bad file of a directory: a reject row, and the rest of the run goes on.
        rejects.append(reject(source, 0, file_reason(e, source), b""))
        report.records += 1
        report.rejected += 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rejects, [report], prepared


def _line_pieces(collector: Collector, source: Input, scratch: Path) -> Iterator[pieces.Piece]:
    """A large log in pieces for a line reader (:mod:`~shadowdiff.collect.pieces`); any other
    input whole."""
    if not reads_lines(collector):
        return iter([pieces.Piece(source)])
    return pieces.pieces(source, scratch / "pieces")


def _unwrapped(collector: Collector, source: Input, scratch: Path) -> unwrap.Unwrapped | None:
    """``source`` unwrapped for a line reader, when its lines come in a wrapper."""
    if not reads_lines(collector):
        return None
    kind = unwrap.detect(read_head(source))
    if kind is None:
        return None
    return unwrap.unwrap(source, kind, snapshot.scratch_file(scratch, source))
