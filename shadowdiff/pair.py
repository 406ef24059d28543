"""Pairing: join the primary and mirror records of each request id.

A request id seen more than once on a side cannot be paired honestly (which record answers
which?), so every record carrying it, on any side, is counted as a duplicate and kept out of
``pairs``. Works on the DuckDB table ``exchanges`` and leaves ``pairs_base`` beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from shadowdiff.schema import SIDES


@dataclass(frozen=True)
class SideCounts:
    """Where one side's records went. ``records`` = paired + orphaned + duplicates."""

    records: int
    paired: int
    orphaned: int
    duplicates: int


DUPLICATE_IDS = """
CREATE OR REPLACE TEMP TABLE duplicate_ids AS
    SELECT request_id FROM exchanges GROUP BY request_id, side HAVING count(*) > 1
"""

UNIQUE_COLUMNS = "request_id, side, endpoint, method, path, status, duration_ms"
# Without duplicates (the usual case) a view: no copy of the columns.
UNIQUE_EXCHANGES = f"""
CREATE OR REPLACE TEMP {{kind}} unique_exchanges AS
    SELECT {UNIQUE_COLUMNS} FROM exchanges {{anti_join}}
"""
ANTI_JOIN = "ANTI JOIN (SELECT DISTINCT request_id FROM duplicate_ids) d USING (request_id)"

PAIRS_BASE = """
CREATE OR REPLACE TEMP TABLE pairs_base AS
    WITH p AS (SELECT * FROM unique_exchanges WHERE side = 'primary'),
         m AS (SELECT * FROM unique_exchanges WHERE side = 'mirror')
    SELECT
        coalesce(p.request_id, m.request_id) AS request_id,
        coalesce(p.endpoint, m.endpoint) AS endpoint,
        coalesce(p.method, m.method) AS method,
        coalesce(p.path, m.path) AS path,
        CASE WHEN p.request_id IS NULL THEN 'mirror_only'
             WHEN m.request_id IS NULL THEN 'primary_only' END AS orphan,
        p.status AS primary_status,
        m.status AS mirror_status,
        p.duration_ms AS primary_duration_ms,
        m.duration_ms AS mirror_duration_ms,
        m.duration_ms - p.duration_ms AS latency_delta_ms
    FROM p FULL OUTER JOIN m ON p.request_id = m.request_id;
"""

PLACED = """
SELECT 'primary', count(*) FILTER (WHERE orphan IS NULL),
       count(*) FILTER (WHERE orphan = 'primary_only') FROM pairs_base
UNION ALL
SELECT 'mirror', count(*) FILTER (WHERE orphan IS NULL),
       count(*) FILTER (WHERE orphan = 'mirror_only') FROM pairs_base
UNION ALL
SELECT 'secondary', count(p.request_id), count(*) - count(p.request_id)
FROM (SELECT request_id FROM unique_exchanges WHERE side = 'secondary') s
     LEFT JOIN (SELECT request_id FROM unique_exchanges WHERE side = 'primary') p USING (request_id)
"""


def pair(con: duckdb.DuckDBPyConnection) -> dict[str, SideCounts]:
    """Build ``pairs_base`` from ``exchanges``; return where each side's records went.

    The secondary side (the noise baseline) is paired against the primary: its records count as
    paired when the primary has the same request id.
    """
    con.execute(DUPLICATE_IDS)
    if con.sql("SELECT count(*) FROM duplicate_ids").fetchall()[0][0]:
        con.execute(UNIQUE_EXCHANGES.format(kind="TABLE", anti_join=ANTI_JOIN))
    else:
        con.execute(UNIQUE_EXCHANGES.format(kind="VIEW", anti_join=""))
    con.execute(PAIRS_BASE)
    records = dict(con.sql("SELECT side, count(*) FROM exchanges GROUP BY side").fetchall())
    duplicates = dict(
        con.sql(
            "SELECT side, count(*) FROM exchanges SEMI JOIN "
            "(SELECT DISTINCT request_id FROM duplicate_ids) d USING (request_id) GROUP BY side"
        ).fetchall()
    )
    placed = {side: (paired, orphaned) for side, paired, orphaned in con.sql(PLACED).fetchall()}
    counts = {}
    for side in SIDES:
        paired, orphaned = placed.get(side, (0, 0))
        counts[side] = SideCounts(
            records=int(records.get(side, 0)),
            paired=int(paired),
            orphaned=int(orphaned),
            duplicates=int(duplicates.get(side, 0) or 0),
        )
    return counts
