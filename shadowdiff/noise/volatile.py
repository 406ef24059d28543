"""Noise without a secondary: volatile patterns, told from the data itself.

A pattern (endpoint × part × pattern × kind) is volatile when it differs in nearly every pair
where it exists and the two sides' values come from one population with no systematic relation
between them (see :mod:`shadowdiff.noise.values`). Per pattern, in this order:

1. ``status`` differences and the structural kinds (``added``, ``removed``, ``type_changed``,
   ``binary``) are **real**: a field that appears, disappears or changes type is not a random
   value of the same population.
2. Headers that follow the body (``content-length``, …) are settled per pair afterwards.
3. Fewer than ``min_rows`` differing pairs, or an endpoint with fewer than ``min_pairs`` pairs:
   **insufficient data** (a low-volume endpoint may then borrow the verdict of the other
   endpoints, :mod:`~shadowdiff.noise.pooled`).
4. The values are compared (:func:`~shadowdiff.noise.values.compare`; an ``order`` pattern's
   arrays by :func:`~shadowdiff.noise.orders.judge`): what rests on each pair's own values is
   **noise** however rarely it differs: timestamps whose two clocks agree (a clock with
   one-second resolution differs only when the two servers straddle a second), numbers within a
   tiny relative error of the primary's, a set whose order the primary itself varies;
5. anything else must also differ in at least ``volatile_rate`` of the endpoint's pairs (counted
   over the primary statuses the pattern occurs with, so a field only 200s carry is not diluted
   by the 404s): a real change at 1% or 10% of requests is not volatile, however random its
   values look;
6. then ``same`` population is **noise**, ``different`` (a constant new value, a transform, a
   shift, a new shape, a consistent reorder) is **real**, and ``unknown`` (free text, arrays)
   is **real**: without a secondary only recognisably random values are discounted.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from shadowdiff.noise import orders
from shadowdiff.noise.thresholds import Thresholds
from shadowdiff.noise.values import SAMPLE_COLUMNS, Finding, Sample, compare
from shadowdiff.noise.verdicts import GROUP_KEY, Verdict, follows_body

GROUPS = """
WITH compared AS (
    SELECT request_id, endpoint, coalesce(primary_status, -1) AS status
    FROM pairs_base WHERE orphan IS NULL),
by_status AS (SELECT endpoint, status, count(*) AS n FROM compared GROUP BY ALL),
groups AS (
    SELECT d.endpoint, d.part, d.pattern, d.kind,
           count(DISTINCT d.request_id) AS n_pairs, list(DISTINCT c.status) AS statuses
    FROM diffs d JOIN compared c USING (request_id)
    WHERE NOT d.noise GROUP BY ALL)
SELECT g.endpoint, g.part, g.pattern, g.kind, g.n_pairs::BIGINT,
       (SELECT coalesce(sum(n), 0) FROM by_status s
        WHERE s.endpoint IS NOT DISTINCT FROM g.endpoint
              AND list_contains(g.statuses, s.status))::BIGINT AS total,
       (SELECT coalesce(sum(n), 0) FROM by_status s
        WHERE s.endpoint IS NOT DISTINCT FROM g.endpoint)::BIGINT AS endpoint_pairs
