"""Collecting: every input file read by its collector into one table of exchanges, with the
rejects met on the way and each input's figures for the manifest.

Two costs decide the speed on real inputs, and both are paid per group of files, not per file:

- **Choosing a collector.** ``--source auto`` sniffs a directory or glob on a sample of its
  files (``SNIFF_SAMPLE``); when the sample agrees, every file of the group is read by that
  collector, and a file that turns out not to be its format is a ``rejects`` row. Only a group
  whose sample disagrees is sniffed file by file (a file no collector knows is then a reject);
  a file named on its own keeps the clear error of ``registry.sniff``.
- **Reading many small files.** A collector that reads many inputs at once (``read_many``, the
  tap collector: Envoy's ``file_per_tap`` sink writes a file per request) gets the files in
  chunks, read in worker processes on every core when the group is large: decoding JSON and
  base64 is Python work that threads would run one at a time. Line-oriented logs are read one
  file at a time; DuckDB already spreads each over the cores.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa

from shadowdiff import schema
from shadowdiff.collect import registry, snapshot, unwrap
from shadowdiff.collect.base import (
    Batch,
    Collector,
    Input,
    InputReport,
    ManyInputsCollector,
    Options,
    file_reason,
    reject,
)
from shadowdiff.collect.lines import HEAD_BYTES, read_head
from shadowdiff.errors import InputError

SNIFF_SAMPLE = 5  # files of a group sniffed to choose its collector
# Files per task of a worker process: as few tasks as keep every worker busy, since the pool
# hands a worker its next task only when this process has taken the last one's result; at
# most MAX_CHUNK_FILES, so that progress shows and a task's table stays small.
MIN_CHUNK_FILES = 1000
MAX_CHUNK_FILES = 5000
PARALLEL_MIN_FILES = 2 * MIN_CHUNK_FILES  # fewer files are read in this process
EMPTY = "-"  # the source of an input that held nothing to read

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

    @property
    def many_files(self) -> int:
        return sum(len(item.sources) for item in self.items if isinstance(item, _Many))


@dataclass
class Collected:
    exchanges: pa.Table
    rejects: list[dict[str, object]] = field(default_factory=list)
    reports: list[InputReport] = field(default_factory=list)


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

    def __init__(self, plan: Plan, spill_in: Path | None = None) -> None:
        self.pool: Executor | None = None
        self.spill: str | None = None
        # The inputs read on their own, as they are now, at the start (collect.snapshot), and
        # where their plain copies go (in the run's working directory when there is one).
        self.pins = snapshot.pins(item.source for item in plan.items if isinstance(item, _One))
        self.scratch = Path(tempfile.mkdtemp(prefix="inputs-", dir=spill_in))
        workers = min(_cores(), -(-plan.many_files // MIN_CHUNK_FILES))
        self.chunk_files = min(MAX_CHUNK_FILES, -(-plan.many_files // max(workers, 1)))
        self.workers = 1  # until the pool runs
        if plan.many_files < PARALLEL_MIN_FILES or workers < 2:
            return
        # pyarrow imports pandas on its first conversion of Python values (half a second):
        # imported here once, every worker inherits it.
        importlib.import_module("pandas")
        if threading.active_count() == 1:
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        else:
            server = multiprocessing.get_context("forkserver")
            server.set_forkserver_preload(["pandas", "shadowdiff.engine.collection"])
            self.pool = ProcessPoolExecutor(workers, mp_context=server)
        # Start every worker now, while this process has no other thread.
        for started in [self.pool.submit(os.getpid) for _ in range(workers)]:
            started.result()
        self.workers = workers
        # In the run's working directory when there is one: a killed run's chunks go with it.
        self.spill = tempfile.mkdtemp(prefix="chunks-", dir=spill_in)

    def __enter__(self) -> Readers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.discard_spill()

    def discard_spill(self) -> None:
        """Remove the chunks' directory (their files are gone once read; the tables stay
        mapped), the inputs' plain copies, and let go of the inputs pinned at the start."""
        if self.spill is not None:
            shutil.rmtree(self.spill, ignore_errors=True)
            self.spill = None
        shutil.rmtree(self.scratch, ignore_errors=True)
        for pinned in self.pins.values():
            pinned.close()
        self.pins.clear()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class _Chunk:
    """What a worker sends back: a chunk's exchanges (or the Arrow file that holds them),
    rejects and per-input reports, the reports as columns (``InputReport`` fields in order):
    tens of thousands of small objects would cost the parent more to unpickle than the
    worker spent reading."""

    exchanges: pa.Table | None
    rejects: list[dict[str, object]]
    figures: list[list[Any]]
    spilled: str | None = None

    @classmethod
    def of(
        cls,
        exchanges: pa.Table | None,
        rejects: list[dict[str, object]],
        reports: list[InputReport],
        spilled: str | None = None,
    ) -> _Chunk:
        columns = [[getattr(r, f.name) for r in reports] for f in fields(InputReport)]
        return cls(exchanges, rejects, columns, spilled)

    def table(self) -> pa.Table:
        if self.spilled is None:
            assert self.exchanges is not None
            return self.exchanges
        # Mapped, not copied; the mapping outlives the file's name.
        table = pa.ipc.open_file(pa.memory_map(self.spilled)).read_all()
        os.unlink(self.spilled)
        return table

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


