"""DuckDB connections as shadowdiff wants them: quiet (the CLI draws its own progress)."""

from __future__ import annotations

import duckdb


def connect() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection without DuckDB's own progress bar."""
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass  # Jupyter without ipywidgets: DuckDB refuses, and draws no terminal bar there anyway
    return con


def literal(text: str) -> str:
    """``text`` as a SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"
