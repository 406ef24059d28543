"""Pairing without a request id: ``[pairing] by = "fingerprint"``.

A request's fingerprint is its method, its path with the query, and a hash of its body. The
records of one fingerprint are put in ``start_time`` order, both sides together, and cut into
*clusters* wherever two neighbours are more than ``max_skew_ms`` apart: a mirrored copy arrives
within the skew of its original, and the next call of the same request usually later than that.

- A cluster with as many primary as mirror records is paired in time order (the proxy mirrors
  requests in the order they come).
- A cluster with more on one side than the other is ambiguous: which of three identical calls
  answered which? None of its records is paired; each keeps an id of its own, so the pairing
  counts it as an orphan — never guessed into a pair.
- A secondary (the noise baseline's second copy of the primary) is matched to the primary in
  the same way, and takes its primary's id.

Each record gets a ``request_id``: the primary's own request id where it has one (the pair
shows it), else a stable id from the fingerprint (``fp-<hash>-<n>``, the n-th cluster of that
fingerprint). The DuckDB work runs over the collected table's few columns; the new ids replace
the ``request_id`` column.
"""

from __future__ import annotations

import pyarrow as pa

from shadowdiff import db

DEFAULT_MAX_SKEW_MS = 1000.0
AMBIGUOUS = "ambiguous"


def assign(exchanges: pa.Table, sides: pa.ChunkedArray | pa.Array, max_skew_ms: float) -> pa.Array:
    """The fingerprint-paired ``request_id`` of every row of ``exchanges`` (``sides`` its
    decided side per row), in row order."""
    table = pa.table(
        {
            "row": pa.array(range(exchanges.num_rows), pa.int64()),
            "side": sides,
            "start_time": exchanges.column("start_time"),
            "method": exchanges.column("method"),
            "path": exchanges.column("path"),
            "body": exchanges.column("request_body"),
            "own_id": exchanges.column("request_id"),
        }
    )
    con = db.cursor()
    try:
        con.register("requests", table)
        result = con.sql(_query(max_skew_ms)).to_arrow_table()
    finally:
        con.close()
    return result.column("request_id").combine_chunks()


def _clusters(sides: str, skew_us: int) -> str:
    """Each record of ``sides`` with its fingerprint's cluster number and its rank in the
    cluster among its side, and the cluster's counts per side."""
    return f"""
    SELECT *,
        count(*) FILTER (WHERE side = 'primary') OVER w_cluster AS n_primary,
        count(*) FILTER (WHERE side <> 'primary') OVER w_cluster AS n_other,
        row_number() OVER (PARTITION BY fp, cluster, side ORDER BY start_time, row) AS rank
    FROM (
        SELECT *, sum(gap) OVER (PARTITION BY fp ORDER BY start_time, row
                                 ROWS UNBOUNDED PRECEDING) AS cluster
        FROM (
            SELECT *, CASE WHEN lag(t_us) OVER w_fp IS NULL
                             OR t_us - lag(t_us) OVER w_fp > {skew_us} THEN 1 ELSE 0 END AS gap
            FROM fingerprinted WHERE side IN ({sides})
            WINDOW w_fp AS (PARTITION BY fp ORDER BY start_time, row)
        )
    )
    WINDOW w_cluster AS (PARTITION BY fp, cluster)
    """


def _query(max_skew_ms: float) -> str:
    skew_us = int(max_skew_ms * 1000)
    return f"""
    WITH fingerprinted AS (
        SELECT row, side, start_time, epoch_us(start_time) AS t_us, own_id,
               method || ' ' || coalesce(path, '') || ' ' || coalesce(md5(body), '-') AS fp
        FROM requests
    ),
    mirror_clusters AS ({_clusters("'primary', 'mirror'", skew_us)}),
    -- Primary and mirror: paired where the cluster's counts agree.
    primaries AS (
        SELECT row, fp, cluster, rank,
               coalesce(nullif(own_id, ''),
                        'fp-' || left(md5(fp), 12) || '-' || cluster || '-' || rank) AS pair_id
        FROM mirror_clusters WHERE side = 'primary'
    ),
    mirrors AS (
        SELECT m.row, CASE WHEN m.n_primary = m.n_other THEN p.pair_id END AS pair_id,
               m.fp, m.cluster, m.rank
        FROM mirror_clusters m
        LEFT JOIN primaries p USING (fp, cluster, rank)
        WHERE m.side = 'mirror'
    ),
    secondary_clusters AS ({_clusters("'primary', 'secondary'", skew_us)}),
    secondaries AS (
        SELECT s.row, CASE WHEN s.n_primary = s.n_other THEN pp.pair_id END AS pair_id,
               s.fp, s.cluster, s.rank
        FROM secondary_clusters s
        LEFT JOIN secondary_clusters sp
               ON sp.side = 'primary' AND sp.fp = s.fp AND sp.cluster = s.cluster
              AND sp.rank = s.rank
        LEFT JOIN primaries pp ON pp.row = sp.row
        WHERE s.side = 'secondary'
    ),
    assigned AS (
        SELECT row, pair_id AS request_id FROM primaries  -- unmatched: no mirror shares it
        UNION ALL
        SELECT row, coalesce(pair_id, 'fp-' || left(md5(fp), 12) || '-' || cluster || '-'
                             || rank || '-{AMBIGUOUS}-mirror') FROM mirrors
        UNION ALL
        SELECT row, coalesce(pair_id, 'fp-' || left(md5(fp), 12) || '-' || cluster || '-'
                             || rank || '-{AMBIGUOUS}-secondary') FROM secondaries
    )
    SELECT coalesce(a.request_id, r.own_id) AS request_id
    FROM requests r LEFT JOIN assigned a USING (row)
    ORDER BY r.row
    """
