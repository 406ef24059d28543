"""The local engine: collect into buckets → pair and diff each bucket → the window-wide
stages → store, embedded (DuckDB + pyarrow, worker processes on every core).

Memory depends on a bucket, not on the window: each piece an input yields is normalized and
spilled into request-id hash buckets in the run's working area
(:mod:`~shadowdiff.engine.buckets`) as soon as it is read; each bucket is paired and diffed on
its own (:mod:`~shadowdiff.engine.tasks`); the noise verdicts, the outcomes and latency run
over every bucket's parts in DuckDB (:mod:`~shadowdiff.engine.merged`).
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from shadowdiff import __version__, schema, store, window
from shadowdiff.collect import remote
from shadowdiff.collect.base import Input, InputReport, Options
from shadowdiff.collect.inputs import expand_groups
from shadowdiff.config import Config
from shadowdiff.diff.outcome import finish_pairs
from shadowdiff.engine import buckets, merged
from shadowdiff.engine.buckets import Layout
from shadowdiff.engine.collection import Plan, Readers, collect, plan
from shadowdiff.engine.digest import Digests
from shadowdiff.engine.tasks import PARTS_DIR, BucketResult, BucketTask, Preparation, run_bucket
from shadowdiff.errors import ConfigError, ConservationError, OutputError, no_room
from shadowdiff.latency import latency
from shadowdiff.noise import judge as judge_noise
from shadowdiff.pair import SideCounts
from shadowdiff.redact import Redactor
from shadowdiff.rundir import RunDir

if TYPE_CHECKING:
    from shadowdiff.engine.dask import Cluster

UNASSIGNED = "unassigned"
# Where the objects of inputs named by URL are copied, in the working area.
FETCHED_DIR = "fetched"
# Threads writing tables beside the stages.
BACKGROUND = 3
# What the noise stage imports when it first needs it.
LATER_IMPORTS = ("scipy.stats",)


@dataclass
class RunResult:
    """What a run wrote and the figures it measured (the manifest, as a dict)."""

    out: Path
    manifest: dict[str, Any]
    config: Config
    timings: dict[str, float] = field(default_factory=dict)


Progress = Callable[[str], None]


def _groups(config: Config, fetch_into: Path, say: Progress) -> list[list[Input]]:
    """The run's inputs, a group per pattern; objects named by URL are fetched into
    ``fetch_into`` (in the working area, so a killed run's copies go with it)."""
    sides = (
        (config.primary, "primary"),
        (config.mirror, "mirror"),
        (config.secondary, "secondary"),
        (config.inputs, None),
    )
    found = [
        group
        for patterns, side in sides
        for group in expand_groups(patterns, side, fetch_into, say)
    ]
    if not found:
        raise ConfigError(
            "No input given. Pass --primary and --mirror (or --input with mixed logs), "
            "or a pipeline file with an [inputs] section."
        )
    return found


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(time.perf_counter() - start, 4)


def _source_name(config: Config) -> str | None:
    """The collector to use for every input, or ``None`` to sniff each file. A format string
    names its collector: sniffing cannot recognise a custom format."""
    if config.source != "auto":
        return config.source
    if config.log_format:
        return "envoy-json" if config.log_format.lstrip().startswith("{") else "envoy-text"
    return None


def run(config: Config, out: Path, progress: Progress | None = None) -> RunResult:
    """Run the whole job for ``config`` and write the run directory ``out``. A disk that fills
    up (or a file size limit) on the way is an ``OutputError``; the previous run stays."""
    if remote.is_url(str(out)):
        raise ConfigError(
            f"{out}: the run directory must be a local path (a mounted share for a cluster); "
            "inputs may be URLs, the output may not."
        )
    try:
        return _run(config, out, progress)
    except (OSError, duckdb.Error) as e:
        reason = no_room(e)
        if reason is None:
            raise
        raise OutputError(
            f"{out}: cannot write the run ({reason}). Free some space, or choose another --out "
            f"on a disk with room; the previous run in {out}, if any, is untouched."
        ) from e


def _run(config: Config, out: Path, progress: Progress | None) -> RunResult:
    say = progress or (lambda _message: None)
    started = datetime.now(UTC)
    options = Options(log_format=config.log_format, request_id_header=config.pairing_key)
    timings: dict[str, float] = {}
    with RunDir(out) as run_dir:  # the lock first: a second run into ``out`` stops here
        fetched = run_dir.work / FETCHED_DIR
        fetched.mkdir()
        with _timed(timings, "fetch"):
            groups = _groups(config, fetched, say)
        if not any(fetched.iterdir()):
            del timings["fetch"]  # no input named by URL
        inputs = plan(groups, _source_name(config))
        return _run_in(config, out, run_dir, inputs, options, say, started, timings)


def _run_in(
    config: Config,
    out: Path,
    run_dir: RunDir,
    inputs: Plan,
    options: Options,
    say: Progress,
    started: datetime,
    timings: dict[str, float],
) -> RunResult:
    """The run, once ``out`` is locked and its inputs are known."""
    # Background work that overlaps DuckDB's: writing each table as soon as it is ready
    # (pyarrow's writer encodes on one core; DuckDB goes on with the other), and hashing the
    # inputs that no collector hashed as it read them, on whatever the stages leave idle.
    # The reading workers start first, before any of these threads.
    hashed = inputs.hashed_by_collector()
    unhashed = [s for s in inputs.inputs if s.name not in hashed]
    with (
        _cluster(config, say) as cluster,
        Readers(inputs, run_dir.work, cluster.workers if cluster else None) as readers,
        ThreadPoolExecutor(max_workers=BACKGROUND) as background,
        Digests([s.path for s in unhashed]) as digests,
    ):
        work = run_dir.work
        # scipy.stats (a second of CPU) beside the reading when the run will most likely need
        # it and this process would wait idle meanwhile: whole messages read by workers (taps
        # leave this process gaps), or a cluster elsewhere. Else once the buckets say so: logs
        # keep every core busy, and a run whose differences are all statuses never needs it.
        remote = cluster is not None and config.scheduler is not None
        reading_elsewhere = readers.pool is not None or cluster is not None
        early = remote or (inputs.holds_messages() and reading_elsewhere)
        if early:
            _import_in_background(*LATER_IMPORTS)
        # One key for the run, so both sides' secrets are tagged alike.
        redactor = Redactor(
            config.redact_query, fields=config.redact_fields, headers=config.redact_headers
        )
        count = buckets.bucket_count(inputs.size(), config.buckets)
        by_fingerprint = config.pair_by == "fingerprint"
        narrow = buckets.narrow_for(count, by_fingerprint, config.window.given)
        layout = Layout(str(work / buckets.SPILL_DIR), count, by_fingerprint, narrow)
        layout.create()
        with _timed(timings, "collect"):
            preparation = Preparation(config, redactor, layout, str(work))
            submit = cluster.submit if cluster is not None else None
            collected = collect(inputs, options, readers, say, preparation, submit)
            readers.discard_spill()  # before the working directory becomes the run
            rejects, reports = collected.rejects, collected.reports
            rejects.extend(collected.prepared.rejects)
        records = sum(r.records for r in reports)
        say(f"read {records} records; pairing and diffing {_buckets(count)}")
        tasks = [
            BucketTask(
                bucket,
                layout,
                str(work),
                config,
                collected.prepared.captured,
                collected.prepared.secondary,
            )
            for bucket in range(count)
        ]
        with _timed(timings, "buckets"):
            results = _run_buckets(tasks, readers, cluster, say)
        if not early and any(r.tested for r in results):
            _import_in_background(*LATER_IMPORTS)  # beside the loading of the buckets' parts
        readers.stop_workers()  # the window-wide stages run here
        shutil.rmtree(layout.root, ignore_errors=True)
        counts = _summed([r.counts for r in results])
        outside = _summed_outside([r.outside for r in results])
        say(f"paired {counts['primary'].paired} requests; judging noise")

        def write(name: str, table: pa.Table) -> None:
            written.append(background.submit(store.write_table, work, name, table))

        written: list[Future[Path]] = []
        con = merged.connect(work, collected.prepared.secondary)
        try:
            with _timed(timings, "noise"):  # sets diffs.noise before the outcomes
                noise = judge_noise(con, collected.prepared.secondary, config.noise, "exchanges")
            # The pairs' outcomes go to Parquet a batch at a time as DuckDB works them out,
            # never held whole, nor copied into a table first: the figures of the window are
            # then read from the file written.
            with _timed(timings, "outcomes"):
                edges = window.edge_orphans(con, config.max_skew_ms)
                store.write_batches(work, "pairs", merged.batches(finish_pairs(con), edges))
                merged.read_pairs(con, work)
                mirroring = window.mirroring(
                    con,
                    edges,
                    config.mirror_percent,
                    outside,
                    window.mirrored_writes(con, config.safety_writes),
                )
                outcomes = merged.outcomes(con)
                write("latency", _table(latency(con)))
            with _timed(timings, "write"):  # streamed as the pairs are
                store.write_batches(work, "diffs", merged.batches(con.sql("SELECT * FROM diffs")))
        finally:
            con.close()
        shutil.rmtree(work / merged.SPILL_DIR, ignore_errors=True)
        shutil.rmtree(work / PARTS_DIR, ignore_errors=True)
        store.gather_parts(work, "exchanges")
        write("noise", noise)
        for row in rejects:  # a rejected line's excerpt may hold secrets
            if isinstance(row["excerpt"], str):
                row["excerpt"] = redactor.excerpt(row["excerpt"])
        write("rejects", pa.Table.from_pylist(rejects, schema.REJECTS))
        with _timed(timings, "hash"):  # what is left of it after the stages
            index_of = {source.name: index for index, source in enumerate(unhashed)}
            waiting = [r for r in reports if r.sha256 is None and r.path in index_of]
            found = digests.results([index_of[r.path] for r in waiting])
            for report, sha256 in zip(waiting, found, strict=True):
                report.sha256 = sha256
        shutil.rmtree(work / FETCHED_DIR, ignore_errors=True)
        with _timed(timings, "store"):  # what is left of the writing after the rest
            for table_written in written:
                table_written.result()
        manifest = _manifest(config, started, reports, counts, rejects, outcomes, timings, outside)
        manifest["mirroring"] = mirroring
        manifest["engine"] = {"name": config.engine, "buckets": count}
        if cluster is not None:
            manifest["engine"]["scheduler"] = cluster.address
        store.finish(work, manifest)
        run_dir.commit()  # the previous run stays whole until this rename
    return RunResult(out, manifest, config, timings)


@contextmanager
def _cluster(config: Config, say: Progress) -> Iterator[Cluster | None]:
    """The run's Dask cluster with ``--engine dask``, else none."""
    if config.engine != "dask":
        yield None
        return
    from shadowdiff.engine.dask import Cluster

    with Cluster(config.scheduler, say) as cluster:
        yield cluster


def _run_buckets(
    tasks: list[BucketTask], readers: Readers, cluster: Cluster | None, say: Progress
) -> list[BucketResult]:
    """Every bucket's task, in order: on the cluster, if there is one. With worker processes
    and a bucket for each, whole buckets go to the workers (a body never leaves the process
    that diffs it); else they run here one after the other, each diffing its many pairs in the
    workers."""
    results: list[BucketResult] = []
    if cluster is not None:
        for result in cluster.map_in_order(run_bucket, tasks):
            results.append(result)
            say(_bucket_line(result, len(tasks)))
        return results
    pool = readers.pool
    if pool is not None and len(tasks) >= readers.workers:
        futures = [pool.submit(run_bucket, task) for task in tasks]
        for done in futures:
            results.append(done.result())
            say(_bucket_line(results[-1], len(tasks)))
        return results
    for task in tasks:
        results.append(run_bucket(task, pool, readers.workers))
        say(_bucket_line(results[-1], len(tasks)))
    return results


def _buckets(count: int) -> str:
    return "in 1 bucket" if count == 1 else f"in {count} buckets"


def _bucket_line(result: BucketResult, total: int) -> str:
    paired = result.counts["primary"].paired
    return f"bucket {result.bucket + 1}/{total}: {result.exchanges} exchanges, {paired} pairs"


def _summed(all_counts: list[dict[str, SideCounts]]) -> dict[str, SideCounts]:
    summed: dict[str, SideCounts] = {}
    for counts in all_counts:
        for side, c in counts.items():
            before = summed.get(side, SideCounts(0, 0, 0, 0))
            summed[side] = SideCounts(
                before.records + c.records,
                before.paired + c.paired,
                before.orphaned + c.orphaned,
                before.duplicates + c.duplicates,
            )
    return summed


def _summed_outside(all_outside: list[dict[str, int]]) -> dict[str, int]:
    summed: dict[str, int] = {}
    for outside in all_outside:
        for side, n in outside.items():
            summed[side] = summed.get(side, 0) + n
    return summed


def _input_entry(report: InputReport) -> dict[str, Any]:
    """An input's manifest entry: its figures, and a note only where something happened."""
    entry = vars(report).copy()
    if entry["note"] is None:
        del entry["note"]
    return entry


def _import_in_background(*modules: str) -> None:
    """Import ``modules`` in a thread beside other work, instead of later on the critical
    path (``scipy.stats`` alone takes about a second of CPU to import)."""

    def work() -> None:
        for name in modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)

    threading.Thread(target=work, name="shadowdiff-imports", daemon=True).start()


