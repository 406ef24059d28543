"""DuckDB connections as shadowdiff wants them: quiet (the CLI draws its own progress)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import duckdb
import pyarrow as pa

# Threads for each new database (None: DuckDB's default, every core). A Dask worker sets its
# own thread count (its share of the machine): see shadowdiff.engine.dask.
threads: int | None = None


def connect() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection without DuckDB's own progress bar."""
    con = duckdb.connect(config={"threads": threads} if threads else {})
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass  # Jupyter without ipywidgets: DuckDB refuses, and draws no terminal bar there anyway
    return con


def batches(relation: duckdb.DuckDBPyRelation, rows: int) -> Iterator[pa.Table]:
    """The rows of ``relation`` as tables of up to ``rows`` rows, each as DuckDB makes it, and
    none held here while it makes the next (a caller that wants its memory to follow one
    batch drops each before asking for the next)."""
    reader = relation.to_arrow_reader(rows)
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        table = pa.Table.from_batches([batch])
        del batch
        yield table
        del table


def literal(text: str) -> str:
    """``text`` as a SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def cursor() -> duckdb.DuckDBPyConnection:
    """A connection of its own (its temporary tables are its own; safe from any thread) on
    this process's shared in-memory database: opening a database costs ~20 ms, a cursor on a
    shared one well under 1 ms. Per process id, so that a forked worker never uses a database
    it inherited (whose threads did not come with it)."""
    return _shared(os.getpid()).cursor()


@functools.cache
def _shared(pid: int) -> duckdb.DuckDBPyConnection:
    return connect()
