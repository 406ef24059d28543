"""DuckDB over a run directory: every table as a view, for the CLI's ``sql`` and notebooks."""

from __future__ import annotations

from pathlib import Path

import duckdb

from shadowdiff import db, schema, store


def open(run_dir: str | Path) -> duckdb.DuckDBPyConnection:  # noqa: A001 - the public name
    """A DuckDB connection with the run's tables (``exchanges``, ``pairs``, ``diffs``,
    ``latency``, ``noise``, ``rejects``) as views.

        >>> con = shadowdiff.open("out/run1")
        >>> con.sql("SELECT outcome, count(*) FROM pairs GROUP BY 1").df()
    """
    directory = Path(run_dir)
    store.read_manifest(directory)  # refuses incomplete or foreign directories
    con = db.connect()
    for name in schema.TABLES:
        files = store.table_files(directory, name)  # a file, or a directory of parts
        if files:
            listed = ", ".join(db.literal(str(path.resolve())) for path in files)
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}])")
    return con
