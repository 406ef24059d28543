"""Factories for the noise tests: value samples and small DuckDB runs built from plain values.

``sample_of([(primary, mirror), …])`` parses the values the way the noise stage does;
``Run`` holds the tables a run has when the noise stage starts (``pairs_base``, ``diffs`` and,
with a secondary, ``baseline_pairs``/``baseline_diffs``; ``bodies`` for the exchanges' response
bodies) and judges them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from shadowdiff import schema
from shadowdiff.noise import baseline, pooled, verdicts, volatile
from shadowdiff.noise.thresholds import DEFAULT, Thresholds
from shadowdiff.noise.values import MACROS, SAMPLE_COLUMNS, Sample
from shadowdiff.noise.verdicts import Verdict

MISSING = object()


def text(value: Any) -> str | None:
    """A diffs value: JSON text, ``None`` for an absent value."""
    return None if value is MISSING else json.dumps(value)


def sample_of(
    values: Iterable[tuple[Any, Any]],
    ids: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
) -> Sample:
    """A :class:`Sample` of ``(primary, other)`` values, one row each (request ``r<i>``, target
    ``GET /x/<i>`` unless given)."""
    pairs = list(values)
    names = list(ids) if ids is not None else [f"r{i}" for i in range(len(pairs))]
    table = pa.table(
        {
            "request_id": names,
            "path": ["$.x"] * len(pairs),
            "target": list(targets)
            if targets is not None
            else [f"GET /x/{i}" for i in range(len(pairs))],
            "primary_value": [text(a) for a, _ in pairs],
            "other_value": [text(b) for _, b in pairs],
        }
    )
    con = duckdb.connect()
    con.execute(MACROS)
    con.register("values_arrow", table)
    return Sample.from_arrow(con.sql(f"SELECT {SAMPLE_COLUMNS} FROM values_arrow").to_arrow_table())


def rows(
    endpoint: str,
    pattern: str,
    values: Iterable[tuple[Any, Any]],
    *,
    ids: Iterable[str],
    part: str = "body",
    kind: str = "changed",
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """``diffs`` rows of one pattern, one per request id."""
    return [
        {
            "request_id": request_id,
            "endpoint": endpoint,
            "part": part,
            "path": pattern,
            "pattern": pattern,
            "kind": kind,
            "primary_value": text(a),
            "mirror_value": text(b),
            "noise": reason is not None,
            "noise_reason": reason,
        }
        for request_id, (a, b) in zip(ids, values, strict=True)
    ]


def ids(endpoint: str, n: int) -> list[str]:
    slug = endpoint.split()[-1].strip("/").replace("/", "-")
    return [f"{slug}-{i}" for i in range(n)]


@dataclass
class Run:
    """The tables of a run at the start of the noise stage."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    diffs: list[dict[str, Any]] = field(default_factory=list)
    secondary_pairs: list[dict[str, Any]] | None = None
    secondary_diffs: list[dict[str, Any]] = field(default_factory=list)
    bodies: dict[str, tuple[bytes | None, bytes | None]] = field(default_factory=dict)

    def endpoint(
        self,
        endpoint: str,
        n: int,
        status: int = 200,
        secondary: int = 0,
        distinct_paths: int | None = None,
    ) -> list[str]:
        """``n`` paired requests of ``endpoint``; the first ``secondary`` of them also answered
        by a secondary; ``distinct_paths``: that many request paths, repeated (default: every
        request its own). Returns their ids."""
        names = ids(endpoint, n)
        for number, request_id in enumerate(names):
            self.pairs.append(
                {
                    "request_id": request_id,
                    "endpoint": endpoint,
                    "method": "GET",
                    "path": f"/{endpoint.split()[-1]}/{number % (distinct_paths or n)}",
                    "orphan": None,
                    "primary_status": status,
                    "mirror_status": status,
                }
            )
        if secondary:
            self.secondary_pairs = self.secondary_pairs or []
            for request_id in names[:secondary]:
                self.secondary_pairs.append(
                    {
                        "request_id": request_id,
                        "endpoint": endpoint,
                        "primary_status": status,
                        "secondary_status": status,
                    }
                )
        return names

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute(MACROS)
        pairs = pa.Table.from_pylist(
            self.pairs,
            schema=pa.schema(
                [
                    ("request_id", pa.string()),
                    ("endpoint", pa.string()),
                    ("method", pa.string()),
                    ("path", pa.string()),
                    ("orphan", pa.string()),
                    ("primary_status", pa.int32()),
                    ("mirror_status", pa.int32()),
                ]
            ),
        )
        tables = {"pairs_base": pairs, "diffs": _diffs(self.diffs)}
        if self.secondary_pairs is not None:
            tables["baseline_pairs"] = pa.Table.from_pylist(
                self.secondary_pairs,
                schema=pa.schema(
                    [
                        ("request_id", pa.string()),
                        ("endpoint", pa.string()),
                        ("primary_status", pa.int32()),
                        ("secondary_status", pa.int32()),
                    ]
                ),
            )
            tables["baseline_diffs"] = _diffs(self.secondary_diffs)
        for name, table in tables.items():
            con.register(f"{name}_arrow", table)
            con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
        return con

    def judge(self, t: Thresholds = DEFAULT) -> tuple[dict[tuple[str, str], Verdict], Judged]:
        """Judge (with the secondary's tables if any), apply, and return the verdicts by
        ``(endpoint, pattern)`` and the judged ``diffs`` rows."""
        con = self.connect()
        mode: verdicts.Mode = "volatile" if self.secondary_pairs is None else "baseline"
        judged = volatile.judge(con, t) if mode == "volatile" else baseline.judge(con, t)
        judged = pooled.pool(con, judged, mode, t)
        verdicts.apply(con, judged, mode, self.exchanges() if self.bodies else None)
        settled = verdicts.rule_verdicts(con) + verdicts.settle(con, judged, mode)
        found = {(v.endpoint or "", v.pattern): v for v in settled}
        result = con.sql("SELECT request_id, pattern, noise, noise_reason FROM diffs").fetchall()
        return found, Judged(result)

    def exchanges(self) -> pa.Table:
        """The exchanges table of the requests in ``bodies``: their response bodies (primary,
        mirror) and nothing else."""
        found = [
            {"request_id": request_id, "side": side, "response_body": body}
            for request_id, both in self.bodies.items()
            for side, body in zip(("primary", "mirror"), both, strict=True)
        ]
        return pa.Table.from_pylist(found, schema=schema.EXCHANGES)


@dataclass(frozen=True)
class Judged:
    """The ``diffs`` rows after the noise stage."""

    rows: list[tuple[str, str, bool, str | None]]

    def noise(self, pattern: str) -> dict[str, bool]:
        return {r: n for r, p, n, _ in self.rows if p == pattern}

    def reasons(self, pattern: str) -> set[str | None]:
        return {reason for _, p, _, reason in self.rows if p == pattern}


def _diffs(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema.DIFFS)
