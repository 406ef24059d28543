"""The mirroring window as it really is: sampled mirroring, edges, bounds, and mirrored writes.

- **Sampled mirroring.** Istio's ``mirrorPercentage`` sends only part of the traffic: with
  ``[pairing] mirror_percent = 80``, a fifth of the primary's requests are *expected* to have no
  mirrored copy. The observed share is estimated from the data either way and printed.
- **Edges.** The two sides' logs start and stop at slightly different moments. An orphan within
  ``max_skew_ms`` of where the other side's log begins or ends may have its counterpart just
  outside that log: it is counted apart (and noted in ``pairs.note``), not against the orphan
  verdict.
- **Bounds.** ``--since/--until`` (``[window]``) keep the primary's requests that started in
  ``[since, until)``, the other sides' copies of those, and the other sides' records that
  started within the window (widened by the skew); the rest is counted per side as
  ``outside_window`` in the conservation figures.
- **Mirrored writes.** A mirrored POST, PUT, PATCH or DELETE (or a request to an endpoint named
  in ``[safety] writes``) still reaches the mirror and may touch shared state; per endpoint,
  how many did and what the mirror answered (a 2xx on a write is the warning sign).

All of it lands in the manifest's ``mirroring`` section, which the summary, the report and
``check`` read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import db

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
EDGE_NOTE = "near the edge of the {other}'s log: its counterpart may lie outside it"


@dataclass(frozen=True)
class Bounds:
    since: datetime | None = None
    until: datetime | None = None

    @property
    def given(self) -> bool:
        return self.since is not None or self.until is not None


def bound(exchanges: pa.Table, bounds: Bounds, skew_ms: float) -> tuple[pa.Table, dict[str, int]]:
    """``exchanges`` within ``bounds`` (see the module's text), and how many records of each
    side fell outside. Compared in Arrow, on the UTC instants: no session time zone enters."""
    if not bounds.given:
        return exchanges, {}
    sides = exchanges.column("side")
    starts = exchanges.column("start_time")
    primary = pc.fill_null(pc.equal(sides, "primary"), False)
    kept_primary = pc.and_(primary, _inside(starts, bounds, 0.0))
    kept_ids = exchanges.column("request_id").filter(kept_primary)
    copies = pc.fill_null(pc.is_in(exchanges.column("request_id"), value_set=kept_ids), False)
    others = pc.and_(pc.invert(primary), pc.or_(copies, _inside(starts, bounds, skew_ms)))
    mask = pc.or_(kept_primary, others)
    dropped = exchanges.filter(pc.invert(mask)).column("side")
    outside = {
        str(item["values"]): int(item["counts"]) for item in pc.value_counts(dropped).to_pylist()
    }
    return exchanges.filter(mask), outside


def _inside(starts: pa.ChunkedArray, bounds: Bounds, widen_ms: float) -> pa.ChunkedArray:
    """Which ``starts`` fall in ``bounds`` widened by ``widen_ms`` each way (null: none)."""
    widen = timedelta(milliseconds=widen_ms)
    inside = pc.is_valid(starts)
    if bounds.since is not None:
        since = pa.scalar(bounds.since - widen, starts.type)
        inside = pc.and_(inside, pc.greater_equal(starts, since))
    if bounds.until is not None:
        until = pa.scalar(bounds.until + widen, starts.type)
        inside = pc.and_(inside, pc.less(starts, until))
    return pc.fill_null(inside, False)


def edge_orphans(con: duckdb.DuckDBPyConnection, skew_ms: float) -> pa.Table:
    """The orphans (``request_id``, ``outcome``, ``other``) near the other side's coverage
    edges. Reads the ``exchanges`` view and ``pairs_base`` (whose ``orphan`` is an orphan's
    outcome), so it is known before the pairs' outcomes are written."""
    skew = f"INTERVAL {skew_ms * 1000:.0f} MICROSECOND"
    return con.sql(
        f"""
        WITH cover AS (
            SELECT side, min(start_time) AS first, max(start_time) AS last FROM exchanges
            WHERE side IN ('primary', 'mirror') GROUP BY side
        ),
        orphans AS (
            SELECT o.request_id, o.orphan AS outcome, e.start_time,
                   CASE o.orphan WHEN 'primary_only' THEN 'mirror' ELSE 'primary' END AS other
            FROM pairs_base o
            JOIN exchanges e ON e.request_id = o.request_id
             AND e.side = CASE o.orphan WHEN 'primary_only' THEN 'primary' ELSE 'mirror' END
            WHERE o.orphan IN ('primary_only', 'mirror_only')
        )
        SELECT DISTINCT o.request_id, o.outcome, o.other
        FROM orphans o LEFT JOIN cover c ON c.side = o.other
        WHERE c.first IS NULL OR o.start_time < c.first + {skew} OR o.start_time > c.last - {skew}
        """
    ).to_arrow_table()


def note_edges(pairs: pa.Table, edges: pa.Table) -> pa.Table:
    """``pairs`` with the edge orphans' ``note`` saying why they may be orphans."""
    if edges.num_rows == 0:
        return pairs
    notes = {
        rid: EDGE_NOTE.format(other=other)
        for rid, other in zip(
            edges.column("request_id").to_pylist(), edges.column("other").to_pylist(), strict=True
        )
    }
    ids = pairs.column("request_id")
    hit = pc.is_in(ids, value_set=edges.column("request_id"))
    if not pc.any(hit).as_py():
        return pairs
    old = pairs.column("note").to_pylist()
    new = [
        (notes[rid] if old_note is None else f"{old_note}; {notes[rid]}") if flag else old_note
        for rid, old_note, flag in zip(ids.to_pylist(), old, hit.to_pylist(), strict=True)
    ]
    index = pairs.schema.get_field_index("note")
    return pairs.set_column(index, "note", pa.array(new, pa.string()))


def mirrored_writes(
    con: duckdb.DuckDBPyConnection, writes: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Per endpoint: the non-idempotent requests that reached the mirror (paired or
    mirror-only), and the mirror's answers by class. Reads ``pairs_outcomes``."""
    named = ", ".join(db.literal(e) for e in writes) or "NULL"
    methods = ", ".join(db.literal(m) for m in WRITE_METHODS)
    rows = con.sql(
        f"""
        SELECT endpoint, count(*) AS mirrored,
               count(*) FILTER (WHERE mirror_status BETWEEN 200 AND 299) AS answered_2xx,
               count(*) FILTER (WHERE mirror_status BETWEEN 400 AND 499) AS answered_4xx,
               count(*) FILTER (WHERE mirror_status >= 500) AS answered_5xx,
               string_agg(DISTINCT method, ', ' ORDER BY method) AS methods
        FROM pairs_outcomes
        WHERE outcome <> 'primary_only'
          AND (upper(method) IN ({methods}) OR endpoint IN ({named}))
        GROUP BY endpoint ORDER BY answered_2xx DESC, mirrored DESC, endpoint
        """
    ).fetchall()
    keys = ("endpoint", "mirrored", "answered_2xx", "answered_4xx", "answered_5xx", "methods")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def mirroring(
    con: duckdb.DuckDBPyConnection,
    edges: pa.Table,
    configured_percent: float | None,
    outside: dict[str, int],
    writes: list[dict[str, Any]],
) -> dict[str, Any]:
    """The manifest's ``mirroring`` section."""
    [(paired, primary_only, mirror_only)] = con.sql(
        """
        SELECT count(*) FILTER (WHERE outcome NOT IN ('primary_only', 'mirror_only')),
               count(*) FILTER (WHERE outcome = 'primary_only'),
               count(*) FILTER (WHERE outcome = 'mirror_only')
        FROM pairs_outcomes
        """
    ).fetchall()
    edge_counts = {"primary_only": 0, "mirror_only": 0}
    for item in pc.value_counts(edges.column("outcome")).to_pylist() if edges.num_rows else []:
        edge_counts[str(item["values"])] = int(item["counts"])
    inner_primary_only = primary_only - edge_counts["primary_only"]
    seen = paired + inner_primary_only
    observed = 100.0 * paired / seen if seen else None
    expected = None
    if configured_percent is not None:
        expected = round((1 - configured_percent / 100) * seen)
    return {
        "mirror_percent": configured_percent,
        "observed_percent": None if observed is None else round(observed, 2),
        "primary_only": primary_only,
        "expected_primary_only": expected,
        "mirror_only": mirror_only,
        "edge_orphans": edge_counts,
        "outside_window": outside,
        "mirrored_writes": writes,
    }


def unexpected_orphans(section: dict[str, Any]) -> tuple[int, str]:
    """Orphans that count against the orphan verdict, and how they were counted: edge orphans
    aside, and of the primary-only ones only those beyond what sampled mirroring explains."""
    edges = section.get("edge_orphans", {})
    primary_only = int(section.get("primary_only", 0)) - int(edges.get("primary_only", 0))
    mirror_only = int(section.get("mirror_only", 0)) - int(edges.get("mirror_only", 0))
    expected = section.get("expected_primary_only")
    how = []
    if expected is not None:
        excess = max(0, primary_only - int(expected))
        how.append(
            f"primary-only beyond the {expected} that mirror_percent = "
            f"{section.get('mirror_percent'):g} expects"
        )
        primary_only = excess
    if any(edges.values()):
        how.append(f"{sum(edges.values())} near the logs' edges not counted")
    return primary_only + mirror_only, "; ".join(how)


def lines(section: dict[str, Any] | None) -> list[str]:
    """What the ``mirroring`` section says, as lines of text for the summary and the reports
    (nothing when there is nothing to say)."""
    if not section:
        return []
    out = []
    observed = section.get("observed_percent")
    configured = section.get("mirror_percent")
    if configured is not None:
        out.append(
            f"Mirroring: {configured:g}% configured, {observed}% of requests observed mirrored; "
            f"{section['primary_only']:,} primary-only against "
            f"{section['expected_primary_only']:,} expected."
        )
    elif observed is not None and observed < 99.5:
        out.append(
            f"Mirroring: {observed}% of the primary's requests have a mirrored copy; if the "
            "mirror gets only part of the traffic (Istio's mirrorPercentage), set [pairing] "
            "mirror_percent so that check expects the rest as primary-only."
        )
    edges = section.get("edge_orphans", {})
    if any(edges.values()):
        out.append(
            f"Orphans near the edges of the other side's log (counterpart perhaps outside it, "
            f"not counted against check): {edges.get('primary_only', 0):,} primary-only, "
            f"{edges.get('mirror_only', 0):,} mirror-only."
        )
    outside = section.get("outside_window", {})
    if outside:
        shown = ", ".join(f"{side} {n:,}" for side, n in sorted(outside.items()))
        out.append(f"Outside --since/--until: {shown} records not analysed.")
    writes = section.get("mirrored_writes", [])
    if writes:
        total = sum(int(w["mirrored"]) for w in writes)
        accepted = sum(int(w["answered_2xx"]) for w in writes)
        out.append(
            f"Mirrored writes: {total:,} non-idempotent requests reached the mirror, "
            f"{accepted:,} answered 2xx (a 2xx on a mirrored write may have changed shared state):"
        )
        out += [
            f"  {w['endpoint']}: {w['mirrored']:,} ({w['methods']}), 2xx {w['answered_2xx']:,}, "
            f"4xx {w['answered_4xx']:,}, 5xx {w['answered_5xx']:,}"
            for w in writes[:10]
        ]
    return out
