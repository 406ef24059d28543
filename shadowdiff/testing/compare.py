"""Two run directories compared table by table: what the tests of the engines hold them to.

Row order is not part of a table's contract (a run written in buckets writes each bucket's
rows together), so each table's rows are compared sorted on every column; besides the
tables, the manifests' figures (inputs, conservation, outcomes, counts) must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shadowdiff import db, query, schema, store

FIGURES = ("inputs", "conservation", "outcomes", "pairs", "rejects", "mirroring")


def differences(a: str | Path, b: str | Path, renamed: tuple[str, str] | None = None) -> list[str]:
    """What differs between the runs ``a`` and ``b``: one line per table or figure, empty
    when they hold the same rows and figures. ``renamed`` is ``(old, new)`` when ``b`` read
    the same inputs under other names (URLs instead of paths): ``old`` in ``a``'s text
    (locations, the manifest's paths) stands for ``new``."""
    found = []
    first, second = query.open(a), query.open(b)
    try:
        for name in schema.TABLES:
            rows_a, rows_b = _rows(first, name, renamed), _rows(second, name)
            if rows_a != rows_b:
                found.append(f"{name}: {_first_difference(rows_a, rows_b)}")
    finally:
        first.close()
        second.close()
    manifest_a, manifest_b = store.read_manifest(Path(a)), store.read_manifest(Path(b))
    for figure in FIGURES:
        figure_a = manifest_a.get(figure)
        if renamed is not None:
            figure_a = json.loads(json.dumps(figure_a).replace(*renamed))
        if figure_a != manifest_b.get(figure):
            found.append(f"manifest {figure}: {figure_a} != {manifest_b.get(figure)}")
    return found


def _rows(con: Any, name: str, renamed: tuple[str, str] | None = None) -> list[tuple[Any, ...]]:
    columns = "*"
    if renamed is not None:
        old, new = (db.literal(text) for text in renamed)
        table = con.sql(f"SELECT * FROM {name}")
        columns = ", ".join(
            f'replace("{column}", {old}, {new}) AS "{column}"'
            if str(kind) == "VARCHAR"
            else f'"{column}"'
            for column, kind in zip(table.columns, table.types, strict=True)
        )
    return con.sql(f"SELECT {columns} FROM {name} ORDER BY ALL").fetchall()


def _first_difference(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> str:
    if len(a) != len(b):
        return f"{len(a)} rows against {len(b)}"
    for number, (row_a, row_b) in enumerate(zip(a, b, strict=True)):
        if row_a != row_b:
            return f"row {number} (sorted): {row_a!r} != {row_b!r}"
    return "equal"
