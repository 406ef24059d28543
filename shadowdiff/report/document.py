"""The report as data: one JSON-ready dict, the single source of the HTML, Markdown and JSON
reports.

``report.json`` is this dict. Its keys are stable (new keys may be added; none is renamed or
removed without bumping ``format_version``). Rates are fractions (0.05 = 5 %), durations
milliseconds, times ISO 8601 in UTC; a figure that cannot be computed is ``null``.

``format``, ``format_version``
    ``"shadowdiff-report"``, ``1``.
``run``
    ``dir``, ``tool_version``, ``schema_version``, ``started_at``, ``finished_at``;
    ``window``: ``start``, ``end``, ``seconds`` (from ``exchanges.start_time``);
    ``inputs``: ``[{path, side, source, size, records, rejected, sha256}]``; ``input_groups``:
    the same summed per side, source and folder (``[{side, source, path, files, size, records,
    rejected, sha256}]``, ``sha256`` only for a group of one file); ``records_read``;
    ``pairs`` (request ids), ``paired`` (both sides answered), ``outcomes``
    (``{match, noise_only, diverged, primary_only, mirror_only}``: counts),
    ``divergence_rate`` (diverged / paired), ``notes`` (pairs with a ``note``, when the pairs
    table has that column).
``pairing``
    ``conservation``: per side ``{read, paired, orphaned, duplicates, rejected}`` (sides that read
    nothing left out); ``orphans``: ``{primary_only, mirror_only}``; ``orphan_rate``
    (orphans / request ids); ``duplicates``; ``rejects``; ``reject_rate`` (rejects / records
    read); ``reject_reasons``: ``[{reason, count}]``.
``endpoints``
    ranked by divergence rate (then diverged count, then pairs):
    ``[{endpoint, pairs, paired, match, noise_only, diverged, primary_only, mirror_only,
    divergence_rate, status_diverged, headers_diverged, body_diverged, patterns}]``;
    ``patterns``: the endpoint's top real (non-noise) differences,
    ``[{part, pattern, kind, diffs, pairs, example_request_ids, example}]`` with
    ``example``: ``{primary_value, mirror_value}`` (JSON text).
``signatures``
    the top failure signatures: ``[{signature, pairs, endpoints, patterns,
    example_request_ids}]``; ``patterns`` are ``"part pattern kind"`` strings.
``noise``
    ``diffs`` (differences judged noise), ``pairs_noise_only``; ``reasons``:
    ``[{endpoint, part, pattern, kind, reason, diffs, pairs}]``; ``verdicts``: rows of the
    ``noise`` table ``[{endpoint, pattern, kind, raw_count, baseline_count, total, p_value,
    verdict, evidence}]``.
``latency``
    per endpoint (see :mod:`shadowdiff.stats`): ``[{endpoint, pairs, sufficient, note,
    primary: {p50, p90, p99}, mirror: {p50, p90, p99}, delta_ms: {p50, p90, p99, mean},
    ratio: {p50: {estimate, low, high, note}, …}, confidence, mann_whitney_p}]``.
``examples``
    a few diverged pairs (one per top signature): ``[{request_id, endpoint, method, path,
    outcome, signature, primary_status, mirror_status, note, diffs: [{part, path, pattern, kind,
    primary_value, mirror_value, noise, noise_reason}]}]``.
``baseline``
    ``null``, or the comparison with an earlier run (:mod:`shadowdiff.report.baseline`):
    ``dir``, ``started_at``, ``new_patterns``, ``gone_patterns``
    (``[{endpoint, part, pattern, kind, diffs, pairs, example_request_ids}]``) and ``endpoints``:
    ``[{endpoint, presence, pairs, baseline_pairs, divergence_rate, baseline_divergence_rate,
    divergence_rate_change, latency: {p50: {primary_ms, mirror_ms, baseline_primary_ms,
    baseline_mirror_ms, ratio, baseline_ratio, ratio_change}, …}}]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb

from shadowdiff import query, stats, store, window

FORMAT = "shadowdiff-report"
FORMAT_VERSION = 1
TOP_PATTERNS = 5
TOP_SIGNATURES = 10
TOP_NOISE = 20
EXAMPLE_IDS = 3
EXAMPLES = 4


def build(
    run_dir: str | Path,
    latency: list[stats.LatencyStats] | None = None,
    *,
    resamples: int = stats.RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The report of the run in ``run_dir`` as a dict, ``baseline`` left ``None`` (see
    :func:`shadowdiff.report.build`). ``latency``: the run's statistics, when already known."""
    directory = Path(run_dir)
    manifest = store.read_manifest(directory)
    con = query.open(directory)
    try:
        if latency is None:
            latency = stats.endpoint_latency(con, resamples=resamples, seed=seed)
        document: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "run": run_summary(con, manifest, directory),
            "pairing": pairing(con, manifest),
            "endpoints": endpoints(con),
            "signatures": signatures(con),
            "noise": noise(con),
            "latency": [latency_entry(s) for s in latency],
            "examples": examples(con),
            "baseline": None,
        }
    finally:
        con.close()
    return document


def columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {row[0] for row in con.sql(f"DESCRIBE {table}").fetchall()}


def _dicts(relation: duckdb.DuckDBPyRelation) -> list[dict[str, Any]]:
    names = list(relation.columns)
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def run_summary(
    con: duckdb.DuckDBPyConnection, manifest: dict[str, Any], directory: Path
) -> dict[str, Any]:
    [(start, end)] = con.sql("SELECT min(start_time), max(start_time) FROM exchanges").fetchall()
    outcomes = dict.fromkeys(("match", "noise_only", "diverged", "primary_only", "mirror_only"), 0)
    for outcome, n in con.sql("SELECT outcome, count(*) FROM pairs GROUP BY 1").fetchall():
        outcomes[str(outcome)] = int(n)
    pairs = sum(outcomes.values())
    paired = outcomes["match"] + outcomes["noise_only"] + outcomes["diverged"]
    notes = None
    if "note" in columns(con, "pairs"):
        [(notes,)] = con.sql("SELECT count(*) FROM pairs WHERE note IS NOT NULL").fetchall()
    inputs = [
        {
            key: item.get(key)
            for key in ("path", "side", "source", "size", "records", "rejected", "sha256")
        }
        for item in manifest.get("inputs", [])
    ]
    return {
        "dir": str(directory),
        "tool_version": manifest.get("version"),
        "schema_version": manifest.get("schema_version"),
        "started_at": manifest.get("started_at"),
        "finished_at": manifest.get("finished_at"),
        "window": {
            "start": _iso(start),
            "end": _iso(end),
            "seconds": (end - start).total_seconds() if start is not None else None,
        },
        "inputs": inputs,
        "input_groups": _input_groups(inputs),
        "records_read": _records_read(manifest),
        "pairs": pairs,
        "paired": paired,
        "outcomes": outcomes,
        "divergence_rate": _rate(outcomes["diverged"], paired),
        "notes": notes,
    }


def _records_read(manifest: dict[str, Any]) -> int:
    return sum(int(f.get("read", 0)) for f in manifest.get("conservation", {}).values())


def pairing(con: duckdb.DuckDBPyConnection, manifest: dict[str, Any]) -> dict[str, Any]:
    conservation = {
        side: figures
        for side, figures in manifest.get("conservation", {}).items()
        if figures.get("read")
    }
    [(primary_only, mirror_only, total)] = con.sql(
        """
        SELECT count(*) FILTER (WHERE outcome = 'primary_only'),
               count(*) FILTER (WHERE outcome = 'mirror_only'), count(*)
        FROM pairs
        """
    ).fetchall()
    [(rejects,)] = con.sql("SELECT count(*) FROM rejects").fetchall()
    reasons = _dicts(
        con.sql(
            "SELECT reason, count(*) AS count FROM rejects GROUP BY reason "
            "ORDER BY count DESC, reason LIMIT 10"
        )
    )
    return {
        "conservation": conservation,
        "orphans": {"primary_only": primary_only, "mirror_only": mirror_only},
        "orphan_rate": _rate(primary_only + mirror_only, total),
        "duplicates": sum(int(f.get("duplicates", 0)) for f in conservation.values()),
        "rejects": rejects,
        "reject_rate": _rate(rejects, _records_read(manifest)),
        "reject_reasons": reasons,
        # Sampled mirroring, edge orphans, bounds, mirrored writes (shadowdiff.window).
        "mirroring": manifest.get("mirroring"),
        "mirroring_lines": window.lines(manifest.get("mirroring")),
    }


