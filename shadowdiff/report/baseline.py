"""Comparison with an earlier run (``--baseline DIR``): which difference patterns are new, which
went away, and how each endpoint's divergence rate and latency moved.

A pattern is an ``(endpoint, part, pattern, kind)`` of a real (non-noise) difference; it is *new*
when the baseline run has no such difference, *gone* when this run has none. Latency changes
compare each quantile of both sides and the mirror/primary ratio (point estimates; the
intervals are in each run's own latency section).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shadowdiff import query, stats, store
from shadowdiff.report import document

PatternKey = tuple[str | None, str, str, str]


def compare(
    run_dir: Path,
    baseline_dir: Path,
    latency: list[stats.LatencyStats] | None = None,
    *,
    resamples: int = stats.RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``baseline`` section of the report (see :mod:`shadowdiff.report.document`)."""
    baseline_manifest = store.read_manifest(baseline_dir)
    current = _side(run_dir, latency, resamples=resamples, seed=seed)
    earlier = _side(baseline_dir, None, resamples=resamples, seed=seed)

    def key(row: dict[str, Any]) -> PatternKey:
        return (row["endpoint"], row["part"], row["pattern"], row["kind"])

    now = {key(r): r for r in current["patterns"]}
    before = {key(r): r for r in earlier["patterns"]}
    fields = ("endpoint", "part", "pattern", "kind", "diffs", "pairs", "example_request_ids")
    new = [{f: now[k][f] for f in fields} for k in now if k not in before]
    gone = [{f: before[k][f] for f in fields} for k in before if k not in now]
    for rows in (new, gone):
        for row in rows:
            row["example_request_ids"] = list(row["example_request_ids"])
        rows.sort(key=lambda r: (-r["pairs"], r["endpoint"] or "", r["part"], r["pattern"]))
    return {
        "dir": str(baseline_dir),
        "started_at": baseline_manifest.get("started_at"),
        "new_patterns": new,
        "gone_patterns": gone,
        "endpoints": _endpoints(current, earlier),
    }


def _side(
    run_dir: Path,
    latency: list[stats.LatencyStats] | None,
    *,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    con = query.open(run_dir)
    try:
        if latency is None:
            latency = stats.endpoint_latency(con, resamples=resamples, seed=seed)
        return {
            "patterns": document.pattern_counts(con),
            "endpoints": {e["endpoint"]: e for e in document.endpoints(con, top_patterns=0)},
            "latency": {s.endpoint: s for s in latency},
        }
    finally:
        con.close()


def _endpoints(current: dict[str, Any], earlier: dict[str, Any]) -> list[dict[str, Any]]:
    now: dict[str | None, dict[str, Any]] = current["endpoints"]
    before: dict[str | None, dict[str, Any]] = earlier["endpoints"]
    rows: list[dict[str, Any]] = []
    for endpoint in dict.fromkeys([*now, *before]):
        a, b = now.get(endpoint), before.get(endpoint)
        rate = a["divergence_rate"] if a else None
        base_rate = b["divergence_rate"] if b else None
        rows.append(
            {
                "endpoint": endpoint,
                "presence": "both" if a and b else ("new" if a else "gone"),
                "pairs": a["pairs"] if a else 0,
                "baseline_pairs": b["pairs"] if b else 0,
                "divergence_rate": rate,
                "baseline_divergence_rate": base_rate,
                "divergence_rate_change": _change(rate, base_rate),
                "latency": _latency(
                    current["latency"].get(endpoint), earlier["latency"].get(endpoint)
                ),
            }
        )
    rows.sort(
        key=lambda r: (
            -abs(r["divergence_rate_change"] or 0.0),
            -(r["divergence_rate"] or 0.0),
            r["endpoint"] or "",
        )
    )
    return rows


def _latency(
    now: stats.LatencyStats | None, before: stats.LatencyStats | None
) -> dict[str, dict[str, float | None]]:
    out = {}
    for name in stats.QUANTILE_NAMES:
        ratio = _point_ratio(now, name)
        base_ratio = _point_ratio(before, name)
        out[name] = {
            "primary_ms": now.primary.get(name) if now else None,
            "mirror_ms": now.mirror.get(name) if now else None,
            "baseline_primary_ms": before.primary.get(name) if before else None,
            "baseline_mirror_ms": before.mirror.get(name) if before else None,
            "ratio": ratio,
            "baseline_ratio": base_ratio,
            "ratio_change": _change(ratio, base_ratio),
        }
    return out


def _point_ratio(s: stats.LatencyStats | None, name: str) -> float | None:
    if s is None or not s.sufficient:
        return None
    try:
        return s.ratio(name).estimate
    except KeyError:
        return None


def _change(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before
