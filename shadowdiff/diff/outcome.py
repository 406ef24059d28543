"""From differences to verdicts: each pair's flags, diff count, signature and outcome."""

from __future__ import annotations

import duckdb

# The signature hashes the sorted set of real (non-noise) patterns, so requests that fail the
# same way share it, whatever their ids or values.
PAIRS = """
WITH per_pair AS (
    SELECT request_id,
           count(*)::INT AS n_diffs,
           bool_or(part = 'status' AND NOT noise) AS status_diverged,
           bool_or(part = 'header' AND NOT noise) AS headers_diverged,
           bool_or(part = 'body' AND NOT noise) AS body_diverged,
           bool_or(NOT noise) AS real,
           list_sort(list_distinct(list(part || ' ' || pattern || ' ' || kind)
                                   FILTER (WHERE NOT noise))) AS patterns
    FROM diffs GROUP BY request_id)
SELECT b.request_id, b.endpoint, b.method, b.path,
       CASE WHEN b.orphan IS NOT NULL THEN b.orphan
            WHEN coalesce(d.real, false) THEN 'diverged'
            WHEN d.n_diffs > 0 THEN 'noise_only'
            ELSE 'match' END AS outcome,
       b.primary_status, b.mirror_status, b.primary_duration_ms, b.mirror_duration_ms,
       b.latency_delta_ms,
       CASE WHEN b.orphan IS NULL THEN coalesce(d.status_diverged, false) END AS status_diverged,
       CASE WHEN b.orphan IS NULL THEN coalesce(d.headers_diverged, false) END AS headers_diverged,
       CASE WHEN b.orphan IS NULL THEN coalesce(d.body_diverged, false) END AS body_diverged,
       CASE WHEN b.orphan IS NULL THEN coalesce(d.n_diffs, 0) END AS n_diffs,
       CASE WHEN len(d.patterns) > 0
            THEN substr(md5(array_to_string(d.patterns, chr(10))), 1, 16) END AS signature,
       n.note
FROM pairs_base b LEFT JOIN per_pair d USING (request_id) LEFT JOIN notes n USING (request_id)
"""


def finish_pairs(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """``pairs`` rows from ``pairs_base`` and the ``diffs`` and ``notes`` tables."""
    return con.sql(PAIRS)