def endpoints(
    con: duckdb.DuckDBPyConnection, top_patterns: int = TOP_PATTERNS
) -> list[dict[str, Any]]:
    rows = _dicts(
        con.sql(
            """
            SELECT endpoint,
                   count(*) AS pairs,
                   count(*) FILTER (WHERE outcome NOT IN ('primary_only', 'mirror_only'))
                       AS paired,
                   count(*) FILTER (WHERE outcome = 'match') AS match,
                   count(*) FILTER (WHERE outcome = 'noise_only') AS noise_only,
                   count(*) FILTER (WHERE outcome = 'diverged') AS diverged,
                   count(*) FILTER (WHERE outcome = 'primary_only') AS primary_only,
                   count(*) FILTER (WHERE outcome = 'mirror_only') AS mirror_only,
                   count(*) FILTER (WHERE status_diverged) AS status_diverged,
                   count(*) FILTER (WHERE headers_diverged) AS headers_diverged,
                   count(*) FILTER (WHERE body_diverged) AS body_diverged
            FROM pairs GROUP BY endpoint
            """
        )
    )
    patterns = patterns_by_endpoint(con, top_patterns)
    for row in rows:
        row["divergence_rate"] = _rate(row["diverged"], row["paired"])
        row["patterns"] = patterns.get(row["endpoint"], [])
    rows.sort(
        key=lambda r: (
            -(r["divergence_rate"] or 0.0),
            -r["diverged"],
            -r["pairs"],
            r["endpoint"] or "",
        )
    )
    keys = (
        "endpoint",
        "pairs",
        "paired",
        "match",
        "noise_only",
        "diverged",
        "primary_only",
        "mirror_only",
        "divergence_rate",
        "status_diverged",
        "headers_diverged",
        "body_diverged",
        "patterns",
    )
    return [{k: row[k] for k in keys} for row in rows]


def pattern_counts(
    con: duckdb.DuckDBPyConnection, limit_per_endpoint: int | None = None
) -> list[dict[str, Any]]:
    """Real (non-noise) differences grouped by endpoint, part, pattern and kind."""
    limit = "" if limit_per_endpoint is None else f"WHERE rank <= {int(limit_per_endpoint)}"
    return _dicts(
        con.sql(
            f"""
            WITH grouped AS (
                SELECT endpoint, part, pattern, kind,
                       count(*) AS diffs, count(DISTINCT request_id) AS pairs,
                       list(DISTINCT request_id ORDER BY request_id)[1:{EXAMPLE_IDS}]
                           AS example_request_ids,
                       arg_min(primary_value, request_id) AS primary_value,
                       arg_min(mirror_value, request_id) AS mirror_value
                FROM diffs WHERE NOT coalesce(noise, false)
                GROUP BY endpoint, part, pattern, kind),
            ranked AS (
                SELECT *, row_number() OVER (
                    PARTITION BY endpoint ORDER BY pairs DESC, diffs DESC, part, pattern, kind
                ) AS rank
                FROM grouped)
            SELECT endpoint, part, pattern, kind, diffs, pairs, example_request_ids,
                   primary_value, mirror_value
            FROM ranked {limit}
            ORDER BY endpoint NULLS LAST, rank
            """
        )
    )


def patterns_by_endpoint(
    con: duckdb.DuckDBPyConnection, top: int = TOP_PATTERNS
) -> dict[str | None, list[dict[str, Any]]]:
    out: dict[str | None, list[dict[str, Any]]] = {}
    for row in pattern_counts(con, top):
        out.setdefault(row["endpoint"], []).append(
            {
                "part": row["part"],
                "pattern": row["pattern"],
                "kind": row["kind"],
                "diffs": row["diffs"],
                "pairs": row["pairs"],
                "example_request_ids": list(row["example_request_ids"]),
                "example": {
                    "primary_value": row["primary_value"],
                    "mirror_value": row["mirror_value"],
                },
            }
        )
    return out


def signatures(con: duckdb.DuckDBPyConnection, top: int = TOP_SIGNATURES) -> list[dict[str, Any]]:
    rows = _dicts(
        con.sql(
            f"""
            WITH top AS (
                SELECT signature, count(*) AS pairs,
                       list(DISTINCT endpoint ORDER BY endpoint) AS endpoints,
                       list(request_id ORDER BY request_id)[1:{EXAMPLE_IDS}]
                           AS example_request_ids
                FROM pairs WHERE signature IS NOT NULL
                GROUP BY signature ORDER BY pairs DESC, signature LIMIT ?),
            shapes AS (
                SELECT p.signature,
                       list(DISTINCT d.part || ' ' || d.pattern || ' ' || d.kind
                            ORDER BY d.part || ' ' || d.pattern || ' ' || d.kind) AS patterns
                FROM pairs p JOIN diffs d USING (request_id)
                WHERE p.signature IN (SELECT signature FROM top)
                  AND NOT coalesce(d.noise, false)
                GROUP BY p.signature)
            SELECT top.signature, top.pairs, top.endpoints,
                   coalesce(shapes.patterns, []) AS patterns, top.example_request_ids
            FROM top LEFT JOIN shapes USING (signature)
            ORDER BY top.pairs DESC, top.signature
            """,
            params=[top],
        )
    )
    for row in rows:
        row["endpoints"] = list(row["endpoints"])
        row["patterns"] = list(row["patterns"])
        row["example_request_ids"] = list(row["example_request_ids"])
    return rows


