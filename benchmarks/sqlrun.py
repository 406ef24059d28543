"""Run a DuckDB SQL script as the ``duckdb`` CLI would, with only the Python module installed.

    python benchmarks/sqlrun.py SCRIPT.sql [NAME=VALUE ...]

Each ``NAME=VALUE`` becomes ``SET VARIABLE NAME = 'VALUE'`` (read in the script with
``getvariable('NAME')``) before the script's statements run, in one in-memory database.
benchmarks/run.py times this process as the hand-written baselines.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def run(script: Path, variables: dict[str, str]) -> None:
    con = duckdb.connect()
    for name, value in variables.items():
        if not name.isidentifier():
            raise SystemExit(f"not a variable name: {name!r}")
        con.execute(f"SET VARIABLE {name} = {_literal(value)}")
    con.execute(script.read_text())
    con.close()


def main(argv: list[str]) -> None:
    if not argv or any("=" not in arg for arg in argv[1:]):
        raise SystemExit(__doc__)
    run(Path(argv[0]), dict(arg.split("=", 1) for arg in argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
