"""Latency per endpoint and side, over requests both sides answered (so both sides are measured
on the same requests); the secondary side over requests the primary also answered. The mean
is summed in decimals: exact, so the same in whatever order the pairs come (a run's buckets)."""

from __future__ import annotations

import duckdb

LATENCY = """
WITH measured AS (
    SELECT endpoint, 'primary' AS side, primary_duration_ms AS ms
        FROM pairs_base WHERE orphan IS NULL
    UNION ALL
    SELECT endpoint, 'mirror', mirror_duration_ms FROM pairs_base WHERE orphan IS NULL
    UNION ALL
    SELECT b.endpoint, 'secondary', s.duration_ms
        FROM unique_exchanges s JOIN pairs_base b USING (request_id)
        WHERE s.side = 'secondary' AND coalesce(b.orphan, '') <> 'mirror_only'),
summary AS (
    SELECT endpoint, side, count(*) AS count,
           quantile_cont(ms, [0.5, 0.9, 0.99, 0.999]) AS q,
           avg(ms::DECIMAL(38, 9))::DOUBLE AS mean, max(ms) AS max
    FROM measured WHERE ms IS NOT NULL GROUP BY endpoint, side)
SELECT endpoint, side, count, q[1] AS p50, q[2] AS p90, q[3] AS p99, q[4] AS p999, mean, max
FROM summary ORDER BY endpoint, side
"""


def latency(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """The ``latency`` table, over ``pairs_base`` and ``unique_exchanges``."""
    return con.sql(LATENCY)
