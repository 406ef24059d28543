"""Pairing: join the primary and mirror records of each request id.

A request id seen more than once on a side cannot be paired honestly (which record answers
which?), so every record carrying it, on any side, is counted as a duplicate and kept out of
``pairs``. Works on the DuckDB table ``exchanges`` and leaves ``pairs_base`` and
``unique_exchanges`` (the exchanges without duplicates) beside it.

The join comes first, over every record: without a secondary side and without duplicates (the
usual case) its rows give every figure, and the per-id count table, a second hash pass over all
the ids, is never built.
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


# Records per side: a cheap pass over the side column, which the join's figures are checked on.
SIDE_RECORDS = "SELECT side, count(*) FROM exchanges GROUP BY side"

# One pass over the request ids (normalize leaves none missing): how many records each side has
# of each. Needed only with a secondary side or duplicates: then every figure comes from this
# small table, and so do the duplicates.
ID_COUNTS = """
CREATE OR REPLACE TEMP TABLE id_counts AS
    SELECT *, greatest(n_primary, n_mirror, n_secondary) > 1 AS duplicate
    FROM (SELECT request_id,
                 count(*) FILTER (WHERE side = 'primary') AS n_primary,
                 count(*) FILTER (WHERE side = 'mirror') AS n_mirror,
                 count(*) FILTER (WHERE side = 'secondary') AS n_secondary
          FROM exchanges GROUP BY request_id)
"""

# Per side: its count on each id, and its partner's (the secondary's partner is the primary).
PLACED = """
SELECT side, sum(n),
       count(*) FILTER (WHERE NOT duplicate AND n = 1 AND partner = 1),
       count(*) FILTER (WHERE NOT duplicate AND n = 1 AND partner = 0),
       coalesce(sum(n) FILTER (WHERE duplicate), 0)
FROM (SELECT 'primary' AS side, n_primary AS n, n_mirror AS partner, duplicate FROM id_counts
      UNION ALL SELECT 'mirror', n_mirror, n_primary, duplicate FROM id_counts
      UNION ALL SELECT 'secondary', n_secondary, n_primary, duplicate FROM id_counts)
GROUP BY side
"""

# Without duplicates (the usual case) just the exchanges. A view either way, not a copy of the
# columns: the anti join against the few duplicate ids is cheap to run again.
UNIQUE_EXCHANGES = """
CREATE OR REPLACE TEMP VIEW unique_exchanges AS
    SELECT request_id, side, endpoint, method, path, status, duration_ms FROM exchanges {anti_join}
"""
ANTI_JOIN = "ANTI JOIN (SELECT request_id FROM id_counts WHERE duplicate) d USING (request_id)"

# The hash join costs less than keeping each side's values in the aggregate above (strings in
# aggregate states; measured on 2M records). Before duplicates are known it runs over every
# record, with a limit: an id repeated on both sides multiplies its rows, and without
# duplicates there are at most as many rows as records.
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
    FROM p FULL OUTER JOIN m ON p.request_id = m.request_id
    {limit}
"""

# The join's rows by orphan, and the distinct ids among the orphans (few, usually).
JOINED = """
SELECT count(*),
       count(*) FILTER (WHERE orphan IS NULL),
       count(*) FILTER (WHERE orphan = 'primary_only'),
       count(*) FILTER (WHERE orphan = 'mirror_only'),
       count(DISTINCT request_id) FILTER (WHERE orphan IS NOT NULL)
FROM pairs_base
"""
DROP_DUPLICATES = (
    "DELETE FROM pairs_base WHERE request_id IN (SELECT request_id FROM id_counts WHERE duplicate)"
)


def pair(con: duckdb.DuckDBPyConnection) -> dict[str, SideCounts]:
    """Build ``pairs_base`` from ``exchanges``; return where each side's records went.

    The secondary side (the noise baseline) is paired against the primary: its records count as
    paired when the primary has the same request id.
    """
    records = {side: int(n) for side, n in con.sql(SIDE_RECORDS).fetchall()}
    primary, mirror = records.get("primary", 0), records.get("mirror", 0)
    con.execute(UNIQUE_EXCHANGES.format(anti_join=""))
    con.execute(PAIRS_BASE.format(limit=f"LIMIT {primary + mirror + 1}"))
    rows, paired, primary_only, mirror_only, orphan_ids = con.sql(JOINED).fetchall()[0]
    # Every id on both sides once, and no orphan id twice: no duplicates anywhere. (An id
    # repeated on one side repeats its partner's record in the join, or its own orphan rows.)
    unique = (
        set(records) <= {"primary", "mirror"}
        and paired + primary_only == primary
        and paired + mirror_only == mirror
        and orphan_ids == primary_only + mirror_only
    )
    if unique:
        return {
            "primary": SideCounts(primary, paired, primary_only, 0),
            "mirror": SideCounts(mirror, paired, mirror_only, 0),
            "secondary": SideCounts(0, 0, 0, 0),
        }
    counts = _counted(con)
    if any(c.duplicates for c in counts.values()):
        con.execute(UNIQUE_EXCHANGES.format(anti_join=ANTI_JOIN))
        if rows <= primary + mirror:  # complete: only the duplicates' rows are wrong
            con.execute(DROP_DUPLICATES)
        else:
            con.execute(PAIRS_BASE.format(limit=""))
    return counts


def _counted(con: duckdb.DuckDBPyConnection) -> dict[str, SideCounts]:
    """Every side's figures from the per-id count table (built here)."""
    con.execute(ID_COUNTS)
    placed = {side: figures for side, *figures in con.sql(PLACED).fetchall()}
    counts = {}
    for side in SIDES:
        records, paired, orphaned, duplicates = placed.get(side, (0, 0, 0, 0))
        counts[side] = SideCounts(
            records=int(records),
            paired=int(paired),
            orphaned=int(orphaned),
            duplicates=int(duplicates),
        )
    return counts
