"""Verdicts per endpoint × pattern × kind, and how they reach the ``diffs`` rows.

A :class:`Verdict` is a :class:`NoiseRow` (one row of the ``noise`` table) plus what the rows
need: the ``noise_reason`` they get and the per-row check
(:class:`~shadowdiff.noise.values.RowCheck`) a row must pass to be noise. :func:`apply` writes
them into the DuckDB table ``diffs``:

- rows already noise by a rule (``rule: …``) stay exactly as they are;
- a row of a ``noise`` pattern becomes noise when it passes the pattern's row check (a timestamp in
  the same format, an id of the same shape); a row that breaks it stays real;
- headers that describe the body (:data:`FOLLOWS_BODY`: ``content-length``, ``etag``, …) follow
  the body of their pair: noise when the pair has body rows and all of them are noise, real when
  any is real (a noisy random field changes the length as surely as a real one does); in a pair
  without body rows they are noise when the bodies' bytes differ all the same (equal by meaning:
  a float written differently, another key order, another compression level), and real when the
  bytes are equal too (then the header changed on its own);
- every other row is real (``noise = false``), ``insufficient data`` included: a verdict that
  cannot be made leaves the difference in front of the user.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import duckdb
import pyarrow as pa

from shadowdiff import schema
from shadowdiff.noise.values import RowCheck, row_check_sql

Mode = Literal["baseline", "volatile"]
VerdictName = Literal["noise", "real", "insufficient data"]
VERDICTS: tuple[VerdictName, ...] = ("noise", "real", "insufficient data")

# Headers whose value is a function of the body bytes: they differ whenever the body does.
FOLLOWS_BODY = frozenset(
    {"content-length", "transfer-encoding", "etag", "content-md5", "digest", "content-digest"}
)


@dataclass(frozen=True)
class NoiseRow:
    """One row of the ``noise`` table (:data:`shadowdiff.schema.NOISE`), with the ``part`` its
    pattern belongs to (``status``, ``header``, ``body``), which the table does not store."""

    endpoint: str | None
    part: str
    pattern: str
    kind: str
    raw_count: int
    baseline_count: int | None
    total: int
    p_value: float | None
    verdict: VerdictName
    evidence: str

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> NoiseRow:
        """A row read back from a stored ``noise`` table (``table.to_pylist()``)."""
        return cls(part=part_of(record["pattern"]), **record)

    def record(self) -> dict[str, Any]:
        """The row as the ``noise`` table stores it: the schema's columns, in its order."""
        return {name: getattr(self, name) for name in schema.NOISE.names}

    @property
    def key(self) -> tuple[str | None, str, str, str]:
        return (self.endpoint, self.part, self.pattern, self.kind)

    @property
    def by_rule(self) -> bool:
        return self.evidence.startswith("rule:")


@dataclass(frozen=True)
class Verdict(NoiseRow):
    """A ``noise`` table row, and ``reason``/``check`` for the pattern's ``diffs`` rows."""

    reason: str | None = None  # the rows' noise_reason, for a noise verdict
    check: RowCheck | None = None
    row_wise: bool = False  # the finding rests on each pair's values (Finding.row_wise)


def part_of(pattern: str) -> str:
    """The part a stored pattern belongs to. The diffs know it; the ``noise`` table (a contract)
    has no column for it, so a row read back derives it: body patterns start with ``$``, the
    status's is ``status``, and a header's is its name (a header named ``status`` reads back as
    the status: the table cannot tell them apart)."""
    if pattern.startswith("$"):
        return "body"
    return "status" if pattern == "status" else "header"


def follows_body(part: str, pattern: str) -> bool:
    return part == "header" and pattern in FOLLOWS_BODY


GROUP_KEY = ("endpoint", "part", "pattern", "kind")
_JOIN = " AND ".join(
    f"d.{c} IS NOT DISTINCT FROM c.{c}" if c == "endpoint" else f"d.{c} = c.{c}" for c in GROUP_KEY
)

_CHECKS = pa.schema(
    [
        ("endpoint", pa.string()),
        ("part", pa.string()),
        ("pattern", pa.string()),
        ("kind", pa.string()),
        ("verdict", pa.string()),
        ("noise", pa.bool_()),
        ("reason", pa.string()),
        ("check_kind", pa.string()),
        ("regex", pa.string()),
        ("signatures", pa.list_(pa.string())),
        ("tolerance_s", pa.float64()),
        ("unit_s", pa.float64()),
    ]
)