def _read_chunk(
    collector_name: str,
    paths: list[str],
    side: str | None,
    options: Options,
    spill: str | None = None,
) -> _Chunk:
    """Read the files at ``paths`` (names, not ``Input`` objects: cheaper to send). With
    ``spill`` (a directory), the exchanges go to an Arrow file there: through the result pipe,
    a worker would wait for the parent to read and unpickle every body before it could go on
    with the next chunk."""
    collector = registry.get(collector_name)
    assert isinstance(collector, ManyInputsCollector)
    sources = [Input(Path(path), side) for path in paths]
    tables: list[pa.Table] = []
    rejects: list[dict[str, object]] = []
    reports: list[InputReport] = []
    with _without_cyclic_gc():
        for batch in collector.read_many(sources, options):
            tables.append(batch.exchanges)
            rejects.extend(batch.rejects)
            reports.extend(batch.inputs)
    exchanges = pa.concat_tables(tables) if tables else schema.empty(schema.EXCHANGES)
    if spill is None:
        return _Chunk.of(exchanges, rejects, reports)
    fd, path = tempfile.mkstemp(suffix=".arrow", dir=spill)
    with os.fdopen(fd, "wb") as file, pa.ipc.new_file(file, exchanges.schema) as writer:
        writer.write_table(exchanges)
    return _Chunk.of(None, rejects, reports, spilled=path)


def collect(plan: Plan, options: Options, readers: Readers, progress: Progress) -> Collected:
    """Read every input of ``plan``, in input order."""
    result = Collected(schema.empty(schema.EXCHANGES))
    tables: list[pa.Table] = []
    total = len(plan.inputs)
    records = 0
    for table, rejects, reports in _pieces(plan, options, readers):
        if table.num_rows:
            tables.append(table)
        result.rejects.extend(rejects)
        result.reports.extend(reports)
        records += sum(r.records for r in reports)
        progress(f"read {len(result.reports)}/{total} inputs, {records} records")
    if tables:
        result.exchanges = pa.concat_tables(tables, promote_options="permissive")
    result.exchanges = schema.conform(result.exchanges)
    return result


_Piece = tuple[pa.Table, list[dict[str, object]], list[InputReport]]


