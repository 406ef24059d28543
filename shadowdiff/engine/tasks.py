"""The two kinds of work a run is made of, as plain functions of plain objects: any engine can
run them, in this process, in worker processes or on a Dask cluster.

- **Preparing a piece** (:class:`Preparation`): what a collector read, normalized (sides,
  endpoints, redacted URLs and headers), its bodies redacted, and spilled into the run's
  buckets (:mod:`~shadowdiff.engine.buckets`). Every step is per record, so a piece is prepared
  wherever it was read.
- **A bucket** (:func:`run_bucket`): its exchanges read back; ids assigned when pairing by
  fingerprint, the ``--since/--until`` window applied (both need every record of an id or a
  fingerprint, which the bucket holds); the exchanges written to the run as one Parquet part
  (with a narrow layout, the piece's preparing wrote them instead, see ``buckets.narrow_for``);
  then pairing, status and message differences, and (with a secondary side) the baseline's,
  written as Arrow parts for the window-wide stages (:mod:`~shadowdiff.engine.merged`).

A task writes only files named by its piece or bucket, atomically, so a retried task (a worker
killed) writes the same files again and the run's figures still balance.
"""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import db, fingerprint, store, window
from shadowdiff.config import Config
from shadowdiff.diff.engine import redact_bodies
from shadowdiff.diff.messages import captured, message_diffs
from shadowdiff.diff.status import status_diffs
from shadowdiff.engine import buckets, ipc
from shadowdiff.engine.buckets import Layout
from shadowdiff.noise import baseline
from shadowdiff.normalize import normalize
from shadowdiff.pair import SideCounts, pair
from shadowdiff.redact import Redactor

# The (headers, body) columns of each message of an exchange.
BODIES = (("request_headers", "request_body"), ("response_headers", "response_body"))
# What each bucket leaves for the window-wide stages: the parts of these tables.
PARTS = ("pairs_base", "diffs", "notes", "duplicates", "baseline_diffs", "baseline_pairs")
PARTS_DIR = "parts"


@dataclass
class Prepared:
    """What preparing a piece found: the records normalisation turned away, and whether the
    piece holds anything the message diff compares and any secondary record."""

    rejects: list[dict[str, object]] = field(default_factory=list)
    captured: bool = False
    secondary: bool = False

    def add(self, other: Prepared) -> None:
        self.rejects.extend(other.rejects)
        self.captured = self.captured or other.captured
        self.secondary = self.secondary or other.secondary


class Prepare(Protocol):
    """What a collecting task hands each piece it read to (named ``piece``), and how what it
    wrote of a piece is taken back (a log streamed whole that turned out to need reading as
    cuts: :mod:`~shadowdiff.engine.logstream`)."""

    def __call__(self, collected: pa.Table, piece: str) -> Prepared: ...

    def discard(self, piece: str) -> None: ...


@dataclass(frozen=True)
class Preparation:
    """Prepares pieces for one run: its config, its redaction key and its buckets."""

    config: Config
    redactor: Redactor
    layout: Layout
    work: str  # the run's working directory: where a narrow layout's exchanges go

    def __call__(self, collected: pa.Table, piece: str) -> Prepared:
        if collected.num_rows == 0:
            return Prepared()
        config = self.config
        normalized = normalize(collected, config, self.redactor, assign_ids=False)
        # Bodies before anything is stored (normalize tagged the secret headers).
        exchanges = redact_bodies(normalized.exchanges, config.rules, BODIES, self.redactor)
        if self.layout.narrow:  # stored as prepared: no bucket changes them
            store.write_part(self.work, "exchanges", piece, exchanges)
        buckets.spill(exchanges, self.layout, piece)
        sides = exchanges.column("side")
        return Prepared(
            normalized.rejects,
            captured=captured(exchanges, config.rules),
            secondary=bool(pc.any(pc.equal(sides, "secondary")).as_py() or False),
        )

    def discard(self, piece: str) -> None:
        """Remove what preparing ``piece`` wrote: its exchanges part, its buckets' files."""
        if self.layout.narrow:
            store.remove_part(self.work, "exchanges", piece)
        buckets.unspill(self.layout, piece)