def rule_verdicts(con: duckdb.DuckDBPyConnection) -> list[Verdict]:
    """The patterns every row of which a rule already made noise: listed, not judged."""
    rows = con.sql(
        """
        WITH compared AS (
            SELECT endpoint, count(*) AS n FROM pairs_base WHERE orphan IS NULL GROUP BY ALL)
        SELECT d.endpoint, d.part, d.pattern, d.kind, count(DISTINCT d.request_id)::BIGINT,
               coalesce(any_value(c.n), 0)::BIGINT, min(d.noise_reason)
        FROM diffs d LEFT JOIN compared c ON c.endpoint IS NOT DISTINCT FROM d.endpoint
        GROUP BY ALL HAVING bool_and(d.noise) ORDER BY ALL
        """
    ).fetchall()
    return [
        Verdict(
            endpoint,
            part,
            pattern,
            kind,
            count,
            None,
            total,
            None,
            "noise",
            f"{reason} (a rule in the rules file; not tested)",
        )
        for endpoint, part, pattern, kind, count, total, reason in rows
    ]


def apply(
    con: duckdb.DuckDBPyConnection,
    verdicts: Sequence[Verdict],
    mode: Mode,
    exchanges: pa.Table | str | None = None,
) -> None:
    """Set ``noise``/``noise_reason`` of every ``diffs`` row from ``verdicts`` (see the module
    docstring); the rows keep their order. ``exchanges`` (the run's, with the response bodies:
    a table, or the name of a view of ``con``) tells the pairs without body rows whose bodies
    differ in bytes only; without it, headers that follow the body stay real in those pairs."""
    checks = pa.Table.from_pylist([_check_row(v) for v in verdicts], schema=_CHECKS)
    con.register("noise_checks_arrow", checks)
    con.execute("CREATE OR REPLACE TEMP TABLE noise_verdicts AS SELECT * FROM noise_checks_arrow")
    con.unregister("noise_checks_arrow")
    regexes = [v.check.regex for v in verdicts if v.check is not None and v.check.regex]
    passes = row_check_sql(regexes, "c")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE diffs_judged AS
        WITH d AS (SELECT row_number() OVER () AS _row, * FROM diffs),
        j AS (
            SELECT d.*, c.reason AS _reason,
                   NOT d.noise AND coalesce(c.noise, false) AND ({passes}) AS _quiet
            FROM d LEFT JOIN noise_verdicts c ON ({_JOIN}))
        SELECT * EXCLUDE (_row, _reason, _quiet) REPLACE (
                   noise OR _quiet AS noise,
                   CASE WHEN noise THEN noise_reason WHEN _quiet THEN _reason END
                       AS noise_reason)
        FROM j ORDER BY _row;
        DROP TABLE diffs;
        ALTER TABLE diffs_judged RENAME TO diffs;
        """
    )
    names = ", ".join(f"'{n}'" for n in sorted(FOLLOWS_BODY))
    con.execute(
        f"""
        UPDATE diffs SET noise = b.quiet,
               noise_reason = CASE WHEN b.quiet
                                   THEN '{mode}: follows the body, which differs only in noise'
                              END
        FROM (SELECT request_id, bool_and(noise) AS quiet FROM diffs WHERE part = 'body'
              GROUP BY request_id) b
        WHERE diffs.request_id = b.request_id AND diffs.part = 'header'
              AND diffs.pattern IN ({names})
              AND coalesce(diffs.noise_reason, '') NOT LIKE 'rule:%'
        """
    )
    if exchanges is not None:
        _follow_equal_bodies(con, exchanges, mode)


def _follow_equal_bodies(
    con: duckdb.DuckDBPyConnection, exchanges: pa.Table | str, mode: Mode
) -> None:
    """Headers that follow the body, in pairs without body rows whose bodies were captured
    whole and differ in their bytes: noise (the body is equal by meaning)."""
    names = ", ".join(f"'{n}'" for n in sorted(FOLLOWS_BODY))
    lonely = f"""
        SELECT DISTINCT request_id FROM diffs d
        WHERE part = 'header' AND pattern IN ({names}) AND NOT noise
              AND NOT EXISTS (SELECT 1 FROM diffs b
                              WHERE b.request_id = d.request_id AND b.part = 'body')
    """
    [(count,)] = con.sql(f"SELECT count(*) FROM ({lonely})").fetchall()
    if not count:
        return
    if isinstance(exchanges, str):
        source = exchanges
    else:
        source = "noise_exchanges_arrow"
        con.register(source, exchanges.select(_BODY_COLUMNS))
    try:
        con.execute(
            f"""
            UPDATE diffs SET noise = true,
                   noise_reason = '{mode}: follows the body, which differs only in its bytes'
            WHERE part = 'header' AND pattern IN ({names}) AND NOT noise
                  AND request_id IN (
                      SELECT l.request_id FROM ({lonely}) l
                      JOIN {source} p
                           ON p.request_id = l.request_id AND p.side = 'primary'
                      JOIN {source} m
                           ON m.request_id = l.request_id AND m.side = 'mirror'
                      WHERE p.response_body IS NOT NULL AND m.response_body IS NOT NULL
                            AND NOT coalesce(p.response_body_truncated, p.body_truncated, false)
                            AND NOT coalesce(m.response_body_truncated, m.body_truncated, false)
                            AND p.response_body <> m.response_body)
            """
        )
    finally:
        if not isinstance(exchanges, str):
            con.unregister(source)


_BODY_COLUMNS = [
    "request_id",
    "side",
    "response_body",
    "response_body_truncated",
    "body_truncated",
]


def _check_row(v: Verdict) -> dict[str, object]:
    check = v.check
    return {
        "endpoint": v.endpoint,
        "part": v.part,
        "pattern": v.pattern,
        "kind": v.kind,
        "verdict": v.verdict,
        "noise": v.verdict == "noise",
        "reason": v.reason,
        "check_kind": check.kind if check else None,
        "regex": check.regex if check else None,
        "signatures": list(check.signatures) if check else None,
        "tolerance_s": check.tolerance_s if check else None,
        "unit_s": check.unit_s if check else None,
    }


def settle(
    con: duckdb.DuckDBPyConnection, verdicts: Sequence[Verdict], mode: Mode
) -> list[Verdict]:
    """``verdicts`` with what :func:`apply` did to their rows written into the evidence: the
    pairs whose value broke a noise pattern's shape, and the headers that follow the body (their
    verdict is their rows': noise when every pair's body differs only in noise, real when a pair's
    body differs for real or was not compared, else insufficient data)."""
    counts = {
        (endpoint, part, pattern, kind): (int(quiet), int(loud))
        for endpoint, part, pattern, kind, quiet, loud in con.sql(
            """
            SELECT endpoint, part, pattern, kind,
                   count(DISTINCT request_id) FILTER (WHERE noise),
                   count(DISTINCT request_id) FILTER (WHERE NOT noise)
            FROM diffs WHERE coalesce(noise_reason, '') NOT LIKE 'rule:%' GROUP BY ALL
            """
        ).fetchall()
    }
    bodies = _follow_body_counts(con)
    settled = []
    for v in verdicts:
        quiet, loud = counts.get(v.key, (0, 0))
        if follows_body(v.part, v.pattern) and not v.by_rule:
            quiet, real, open_ = bodies.get(v.key, (0, 0, 0))
            verdict: VerdictName = "real" if real else "insufficient data" if open_ else "noise"
            evidence = (
                f"follows the body ({v.pattern} changes with the body's bytes): noise in {quiet} "
                f"pairs whose body differs only in noise (or only in its bytes), real in {real} "
                f"whose body differs for real, was not compared or is byte for byte the same, "
                f"undecided in {open_} whose body holds only differences with insufficient data"
            )
            reason = f"{mode}: follows the body, which differs only in noise" if quiet else None
            settled.append(replace(v, verdict=verdict, evidence=evidence, reason=reason))
        elif v.verdict == "noise" and v.check is not None and loud:
            settled.append(
                replace(
                    v,
                    evidence=f"{v.evidence}; {loud} pairs whose values break that shape stay real",
                )
            )
        else:
            settled.append(v)
    return settled


def _follow_body_counts(
    con: duckdb.DuckDBPyConnection,
) -> dict[tuple[str | None, str, str, str], tuple[int, int, int]]:
    """Per header pattern that follows the body: pairs where it is noise, real (the body differs
    for real, or has no rows), undecided (the body's real rows all have insufficient data). A
    row that broke the shape of a noise pattern is real: its value is not the noise's."""
    names = ", ".join(f"'{n}'" for n in sorted(FOLLOWS_BODY))
    rows = con.sql(
        f"""
        WITH body AS (
            SELECT d.request_id,
                   bool_or(NOT d.noise AND coalesce(c.verdict, 'real') <> 'insufficient data')
                       AS real
            FROM diffs d LEFT JOIN noise_verdicts c ON ({_JOIN})
            WHERE d.part = 'body' GROUP BY d.request_id)
        SELECT f.endpoint, f.part, f.pattern, f.kind,
               count(DISTINCT f.request_id) FILTER (WHERE f.noise),
               count(DISTINCT f.request_id)
                   FILTER (WHERE NOT f.noise AND coalesce(b.real, true)),
               count(DISTINCT f.request_id)
                   FILTER (WHERE NOT f.noise AND NOT coalesce(b.real, true))
        FROM diffs f LEFT JOIN body b USING (request_id)
        WHERE f.part = 'header' AND f.pattern IN ({names})
              AND coalesce(f.noise_reason, '') NOT LIKE 'rule:%'
        GROUP BY ALL
        """
    ).fetchall()
    return {
        (endpoint, part, pattern, kind): (int(a), int(b), int(c))
        for endpoint, part, pattern, kind, a, b, c in rows
    }


def table(verdicts: Iterable[NoiseRow]) -> pa.Table:
    """The ``noise`` table (``schema.NOISE``), sorted by endpoint, pattern and kind."""
    rows = sorted(verdicts, key=lambda v: (v.endpoint or "", v.part, v.pattern, v.kind))
    return pa.Table.from_pylist([v.record() for v in rows], schema=schema.NOISE)
