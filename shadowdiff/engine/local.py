"""The local engine: collect → normalize → pair → diff → store, embedded (DuckDB + pyarrow)."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import __version__, db, schema, store, window
from shadowdiff.collect.base import Input, InputReport, Options
from shadowdiff.collect.inputs import expand_groups
from shadowdiff.config import Config
from shadowdiff.diff.engine import redact_bodies
from shadowdiff.diff.messages import message_diffs
from shadowdiff.diff.outcome import finish_pairs
from shadowdiff.diff.status import status_diffs
from shadowdiff.engine.collection import Readers, collect, plan
from shadowdiff.engine.digest import Digests
from shadowdiff.errors import ConfigError, ConservationError, OutputError, no_room
from shadowdiff.latency import latency
from shadowdiff.noise import detect as detect_noise
from shadowdiff.normalize import normalize
from shadowdiff.pair import SideCounts, pair
from shadowdiff.redact import Redactor
from shadowdiff.rundir import RunDir

UNASSIGNED = "unassigned"
# Threads writing tables beside the stages.
BACKGROUND = 3
# The (headers, body) columns of each message of an exchange.
BODIES = (("request_headers", "request_body"), ("response_headers", "response_body"))
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


def _groups(config: Config) -> list[list[Input]]:
    found = [
        *expand_groups(config.primary, "primary"),
        *expand_groups(config.mirror, "mirror"),
        *expand_groups(config.secondary, "secondary"),
        *expand_groups(config.inputs, None),
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
    timings: dict[str, float] = {}
    started = datetime.now(UTC)
    options = Options(log_format=config.log_format, request_id_header=config.pairing_key)
    inputs = plan(_groups(config), _source_name(config))
    # Background work that overlaps DuckDB's: writing each table as soon as it is ready
    # (pyarrow's writer encodes on one core; DuckDB goes on with the other), and hashing the
    # inputs that no collector hashed as it read them, on whatever the stages leave idle.
    # The reading workers start first, before any of these threads.
    hashed = inputs.hashed_by_collector()
    unhashed = [s.path for s in inputs.inputs if s.name not in hashed]
    with (
        RunDir(out) as run_dir,  # the lock first: a second run into ``out`` stops here
        Readers(inputs, run_dir.work) as readers,
        ThreadPoolExecutor(max_workers=BACKGROUND) as background,
        Digests(unhashed) as digests,
    ):
        work = run_dir.work
        if readers.pool is not None:
            _import_in_background(*LATER_IMPORTS)
        with _timed(timings, "collect"):
            collected = collect(inputs, options, readers, say)
            readers.discard_spill()  # before the working directory becomes the run
            rejects, reports = collected.rejects, collected.reports
        # One key for the run, so both sides' secrets are tagged alike.
        redactor = Redactor(
            config.redact_query, fields=config.redact_fields, headers=config.redact_headers
        )
        with _timed(timings, "normalize"):
            normalized = normalize(collected.exchanges, config, redactor)
            rejects.extend(normalized.rejects)
            bounded, outside = window.bound(normalized.exchanges, config.window, config.max_skew_ms)
            # Bodies before anything is stored (normalize tagged the secret headers).
            exchanges = redact_bodies(bounded, config.rules, BODIES, redactor)
        written = [background.submit(store.write_table, work, "exchanges", exchanges)]

        def write(name: str, table: pa.Table) -> None:
            written.append(background.submit(store.write_table, work, name, table))

        con = db.connect()
        try:
            con.register("exchanges_arrow", exchanges)
            con.execute("CREATE TEMP VIEW exchanges AS SELECT * FROM exchanges_arrow")
            with _timed(timings, "pair"):
                counts = pair(con)
            records = sum(r.records for r in reports)
            say(f"read {records} records, paired {counts['primary'].paired} requests; diffing")
            with _timed(timings, "diff"):
                message_diffs(con, exchanges, config.rules, readers.pool, readers.workers)
                con.execute(
                    "CREATE TEMP TABLE diffs AS "
                    f"{status_diffs(con).sql_query()} UNION ALL SELECT * FROM message_diffs"
                )
                with _timed(timings, "noise"):  # sets diffs.noise before the outcomes
                    noise = detect_noise(con, exchanges, config.rules, config.noise)
                pairs = _table(finish_pairs(con))
                con.register("pairs_outcomes", pairs)
                edges = window.edge_orphans(con, config.max_skew_ms)
                mirroring = window.mirroring(
                    con,
                    edges,
                    config.mirror_percent,
                    outside,
                    window.mirrored_writes(con, config.safety_writes),
                )
                pairs = window.note_edges(pairs, edges)
                write("pairs", pairs)
                write("diffs", _table(con.sql("SELECT * FROM diffs")))
                write("latency", _table(latency(con)))
        finally:
            con.close()
        write("noise", noise)
        for row in rejects:  # a rejected line's excerpt may hold secrets
            if isinstance(row["excerpt"], str):
                row["excerpt"] = redactor.excerpt(row["excerpt"])
        write("rejects", pa.Table.from_pylist(rejects, schema.REJECTS))
        with _timed(timings, "hash"):  # what is left of it after the stages
            digest_of = {str(path): index for index, path in enumerate(unhashed)}
            for report in reports:
                if report.sha256 is None and report.path in digest_of:
                    report.sha256 = digests.result(digest_of[report.path])
        with _timed(timings, "store"):  # what is left of the writing after the rest
            for table_written in written:
                table_written.result()
        manifest = _manifest(config, started, reports, counts, rejects, pairs, timings, outside)
        manifest["mirroring"] = mirroring
        store.finish(work, manifest)
        run_dir.commit()  # the previous run stays whole until this rename
    return RunResult(out, manifest, config, timings)


def _input_entry(report: InputReport) -> dict[str, Any]:
    """An input's manifest entry: its figures, and a note only where something happened."""
    entry = vars(report).copy()
    if entry["note"] is None:
        del entry["note"]
    return entry


def _import_in_background(*modules: str) -> None:
    """Import ``modules`` in a thread while this process waits on the reading workers, instead
    of later on the critical path (``scipy.stats`` alone takes about a second to import)."""

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
    pairs: pa.Table,
    timings: dict[str, float],
    outside: dict[str, int] | None = None,
) -> dict[str, Any]:
    outcomes = {name: 0 for name in schema.OUTCOMES}
    # Counted in Arrow: a million pairs are a million Python strings otherwise.
    for counted in pc.value_counts(pairs.column("outcome")).to_pylist():
        outcomes[counted["values"]] += counted["counts"]
    return {
        "tool": "shadowdiff",
        "version": __version__,
        "schema_version": schema.SCHEMA_VERSION,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "config": config.as_dict(),
        "inputs": [_input_entry(r) for r in reports],
        "conservation": _conservation(reports, counts, rejects, outside),
        "pairs": pairs.num_rows,
        "outcomes": outcomes,
        "rejects": len(rejects),
        "timings_s": timings,
    }
