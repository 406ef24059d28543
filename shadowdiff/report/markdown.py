"""The Markdown report: short enough for a PR comment or a chat message: the headline numbers,
the worst endpoints, latency that moved, and (with a baseline) what changed since.

Captured text (endpoints, patterns) is escaped so it cannot open links, images, HTML or break
the tables.
"""

from __future__ import annotations

import re
from typing import Any

from shadowdiff import stats

WORST_ENDPOINTS = 5
NEW_PATTERNS = 5
SLOWER_ENDPOINTS = 5

# Escaped values never start a line, so only inline specials matter (and `|`, for tables).
_SPECIAL = re.compile(r"([\\`*_\[\]<>!|~&])")


def escape(text: object) -> str:
    """``text`` as literal Markdown: specials backslash-escaped, on one line."""
    one_line = " ".join(str(text).split())
    return _SPECIAL.sub(r"\\\1", one_line)


def render(document: dict[str, Any]) -> str:
    run = document["run"]
    pairing = document["pairing"]
    outcomes = run["outcomes"]
    orphans = pairing["orphans"]["primary_only"] + pairing["orphans"]["mirror_only"]
    lines = [
        f"## shadowdiff report: {escape(run['dir'])}",
        "",
        f"**{outcomes['diverged']:,} of {run['paired']:,} paired requests diverged "
        f"({_pct(run['divergence_rate'])})**; {outcomes['noise_only']:,} differ only in noise, "
        f"{outcomes['match']:,} match.",
        f"Orphans: {orphans:,} ({_pct(pairing['orphan_rate'])}), "
        f"duplicates: {pairing['duplicates']:,}, rejects: {pairing['rejects']:,} "
        f"({_pct(pairing['reject_rate'])}). Window: {_window(run['window'])}.",
    ]
    lines += [escape(line) for line in pairing.get("mirroring_lines", [])]
    lines += _worst(document["endpoints"])
    lines += _slower(document["latency"])
    if document.get("baseline"):
        lines += _baseline(document["baseline"])
    lines += ["", "_Full report: report.html; figures: report.json._", ""]
    return "\n".join(lines)


def _worst(endpoints: list[dict[str, Any]]) -> list[str]:
    worst = [e for e in endpoints if e["diverged"]][:WORST_ENDPOINTS]
    if not worst:
        return ["", "No endpoint diverged."]
    out = [
        "",
        "### Worst endpoints",
        "",
        "| endpoint | diverged | paired | rate | top pattern |",
        "|---|---:|---:|---:|---|",
    ]
    for e in worst:
        top = e["patterns"][0] if e["patterns"] else None
        pattern = (
            f"{escape(top['part'])} {escape(top['pattern'])} ({escape(top['kind'])})" if top else ""
        )
        out.append(
            f"| {escape(_endpoint(e['endpoint']))} | {e['diverged']:,} | {e['paired']:,} | "
            f"{_pct(e['divergence_rate'])} | {pattern} |"
        )
    return out


def _slower(latency: list[dict[str, Any]]) -> list[str]:
    """Endpoints whose mirror is slower beyond doubt: a ratio's CI lower bound above 1."""
    rows = []
    for entry in latency:
        for name in stats.QUANTILE_NAMES:
            r = entry["ratio"][name]
            if r["low"] is not None and r["low"] > 1.0:
                rows.append((r["low"], entry, name, r))
    rows.sort(key=lambda item: -item[0])
    if not rows:
        return []
    out = [
        "",
        "### Slower on the mirror",
        "",
        f"| endpoint | quantile | primary ms | mirror ms | ratio [{stats.CONFIDENCE:.0%} CI] |",
        "|---|---|---:|---:|---|",
    ]
    for _, entry, name, r in rows[:SLOWER_ENDPOINTS]:
        out.append(
            f"| {escape(_endpoint(entry['endpoint']))} | {name} | {_ms(entry['primary'][name])} | "
            f"{_ms(entry['mirror'][name])} | {r['estimate']:.2f}× "
            f"\\[{r['low']:.2f}–{r['high']:.2f}\\] |"
        )
    return out


def _baseline(baseline: dict[str, Any]) -> list[str]:
    new, gone = baseline["new_patterns"], baseline["gone_patterns"]
    out = [
        "",
        f"### Since the baseline ({escape(baseline['dir'])})",
        "",
        f"{len(new)} new pattern(s), {len(gone)} gone.",
    ]
    for p in new[:NEW_PATTERNS]:
        out.append(
            f"- new: {escape(_endpoint(p['endpoint']))}: {escape(p['part'])} "
            f"{escape(p['pattern'])} ({escape(p['kind'])}), {p['pairs']:,} pair(s)"
        )
    moved = [
        e
        for e in baseline["endpoints"]
        if e["divergence_rate_change"] is not None and abs(e["divergence_rate_change"]) > 0
    ][:WORST_ENDPOINTS]
    if moved:
        out += ["", "| endpoint | divergence | baseline | change |", "|---|---:|---:|---:|"]
        for e in moved:
            out.append(
                f"| {escape(_endpoint(e['endpoint']))} | {_pct(e['divergence_rate'])} | "
                f"{_pct(e['baseline_divergence_rate'])} | "
                f"{e['divergence_rate_change'] * 100:+.2f} pp |"
            )
    return out


def _endpoint(value: str | None) -> str:
    return "(no endpoint)" if value is None else value


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _window(window: dict[str, Any]) -> str:
    if not window.get("start"):
        return "n/a"
    return f"{window['start']} to {window['end']} ({window['seconds']:.1f} s)"