@dataclass(frozen=True)
class BucketTask:
    """One bucket's work, and what it must know of the whole run."""

    bucket: int
    layout: Layout
    work: str  # the run's working directory: where the parts go
    config: Config
    captured: bool
    secondary: bool


@dataclass(frozen=True)
class BucketResult:
    bucket: int
    counts: dict[str, SideCounts]
    outside: dict[str, int]
    exchanges: int
    tested: bool = False  # differences the noise stage tests (header, body, a baseline's)


def part_path(work: str | Path, table: str, bucket: int) -> Path:
    return Path(work) / PARTS_DIR / table / f"part-{bucket:04d}{ipc.SUFFIX}"


def run_bucket(task: BucketTask, pool: Executor | None = None, workers: int = 1) -> BucketResult:
    """Pair and diff one bucket; with a ``pool`` of ``workers`` processes, many pairs are
    diffed in them."""
    config = task.config
    exchanges = buckets.read(task.layout, task.bucket)
    if config.pair_by == "fingerprint" and exchanges.num_rows:
        ids = fingerprint.assign(exchanges, exchanges.column("side"), config.max_skew_ms)
        index = exchanges.schema.get_field_index("request_id")
        exchanges = exchanges.set_column(index, "request_id", ids)
    exchanges, outside = window.bound(exchanges, config.window, config.max_skew_ms)
    if task.layout.narrow:  # the pieces' exchanges are stored already
        counts, tested = _pair_and_diff(exchanges, task, pool, workers)
    else:
        # Written beside the pairing and diffing: pyarrow's encoder and DuckDB share the cores.
        with ThreadPoolExecutor(max_workers=1) as writer:
            part = (task.work, "exchanges", task.bucket, exchanges)
            written = writer.submit(store.write_part, *part)
            counts, tested = _pair_and_diff(exchanges, task, pool, workers)
            written.result()
    buckets.discard(task.layout, task.bucket)
    return BucketResult(task.bucket, counts, outside, exchanges.num_rows, tested)


def _pair_and_diff(
    exchanges: pa.Table, task: BucketTask, pool: Executor | None, workers: int
) -> tuple[dict[str, SideCounts], bool]:
    """The bucket's counts, and whether it has differences the noise stage may test with
    statistics (a status difference it settles by counting)."""
    config = task.config
    con = db.cursor()
    try:
        con.register("exchanges_arrow", exchanges)
        con.execute("CREATE TEMP VIEW exchanges AS SELECT * FROM exchanges_arrow")
        counts = pair(con)
        message_diffs(con, task.captured, config.rules, pool, workers)
        con.execute(
            "CREATE TEMP TABLE diffs AS "
            f"{status_diffs(con).sql_query()} UNION ALL SELECT * FROM message_diffs"
        )
        if task.secondary:
            baseline.prepare(con, exchanges, task.captured, config.rules)
        _write_parts(con, task)
        [(tested,)] = con.sql("SELECT count(*) > 0 FROM diffs WHERE part <> 'status'").fetchall()
    finally:
        con.close()
    return counts, bool(tested) or task.secondary


def _write_parts(con: duckdb.DuckDBPyConnection, task: BucketTask) -> None:
    """Every table of ``PARTS`` this bucket has, as its Arrow part (an empty part where the
    table is empty: the window-wide stages read every bucket's parts)."""
    tables = {name for (name,) in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
    queries = {
        "pairs_base": "SELECT * FROM pairs_base",
        "diffs": "SELECT * FROM diffs",
        "notes": "SELECT * FROM notes",
        "duplicates": (
            "SELECT request_id FROM id_counts WHERE duplicate"
            if "id_counts" in tables
            else "SELECT NULL::VARCHAR AS request_id WHERE false"
        ),
    }
    if task.secondary:
        queries["baseline_diffs"] = "SELECT * FROM baseline_diffs"
        queries["baseline_pairs"] = "SELECT * FROM baseline_pairs"
    for name, query in queries.items():
        target = part_path(task.work, name, task.bucket)
        target.parent.mkdir(parents=True, exist_ok=True)
        ipc.write(target, con.sql(query).to_arrow_table())