FROM groups g ORDER BY ALL
"""

STRUCTURAL = frozenset({"added", "removed", "type_changed", "binary"})
JUDGED_KINDS = frozenset({"changed", "order"})


def judge(con: duckdb.DuckDBPyConnection, t: Thresholds) -> list[Verdict]:
    """A verdict for every pattern of the non-noise ``diffs`` rows."""
    groups = con.sql(GROUPS).fetchall()
    wanted = [g for g in groups if _needs_values(g[1], g[2], g[3], int(g[4]), t)]
    samples = sample(con, "diffs", [g[:4] for g in wanted], t.sample)
    verdicts = []
    for endpoint, part, pattern, kind, n_pairs, total, endpoint_pairs in groups:
        key = (endpoint, part, pattern, kind)
        verdicts.append(
            _judge(key, int(n_pairs), int(total), int(endpoint_pairs), samples.get(key), t)
        )
    return verdicts


def _needs_values(part: str, pattern: str, kind: str, n_pairs: int, t: Thresholds) -> bool:
    return (
        part != "status"
        and kind in JUDGED_KINDS
        and not follows_body(part, pattern)
        and n_pairs >= t.min_rows
    )


def _judge(
    key: tuple[str | None, str, str, str],
    n_pairs: int,
    total: int,
    endpoint_pairs: int,
    values: Sample | None,
    t: Thresholds,
) -> Verdict:
    endpoint, part, pattern, kind = key

    def verdict(
        name: str, evidence: str, finding: Finding | None = None, reason: str | None = None
    ) -> Verdict:
        return Verdict(
            endpoint,
            part,
            pattern,
            kind,
            n_pairs,
            None,
            total,
            finding.p_value if finding else None,
            name,  # type: ignore[arg-type]
            evidence,
            reason,
            finding.check if finding and name == "noise" else None,
            finding.row_wise if finding else False,
        )

    seen = f"differs in {n_pairs} of {total} pairs ({n_pairs / max(total, 1):.0%})"
    if part == "status":
        return verdict("real", f"{seen}; a status change is real without a secondary")
    if kind in STRUCTURAL:
        return verdict(
            "real", f"{seen}; {kind} is a structural difference: real without a secondary"
        )
    if follows_body(part, pattern):
        return verdict("real", "follows the body")  # settled per pair once the body is judged
    if endpoint_pairs < t.min_pairs or n_pairs < t.min_rows or values is None:
        return verdict(
            "insufficient data",
            f"{seen}; judging values needs ≥ {t.min_rows} differing pairs "
            f"(min_rows) on an endpoint with ≥ {t.min_pairs} pairs (min_pairs; it has "
            f"{endpoint_pairs})",
        )
    finding = orders.judge(values, t) if kind == "order" else compare(values, None, t)
    rate = n_pairs / max(total, 1)
    if finding.row_wise and finding.opinion == "same":
        return verdict(
            "noise", f"{seen}; {finding.evidence}", finding, f"volatile: {finding.label}"
        )
    if rate < t.volatile_rate:
        return verdict(
            "real",
            f"{seen}: a volatile field differs in ≥ {t.volatile_rate:.0%} (volatile_rate); "
            f"values: {finding.evidence}",
            finding,
        )
    if finding.opinion == "same":
        return verdict(
            "noise", f"{seen}; {finding.evidence}", finding, f"volatile: {finding.label}"
        )
    if finding.opinion == "different":
        return verdict("real", f"{seen}, but {finding.evidence}", finding)
    return verdict(
        "real",
        f"{seen}, but the values are not recognisably random ({finding.evidence}); without a "
        "secondary only timestamps, ids, tokens and random numbers are discounted",
        finding,
    )


def sample(
    con: duckdb.DuckDBPyConnection,
    table: str,
    keys: list[tuple[str | None, str, str, str]],
    size: int,
) -> dict[tuple[str | None, str, str, str], Sample]:
    """A fixed sample (by a hash of request id and path) of at most ``size`` non-noise rows of
    ``table`` for each group in ``keys``; the table's ``mirror_value`` is the other side."""
    if not keys:
        return {}
    wanted = pa.table(
        {
            "gid": pa.array(range(len(keys)), pa.int64()),
            **{
                name: pa.array([k[i] for k in keys], pa.string())
                for i, name in enumerate(GROUP_KEY)
            },
        }
    )
    con.register("noise_wanted_arrow", wanted)
    join = " AND ".join(
        f"d.{c} IS NOT DISTINCT FROM w.{c}" if c == "endpoint" else f"d.{c} = w.{c}"
        for c in GROUP_KEY
    )
    rows = con.sql(
        f"""
        SELECT gid, {SAMPLE_COLUMNS} FROM (
            SELECT w.gid, d.request_id, d.path, d.primary_value, d.mirror_value AS other_value,
                   b.method || ' ' || b.path AS target
            FROM {table} d JOIN noise_wanted_arrow w ON ({join})
                 LEFT JOIN pairs_base b ON b.request_id = d.request_id
            WHERE NOT d.noise
            QUALIFY row_number() OVER (
                PARTITION BY w.gid ORDER BY hash(d.request_id, d.path), d.request_id, d.path
            ) <= {int(size)})
        ORDER BY gid
        """
    ).to_arrow_table()
    con.unregister("noise_wanted_arrow")
    found: dict[tuple[str | None, str, str, str], Sample] = {}
    gids = rows.column("gid").to_numpy()
    starts = np.searchsorted(gids, np.arange(len(keys) + 1))
    for gid, key in enumerate(keys):
        start, end = int(starts[gid]), int(starts[gid + 1])
        if end > start:
            found[key] = Sample.from_arrow(rows.slice(start, end - start))
    return found
