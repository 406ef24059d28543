"""The HTML report: one self-contained file (inline styles and SVG, no script, no fetches).

Captured content is untrusted, so the page is rendered by Jinja2 with autoescape on and no
value is ever marked safe; a Content-Security-Policy forbids scripts and remote loads besides.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import jinja2

from shadowdiff import query, stats
from shadowdiff.report import bodies, plots
from shadowdiff.report.template import HTML

VALUE_CHARS = 120


def render(document: dict[str, Any], run_dir: str | Path) -> str:
    """The HTML page for ``document`` (from :func:`shadowdiff.report.build`) of ``run_dir``."""
    con = query.open(run_dir)
    try:
        cdfs = {endpoint: plots.cdf_plot(p, m) for endpoint, p, m in stats.paired_latencies(con)}
        views = [(example, example_view(con, example)) for example in document["examples"]]
    finally:
        con.close()
    return (
        environment()
        .from_string(HTML)
        .render(
            doc=document,
            plots=cdfs,
            views=views,
            generated=datetime.now(UTC).replace(microsecond=0).isoformat(),
            quantiles=stats.QUANTILE_NAMES,
            confidence=f"{stats.CONFIDENCE:.0%}",
            floor=f"{stats.LATENCY_FLOOR_MS:g}",
            min_pairs=stats.MIN_PAIRS,
            tail={name: stats.required_pairs(level) for name, level in stats.QUANTILES},
        )
    )


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=_num,
        pct=_pct,
        pct_change=_pct_change,
        trend=_trend,
        times=_times,
        fixed=_fixed,
        ms=_ms,
        ms_signed=_ms_signed,
        pvalue=_pvalue,
        duration=_duration,
        endpoint=_endpoint,
        value=_value,
    )
    return env


def example_view(con: duckdb.DuckDBPyConnection, example: dict[str, Any]) -> bodies.View:
    """The side-by-side view of one example pair, from its ``exchanges`` rows."""
    names = {row[0] for row in con.sql("DESCRIBE exchanges").fetchall()}
    truncated = (
        "coalesce(response_body_truncated, body_truncated, false)"
        if "response_body_truncated" in names
        else "coalesce(body_truncated, false)"
    )
    rows = con.sql(
        f"""
        SELECT side, status, duration_ms, response_headers, response_body, {truncated},
               location
        FROM exchanges WHERE request_id = ? AND side IN ('primary', 'mirror')
        ORDER BY side, location
        """,
        params=[example["request_id"]],
    ).fetchall()
    sides: dict[str, bodies.Side] = {}
    for side, status, duration, headers, body, cut, location in rows:
        if side in sides:  # a duplicate on that side: the first is shown
            continue
        sides[side] = bodies.Side(
            status=status,
            duration_ms=duration,
            headers=_headers(headers),
            body=bytes(body) if body is not None else None,
            truncated=bool(cut),
            location=location,
        )
    refs = [
        bodies.DiffRef(d["part"], d["path"] or "", d["kind"], bool(d["noise"]), d["noise_reason"])
        for d in example["diffs"]
    ]
    return bodies.side_by_side(
        sides.get("primary", bodies.Side()), sides.get("mirror", bodies.Side()), refs
    )


def _headers(value: Sequence[Any] | None) -> list[tuple[str, str]]:
    out = []
    for item in value or ():
        if isinstance(item, dict):
            out.append((str(item.get("name") or ""), str(item.get("value") or "")))
        else:
            name, header_value = item
            out.append((str(name or ""), str(header_value or "")))
    return out


DASH = "—"


def _num(value: int | float | None) -> str:
    if value is None:
        return DASH
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{value:.2%}"


def _pct_change(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:+.2f} pp"


def _trend(value: float | None) -> str:
    if value is None or abs(value) < 1e-12:
        return ""
    return "worse" if value > 0 else "good"


def _times(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}×"


def _fixed(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}"


def _ms(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f}"


def _ms_signed(value: float | None) -> str:
    return DASH if value is None else f"{value:+.1f}"


def _pvalue(value: float | None) -> str:
    if value is None:
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _endpoint(value: str | None) -> str:
    return "(no endpoint)" if value is None else value


def _value(text: str | None) -> str:
    if text is None:
        return "absent"
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"
