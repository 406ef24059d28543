"""Two run directories compared table by table: what the tests of the engines hold them to.

Row order is not part of a table's contract (a run written in buckets writes each bucket's
rows together), so each table's rows are compared sorted on every column; besides the
tables, the manifests' figures (inputs, conservation, outcomes, counts) must agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shadowdiff import query, schema, store

FIGURES = ("inputs", "conservation", "outcomes", "pairs", "rejects", "mirroring")


def differences(a: str | Path, b: str | Path) -> list[str]:
    """What differs between the runs ``a`` and ``b``: one line per table or figure, empty
    when they hold the same rows and figures."""
    found = []
    first, second = query.open(a), query.open(b)
    try:
        for name in schema.TABLES:
            rows_a, rows_b = _rows(first, name), _rows(second, name)
            if rows_a != rows_b:
                found.append(f"{name}: {_first_difference(rows_a, rows_b)}")
    finally:
        first.close()
        second.close()
    manifest_a, manifest_b = store.read_manifest(Path(a)), store.read_manifest(Path(b))
    for figure in FIGURES:
        if manifest_a.get(figure) != manifest_b.get(figure):
            found.append(f"manifest {figure}: {manifest_a.get(figure)} != {manifest_b.get(figure)}")
    return found


def _rows(con: Any, name: str) -> list[tuple[Any, ...]]:
    return con.sql(f"SELECT * FROM {name} ORDER BY ALL").fetchall()


def _first_difference(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> str:
    if len(a) != len(b):
        return f"{len(a)} rows against {len(b)}"
    for number, (row_a, row_b) in enumerate(zip(a, b, strict=True)):
        if row_a != row_b:
            return f"row {number} (sorted): {row_a!r} != {row_b!r}"
    return "equal"