def _pieces(plan: Plan, options: Options, readers: Readers) -> Iterator[_Piece]:
    """The plan's items read, in input order. Chunks for the workers are
    all submitted first, so the workers keep busy while this process reads the rest."""
    pending: list[tuple[Future[_Chunk], str | None] | _Item] = []
    for item in plan.items:
        if isinstance(item, _Many) and readers.pool is not None:
            name, side = item.collector.name, item.sources[0].side
            size = readers.chunk_files
            for start in range(0, len(item.sources), size):
                paths = [s.name for s in item.sources[start : start + size]]
                task = readers.pool.submit(_read_chunk, name, paths, side, options, readers.spill)
                pending.append((task, side))
        else:
            pending.append(item)
    for entry in pending:
        if isinstance(entry, tuple):
            future, side = entry
            yield _from_chunk(future.result(), side)
        elif isinstance(entry, _Refused):
            yield _refused(entry)
        elif isinstance(entry, _One):
            yield _read_one(entry, options, readers)
        else:
            side = entry.sources[0].side
            read = _read_chunk(entry.collector.name, [s.name for s in entry.sources], side, options)
            yield _from_chunk(read, side)


def _from_chunk(chunk: _Chunk, side: str | None) -> _Piece:
    return _sided(Batch(chunk.table()), side), chunk.rejects, chunk.reports()


def _refused(item: _Refused) -> _Piece:
    source = item.source
    row = reject(source, 0, item.reason, b"")
    report = InputReport(source.name, source.side, item.collector, _size(source), 1, 1)
    return schema.empty(schema.EXCHANGES), [row], [report]


def _size(source: Input) -> int:
    try:
        return source.path.stat().st_size
    except OSError:
        return 0


def _read_one(item: _One, options: Options, readers: Readers) -> _Piece:
    source = item.source
    pinned = readers.pins.get(source.name)
    size = pinned.size if pinned is not None else _size(source)
    report = InputReport(source.name, source.side, item.collector.name, size)
    tables: list[pa.Table] = []
    rejects: list[dict[str, object]] = []
    try:
        # As it was at the start: grown, rotated or cut short since, it reads the same.
        stable = snapshot.stable(source, pinned, readers.scratch)
        notes = [stable.note] if stable.note else []
        rejects.extend(stable.rejects)
        report.records += len(stable.rejects)
        report.rejected += len(stable.rejects)
        unwrapped = _unwrapped(item.collector, stable.source, readers.scratch)
        if unwrapped is not None:  # lines in a wrapper: read the lines inside
            notes.append(unwrapped.note)
            rejects.extend(unwrapped.rejects)
            report.records += len(unwrapped.rejects)
            report.rejected += len(unwrapped.rejects)
            report.blank += unwrapped.blank
        readable = stable.source if unwrapped is None else unwrapped.source
        for batch in item.collector.read(readable, options):
            table = _sided(batch, source.side)
            if unwrapped is not None:
                table = unwrap.restore(table, unwrapped)
                unwrap.restore_rejects(batch.rejects, unwrapped)
            tables.append(table)
            rejects.extend(batch.rejects)
            report.records += batch.records
            report.rejected += len(batch.rejects)
            report.blank += batch.blank
            if batch.note:
                notes.append(batch.note)
        report.note = "; ".join(notes) or None
    except InputError as e:
        if item.strict:
            raise
        # One bad file of a directory: a reject row, and the rest of the run goes on.
        rejects.append(reject(source, 0, file_reason(e, source), b""))
        report.records += 1
        report.rejected += 1
    if not tables:
        return schema.empty(schema.EXCHANGES), rejects, [report]
    return pa.concat_tables(tables, promote_options="permissive"), rejects, [report]


def _unwrapped(collector: Collector, source: Input, scratch: Path) -> unwrap.Unwrapped | None:
    """``source`` unwrapped for a line reader, when its lines come in a wrapper."""
    if not getattr(collector, "reads_lines", False):
        return None
    kind = unwrap.detect(read_head(source))
    if kind is None:
        return None
    return unwrap.unwrap(source, kind, snapshot.scratch_file(scratch, source))


def _sided(batch: Batch, side: str | None) -> pa.Table:
    table = schema.conform(batch.exchanges)
    if side is not None:
        sides = pa.repeat(pa.scalar(side, pa.string()), table.num_rows)
        table = table.set_column(table.schema.get_field_index("side"), "side", sides)
    return table