def _table(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    return relation.to_arrow_table()


def _conservation(
    reports: list[InputReport],
    counts: dict[str, SideCounts],
    rejects: list[dict[str, object]],
    outside: dict[str, int] | None = None,
) -> dict[str, dict[str, int]]:
    """Per side: read = paired + orphaned + duplicates + rejected (+ outside_window, for a
    bounded run). Raises when it does not hold."""
    outside = outside or {}
    rejected: dict[str, int] = {}
    for row in rejects:
        key = str(row["side"]) if row["side"] else UNASSIGNED
        rejected[key] = rejected.get(key, 0) + 1
    figures: dict[str, dict[str, int]] = {}
    for side in (*schema.SIDES, UNASSIGNED):
        c = counts.get(side, SideCounts(0, 0, 0, 0))
        figures[side] = {
            "read": c.records + rejected.get(side, 0) + outside.get(side, 0),
            "paired": c.paired,
            "orphaned": c.orphaned,
            "duplicates": c.duplicates,
            "rejected": rejected.get(side, 0),
        }
        if outside:
            figures[side]["outside_window"] = outside.get(side, 0)
    read_total = sum(r.records for r in reports)
    accounted = sum(f["read"] for f in figures.values())
    if read_total != accounted:
        raise ConservationError(
            f"records read ({read_total}) != records accounted for ({accounted}): "
            f"{figures}. This is a bug in shadowdiff; please report it with the inputs."
        )
    for side, f in figures.items():
        placed = f["paired"] + f["orphaned"] + f["duplicates"] + f["rejected"]
        if f["read"] != placed + f.get("outside_window", 0):
            raise ConservationError(f"side {side}: figures do not add up: {f}. This is a bug.")
    return figures


def _manifest(
    config: Config,
    started: datetime,
    reports: list[InputReport],
    counts: dict[str, SideCounts],
    rejects: list[dict[str, object]],
    outcomes: dict[str, int],
    timings: dict[str, float],
    outside: dict[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "tool": "shadowdiff",
        "version": __version__,
        "schema_version": schema.SCHEMA_VERSION,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "config": config.as_dict(),
        "inputs": [_input_entry(r) for r in reports],
        "conservation": _conservation(reports, counts, rejects, outside),
        "pairs": sum(outcomes.values()),
        "outcomes": outcomes,
        "rejects": len(rejects),
        "timings_s": timings,
    }
