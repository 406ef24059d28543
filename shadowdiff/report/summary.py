"""The one-screen text summary printed after a run: where things are, and the headline numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shadowdiff import query, schema, store, window

TOP_ENDPOINTS = 8
TOP_PATTERNS = 12


def summary(run_dir: Path) -> str:
    manifest = store.read_manifest(run_dir)
    con = query.open(run_dir)
    try:
        lines = [f"shadowdiff {manifest['version']}: run written to {run_dir}/", ""]
        lines += _inputs(manifest)
        lines += _conservation(manifest)
        lines += _outcomes(manifest)
        mirroring = window.lines(manifest.get("mirroring"))
        lines += [""] + mirroring if mirroring else []
        lines += _endpoints(con)
        lines += _patterns(con)
        lines += _latency(con)
        lines += _rejects(con, manifest)
        lines += [
            "",
            f"Tables: {_tables(run_dir)} (Parquet) and manifest.json in {run_dir}/",
            f'Query them: shadowdiff sql {run_dir} "SELECT * FROM pairs WHERE outcome = '
            "'diverged' LIMIT 10\"",
        ]
    finally:
        con.close()
    return "\n".join(lines)


def _tables(run_dir: Path) -> str:
    """The run's tables, a table written in parts with their count."""
    shown = []
    for name in sorted(schema.TABLES):
        files = store.table_files(run_dir, name)
        if len(files) > 1:
            shown.append(f"{name} ({len(files)} parts in {name}/)")
        elif files:
            shown.append(name)
    return ", ".join(shown)


def _inputs(manifest: dict[str, Any]) -> list[str]:
    inputs = manifest["inputs"]
    sources = sorted({i["source"] for i in inputs})
    records = sum(i["records"] for i in inputs)
    return [f"Inputs: {len(inputs)} file(s) ({', '.join(sources)}), {records} records read"]


def _conservation(manifest: dict[str, Any]) -> list[str]:
    rows = ["", f"{'side':<11}{'read':>9}{'paired':>9}{'orphaned':>10}{'dupes':>8}{'rejected':>10}"]
    for side, f in manifest["conservation"].items():
        if f["read"] == 0:
            continue
        rows.append(
            f"{side:<11}{f['read']:>9}{f['paired']:>9}{f['orphaned']:>10}"
            f"{f['duplicates']:>8}{f['rejected']:>10}"
        )
    return rows


def _outcomes(manifest: dict[str, Any]) -> list[str]:
    total = manifest["pairs"] or 1
    parts = [
        f"{name} {count} ({count / total:.1%})"
        for name, count in manifest["outcomes"].items()
        if count
    ]
    return ["", f"Pairs: {manifest['pairs']}: " + ", ".join(parts)]


def _endpoints(con: Any) -> list[str]:
    rows = con.sql(
        """
        SELECT endpoint,
               count(*) FILTER (WHERE outcome NOT IN ('primary_only', 'mirror_only')) AS paired,
               count(*) FILTER (WHERE outcome = 'diverged') AS diverged,
               count(*) FILTER (WHERE status_diverged) AS status
        FROM pairs GROUP BY endpoint
        ORDER BY diverged DESC, paired DESC, endpoint LIMIT ?
        """,
        params=[TOP_ENDPOINTS],
    ).fetchall()
    if not rows:
        return []
    out = ["", f"{'endpoint':<44}{'paired':>8}{'diverged':>10}{'rate':>8}{'status':>8}"]
    for endpoint, paired, diverged, status in rows:
        rate = f"{diverged / paired:.1%}" if paired else "-"
        out.append(
            f"{_cut(endpoint or '(no path)', 43):<44}{paired:>8}{diverged:>10}{rate:>8}{status:>8}"
        )
    return out


def _patterns(con: Any) -> list[str]:
    rows = con.sql(
        """
        SELECT endpoint, part, pattern, kind, count(*) AS n, bool_and(noise) AS noise
        FROM diffs GROUP BY ALL ORDER BY noise, n DESC, endpoint, pattern LIMIT ?
        """,
        params=[TOP_PATTERNS],
    ).fetchall()
    if not rows:
        return []
    out = ["", f"{'top differences':<34}{'part':<8}{'pattern':<22}{'kind':<14}{'pairs':>7}"]
    for endpoint, part, pattern, kind, n, noise in rows:
        flag = " (noise)" if noise else ""
        out.append(
            f"{_cut(endpoint or '(no path)', 33):<34}{part:<8}{_cut(pattern, 21):<22}"
            f"{kind:<14}{n:>7}{flag}"
        )
    return out


def _latency(con: Any) -> list[str]:
    rows = con.sql(
        """
        SELECT p.endpoint, p.count, p.p50, m.p50, p.p99, m.p99
        FROM latency p JOIN latency m ON p.endpoint IS NOT DISTINCT FROM m.endpoint
        WHERE p.side = 'primary' AND m.side = 'mirror'
        ORDER BY abs(m.p50 - p.p50) DESC NULLS LAST, p.endpoint LIMIT ?
        """,
        params=[TOP_ENDPOINTS],
    ).fetchall()
    if not rows:
        return []
    out = [
        "",
        f"{'latency (ms), paired requests':<36}{'n':>7}{'p50 prim':>10}{'p50 mirr':>10}"
        f"{'p99 prim':>10}{'p99 mirr':>10}",
    ]
    for endpoint, n, p50p, p50m, p99p, p99m in rows:
        out.append(
            f"{_cut(endpoint or '(no path)', 35):<36}{n:>7}{_ms(p50p):>10}{_ms(p50m):>10}"
            f"{_ms(p99p):>10}{_ms(p99m):>10}"
        )
    return out


def _rejects(con: Any, manifest: dict[str, Any]) -> list[str]:
    if not manifest["rejects"]:
        return ["", "Rejects: none"]
    rows = con.sql(
        "SELECT reason, count(*) AS n FROM rejects GROUP BY reason ORDER BY n DESC LIMIT 5"
    ).fetchall()
    out = ["", f"Rejects: {manifest['rejects']} (see the rejects table)"]
    out += [f"  {n:>7}  {_cut(reason, 70)}" for reason, n in rows]
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