def noise(con: duckdb.DuckDBPyConnection, top: int = TOP_NOISE) -> dict[str, Any]:
    [(noise_diffs,)] = con.sql("SELECT count(*) FROM diffs WHERE noise").fetchall()
    [(noise_only,)] = con.sql("SELECT count(*) FROM pairs WHERE outcome = 'noise_only'").fetchall()
    reasons = _dicts(
        con.sql(
            """
            SELECT endpoint, part, pattern, kind, noise_reason AS reason,
                   count(*) AS diffs, count(DISTINCT request_id) AS pairs
            FROM diffs WHERE noise
            GROUP BY ALL ORDER BY pairs DESC, diffs DESC, endpoint, part, pattern, kind LIMIT ?
            """,
            params=[top],
        )
    )
    verdicts = _dicts(
        con.sql(
            """
            SELECT endpoint, pattern, kind, raw_count, baseline_count, total, p_value, verdict,
                   evidence
            FROM noise ORDER BY total DESC NULLS LAST, endpoint, pattern, kind LIMIT ?
            """,
            params=[top],
        )
    )
    return {
        "diffs": noise_diffs,
        "pairs_noise_only": noise_only,
        "reasons": reasons,
        "verdicts": verdicts,
    }


def latency_entry(s: stats.LatencyStats) -> dict[str, Any]:
    ratio: dict[str, Any] = {}
    for name in stats.QUANTILE_NAMES:
        try:
            r = s.ratio(name)
        except KeyError:
            ratio[name] = {"estimate": None, "low": None, "high": None, "note": s.note}
            continue
        ratio[name] = {"estimate": r.estimate, "low": r.low, "high": r.high, "note": r.note}
    return {
        "endpoint": s.endpoint,
        "pairs": s.n,
        "sufficient": s.sufficient,
        "note": s.note,
        "primary": dict(s.primary),
        "mirror": dict(s.mirror),
        "delta_ms": {k: s.deltas.get(k) for k in (*stats.QUANTILE_NAMES, "mean")},
        "ratio": ratio,
        "confidence": s.confidence,
        "mann_whitney_p": s.mann_whitney_p,
    }


def examples(con: duckdb.DuckDBPyConnection, count: int = EXAMPLES) -> list[dict[str, Any]]:
    """One diverged pair per top signature (then more diverged pairs, if there are few)."""
    note = "note" if "note" in columns(con, "pairs") else "NULL::VARCHAR AS note"
    rows = _dicts(
        con.sql(
            f"""
            WITH ranked AS (
                SELECT request_id, endpoint, method, path, outcome, signature,
                       primary_status, mirror_status, {note},
                       row_number() OVER (PARTITION BY signature ORDER BY request_id) AS nth,
                       count(*) OVER (PARTITION BY signature) AS size
                FROM pairs WHERE outcome = 'diverged')
            SELECT request_id, endpoint, method, path, outcome, signature,
                   primary_status, mirror_status, note
            FROM ranked ORDER BY nth, size DESC, signature, request_id LIMIT ?
            """,
            params=[count],
        )
    )
    if not rows:
        return rows
    ids = [r["request_id"] for r in rows]
    diffs = _dicts(
        con.sql(
            """
            SELECT request_id, part, path, pattern, kind, primary_value, mirror_value, noise,
                   noise_reason
            FROM diffs WHERE list_contains(?, request_id)
            ORDER BY request_id, noise, part, path
            """,
            params=[ids],
        )
    )
    by_id: dict[str, list[dict[str, Any]]] = {}
    for d in diffs:
        by_id.setdefault(d.pop("request_id"), []).append(d)
    for row in rows:
        row["diffs"] = by_id.get(row["request_id"], [])
    return rows


def _input_groups(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Inputs summed per side, source and folder: a tap directory is hundreds of files."""
    groups: dict[tuple[Any, Any, str], dict[str, Any]] = {}
    for item in inputs:
        folder = os.path.dirname(str(item["path"])) or "."
        key = (item["side"], item["source"], folder)
        group = groups.setdefault(
            key,
            {
                "side": item["side"],
                "source": item["source"],
                "path": item["path"],
                "files": 0,
                "size": 0,
                "records": 0,
                "rejected": 0,
                "sha256": item["sha256"],
            },
        )
        group["files"] += 1
        for field in ("size", "records", "rejected"):
            group[field] += item.get(field) or 0
        if group["files"] > 1:
            group["path"], group["sha256"] = folder + "/", None
    return list(groups.values())
