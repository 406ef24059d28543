"""The stages that need the whole window, over what every bucket left: noise verdicts, the
pairs' outcomes, the edges of the window, latency.

Each bucket wrote its ``pairs_base``, ``diffs``, ``notes``, duplicate ids and (with a secondary
side) the baseline's tables as Arrow parts (:mod:`~shadowdiff.engine.tasks`), and its
exchanges as a part of the run's ``exchanges`` table. Here they are DuckDB tables and views of
one connection again, named as the stages have always read them, so every verdict and
quantile is computed over the whole window exactly as before: the noise statistics are
DuckDB's aggregates over every bucket's differences (counts and sums, never a sample), the
latency quantiles come from every pair's stored durations. DuckDB keeps within
``MEMORY_LIMIT`` and spills to the run's working area beyond it, so these stages hold no more
than that whatever the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from shadowdiff import db, schema, store, window
from shadowdiff.engine import ipc
from shadowdiff.engine.tasks import PARTS, PARTS_DIR

# 2 x 1M JSON log lines: the run's process peaked at 836 MB with 512 MB, 615 MB with 256 MB
# (at 0.3 s more of spilling); 2 x 4M: 956 and 641 MB.
MEMORY_LIMIT = "256MB"
BATCH_ROWS = 64 * 1024  # rows of a table streamed to its Parquet file at a time
SPILL_DIR = "duckdb-spill"
# The columns ``unique_exchanges`` has (pair.UNIQUE_EXCHANGES).
UNIQUE_COLUMNS = "request_id, side, endpoint, method, path, status, duration_ms"


def connect(work: Path, secondary: bool) -> duckdb.DuckDBPyConnection:
    """A connection with the run's tables as the stages know them: the view ``exchanges``
    over the written parts, the tables of every bucket's parts, and ``unique_exchanges``."""
    con = db.connect()
    spill = work / SPILL_DIR
    spill.mkdir(exist_ok=True)
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = {db.literal(str(spill))}")
    con.execute(f"CREATE TEMP VIEW exchanges AS SELECT * FROM {_files(work, 'exchanges')}")
    for name in PARTS:
        if name.startswith("baseline_") and not secondary:
            continue
        _load(con, name, sorted((work / PARTS_DIR / name).glob(f"*{ipc.SUFFIX}")))
    con.execute(
        f"CREATE TEMP VIEW unique_exchanges AS SELECT {UNIQUE_COLUMNS} FROM exchanges "
        "ANTI JOIN duplicates USING (request_id)"
    )
    return con


def _load(con: duckdb.DuckDBPyConnection, name: str, paths: list[Path]) -> None:
    """The parts of ``paths`` as the temporary table ``name``, one file at a time: a part is
    mapped while DuckDB copies it, so the run holds one bucket's part outside DuckDB's memory
    limit, never the window's (a scan of all the files at once reads many ahead). Loaded, not
    a view over the files: the stages read these tables many times, and change ``diffs`` (the
    noise verdicts); DuckDB spills them beyond its memory limit. A column missing from some
    parts is null there."""
    con.register(f"{name}_schema", ipc.unified_schema(paths).empty_table())
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {name}_schema")
    con.unregister(f"{name}_schema")
    for path in paths:
        con.register(f"{name}_part", ipc.read_all([path]))
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM {name}_part")
        con.unregister(f"{name}_part")


def _files(work: Path, name: str) -> str:
    paths = ", ".join(db.literal(str(p)) for p in store.table_files(work, name))
    return f"read_parquet([{paths}])"


def read_pairs(con: duckdb.DuckDBPyConnection, work: Path) -> None:
    """The view ``pairs_outcomes`` over the ``pairs`` table written in ``work``, for the
    figures of the whole window (:func:`outcomes`, the ``mirroring`` section)."""
    con.execute(f"CREATE TEMP VIEW pairs_outcomes AS SELECT * FROM {_files(work, 'pairs')}")


def outcomes(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Pairs per outcome (every outcome, zero where none), from ``pairs_outcomes``."""
    counted = {name: 0 for name in schema.OUTCOMES}
    for outcome, n in con.sql("SELECT outcome, count(*) FROM pairs_outcomes GROUP BY 1").fetchall():
        counted[str(outcome)] += int(n)
    return counted


def batches(relation: duckdb.DuckDBPyRelation, edges: pa.Table | None = None) -> Iterator[pa.Table]:
    """``relation``'s rows a batch at a time (``BATCH_ROWS``); with ``edges``, the pairs' notes
    say which orphans lie near an edge of the window (:func:`window.note_edges`)."""
    reader = relation.to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        table = pa.Table.from_batches([batch])
        yield table if edges is None else window.note_edges(table, edges)
