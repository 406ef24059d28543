"""Status differences: one ``diffs`` row for each pair whose two statuses are not the same."""

from __future__ import annotations

import duckdb

STATUS_DIFFS = """
SELECT request_id, endpoint, 'status' AS part, 'status' AS path, 'status' AS pattern,
       'changed' AS kind,
       coalesce(primary_status::VARCHAR, 'null') AS primary_value,
       coalesce(mirror_status::VARCHAR, 'null') AS mirror_value,
       false AS noise, NULL::VARCHAR AS noise_reason
FROM pairs_base
WHERE orphan IS NULL AND primary_status IS DISTINCT FROM mirror_status
"""


def status_diffs(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """The status rows of ``diffs``, over ``pairs_base``."""
    return con.sql(STATUS_DIFFS)
