"""Run directories built by hand with ``shadowdiff.store``, for the report tests.

``hostile_run`` has everything a report shows: diverged, noise-only and matching pairs, orphans,
a reject, header and body diffs (real and noise), a ``pairs.note`` column (as the bodies work
adds), gzip and binary bodies, and captured content that tries to run script in a browser
(``XSS_*``): in a body, a header value, a diff value and the request path itself.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from shadowdiff import schema, store
from shadowdiff.testing.factories import T0

# Payloads that change the page if they ever run: the title, and an attribute on <body>.
XSS_SCRIPT = "<script>document.title='PWNED';document.body.setAttribute('data-pwned','1')</script>"
XSS_IMG = "<img src=x onerror=\"document.title='PWNED';document.body.dataset.pwned='img'\">"
XSS_PATH = "/api/echo/<svg onload=alert(1)>"
XSS_ID = "xss-1"
ITEMS = "GET /api/items/{id}"


@dataclass
class PairSpec:
    request_id: str
    endpoint: str
    outcome: str = "match"
    primary_ms: float | None = 10.0
    mirror_ms: float | None = 10.0
    primary_status: int = 200
    mirror_status: int = 200
    path: str | None = None
    primary_body: bytes | None = None
    mirror_body: bytes | None = None
    primary_headers: list[tuple[str, str]] = field(default_factory=list)
    mirror_headers: list[tuple[str, str]] = field(default_factory=list)
    diffs: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None


def diff(part: str, path: str, kind: str, p: Any, m: Any, noise: str | None = None) -> dict:
    pattern = path if part != "body" else path.replace("[0]", "[*]")
    return {
        "part": part,
        "path": path,
        "pattern": pattern,
        "kind": kind,
        "primary_value": None if p is None else json.dumps(p),
        "mirror_value": None if m is None else json.dumps(m),
        "noise": noise is not None,
        "noise_reason": noise,
    }


def write_run(
    out: Path,
    specs: list[PairSpec],
    *,
    rejects: int = 0,
    noise_rows: list[dict[str, Any]] | None = None,
    note_column: bool = True,
    check: dict[str, Any] | None = None,
) -> Path:
    """A complete run directory for ``specs`` (exchanges, pairs, diffs, latency, noise,
    rejects, manifest)."""
    store.begin(out)
    exchanges, pairs, diffs = [], [], []
    for n, s in enumerate(specs):
        method, _, template = s.endpoint.partition(" ")
        path = s.path or template.replace("{id}", str(n))
        sides = []
        if s.outcome != "mirror_only":
            sides.append(
                ("primary", s.primary_status, s.primary_ms, s.primary_body, s.primary_headers)
            )
        if s.outcome != "primary_only":
            sides.append(("mirror", s.mirror_status, s.mirror_ms, s.mirror_body, s.mirror_headers))
        for side, status, ms, body, headers in sides:
            exchanges.append(
                {
                    "request_id": s.request_id,
                    "side": side,
                    "source": "test",
                    "location": f"{side}.log:{n + 1}",
                    "start_time": T0 + timedelta(milliseconds=10 * n),
                    "duration_ms": ms,
                    "method": method,
                    "authority": "app:8080" if side == "primary" else "app-shadow:8080",
                    "path": path,
                    "endpoint": s.endpoint,
                    "status": status,
                    "response_headers": [{"name": k, "value": v} for k, v in headers],
                    "response_body": body,
                }
            )
        paired = s.outcome not in ("primary_only", "mirror_only")
        real = [d for d in s.diffs if not d["noise"]]
        row = {
            "request_id": s.request_id,
            "endpoint": s.endpoint,
            "method": method,
            "path": path,
            "outcome": s.outcome,
            "primary_status": s.primary_status if s.outcome != "mirror_only" else None,
            "mirror_status": s.mirror_status if s.outcome != "primary_only" else None,
            "primary_duration_ms": s.primary_ms if s.outcome != "mirror_only" else None,
            "mirror_duration_ms": s.mirror_ms if s.outcome != "primary_only" else None,
            "latency_delta_ms": (s.mirror_ms - s.primary_ms)
            if paired and s.mirror_ms is not None and s.primary_ms is not None
            else None,
            "status_diverged": any(d["part"] == "status" for d in real) if paired else None,
            "headers_diverged": any(d["part"] == "header" for d in real) if paired else None,
            "body_diverged": any(d["part"] == "body" for d in real) if paired else None,
            "n_diffs": len(s.diffs) if paired else None,
            "signature": "sig-" + "-".join(sorted({d["pattern"] for d in real})) if real else None,
        }
        if note_column:
            row["note"] = s.note
        pairs.append(row)
        for d in s.diffs:
            diffs.append({"request_id": s.request_id, "endpoint": s.endpoint, **d})
    store.write_table(out, "exchanges", _exchanges(exchanges))
    # pairs.note is in the schema since the bodies work; runs written before it have none.
    pairs_table = schema.conform(pa.Table.from_pylist(pairs), schema.PAIRS)
    has_note = "note" in pairs_table.column_names
    if note_column and not has_note:
        notes = pa.array([p["note"] for p in pairs], pa.string())
        _write_raw(out, "pairs", pairs_table.append_column("note", notes))
    elif not note_column and has_note:
        _write_raw(out, "pairs", pairs_table.drop_columns(["note"]))
    else:
        store.write_table(out, "pairs", pairs_table)
    store.write_table(out, "diffs", pa.Table.from_pylist(diffs, schema.DIFFS))
    store.write_table(out, "latency", schema.empty(schema.LATENCY))
    store.write_table(out, "noise", pa.Table.from_pylist(noise_rows or [], schema.NOISE))
    reject_rows = [
        {
            "source": "primary.log",
            "side": "primary",
            "location": f"primary.log:{900 + i}",
            "reason": "not an access-log line",
            "excerpt": "garbage <b>bold</b>",
        }
        for i in range(rejects)
    ]
    store.write_table(out, "rejects", pa.Table.from_pylist(reject_rows, schema.REJECTS))
    outcomes = {name: 0 for name in schema.OUTCOMES}
    for s in specs:
        outcomes[s.outcome] += 1
    per_side = {
        side: sum(
            1
            for s in specs
            if s.outcome not in (("mirror_only",) if side == "primary" else ("primary_only",))
        )
        for side in ("primary", "mirror")
    }
    conservation = {
        "primary": {
            "read": per_side["primary"] + rejects,
            "paired": per_side["primary"] - outcomes["primary_only"],
            "orphaned": outcomes["primary_only"],
            "duplicates": 0,
            "rejected": rejects,
        },
        "mirror": {
            "read": per_side["mirror"],
            "paired": per_side["mirror"] - outcomes["mirror_only"],
            "orphaned": outcomes["mirror_only"],
            "duplicates": 0,
            "rejected": 0,
        },
        "secondary": {"read": 0, "paired": 0, "orphaned": 0, "duplicates": 0, "rejected": 0},
    }
    store.finish(
        out,
        {
            "tool": "shadowdiff",
            "version": "test",
            "schema_version": schema.SCHEMA_VERSION,
            "started_at": T0.isoformat(),
            "finished_at": T0.isoformat(),
            "config": {"extra": {"check": check} if check else {}},
            "inputs": [
                {
                    "path": "primary.log",
                    "side": "primary",
                    "source": "test",
                    "size": 1,
                    "records": per_side["primary"] + rejects,
                    "rejected": rejects,
                    "sha256": "ab" * 32,
                },
                {
                    "path": "mirror.log",
                    "side": "mirror",
                    "source": "test",
                    "size": 1,
                    "records": per_side["mirror"],
                    "rejected": 0,
                    "sha256": "cd" * 32,
                },
            ],
            "conservation": conservation,
            "pairs": len(specs),
            "outcomes": outcomes,
            "rejects": rejects,
        },
    )
    return out


def _exchanges(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema.EXCHANGES)


def _write_raw(out: Path, name: str, table: pa.Table) -> None:
    """Write a table with columns beyond the current schema (what a newer engine writes)."""
    import pyarrow.parquet as pq

    pq.write_table(table, out / f"{name}.parquet")


def items_specs(
    n: int = 40,
    *,
    slowdown: float = 2.0,
    diverged: int = 10,
    noise_only: int = 5,
    price: tuple[float, float] = (9.5, 10.5),
    seed: int = 3,
    prefix: str = "item",
) -> list[PairSpec]:
    """``n`` pairs of ITEMS: ``diverged`` with a changed ``$.price``, ``noise_only`` differing in
    the ``date`` header only; the mirror ``slowdown`` × slower."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        primary_ms = float(np.round(rng.lognormal(3, 0.3), 1))
        mirror_ms = float(np.round(primary_ms * slowdown * rng.lognormal(0, 0.05), 1))
        body = {"id": i, "price": price[0], "tags": ["a", "b"]}
        s = PairSpec(f"{prefix}-{i:03d}", ITEMS, primary_ms=primary_ms, mirror_ms=mirror_ms)
        s.primary_headers = [("content-type", "application/json"), ("date", "Mon")]
        s.mirror_headers = [("content-type", "application/json"), ("date", "Mon")]
        s.primary_body = json.dumps(body).encode()
        s.mirror_body = s.primary_body
        if i < diverged:
            s.outcome = "diverged"
            s.mirror_body = json.dumps({**body, "price": price[1]}).encode()
            s.diffs = [diff("body", "$.price", "changed", price[0], price[1])]
        elif i < diverged + noise_only:
            s.outcome = "noise_only"
            s.mirror_headers = [("content-type", "application/json"), ("date", "Tue")]
            s.diffs = [diff("header", "date", "changed", "Mon", "Tue", noise="ignored header")]
        specs.append(s)
    return specs


def hostile_specs() -> list[PairSpec]:
    specs = items_specs()
    payload = {"name": XSS_SCRIPT, "img": XSS_IMG, "n": 1}
    xss = PairSpec(
        XSS_ID,
        "GET /api/echo/{id}",
        outcome="diverged",
        path=XSS_PATH,
        primary_body=gzip.compress(json.dumps({"name": "ok", "img": "ok", "n": 1}).encode()),
        mirror_body=gzip.compress(json.dumps(payload).encode()),
        primary_headers=[("content-type", "application/json"), ("content-encoding", "gzip")],
        mirror_headers=[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("x-debug", XSS_IMG),
        ],
        diffs=[
            diff("body", "$.name", "changed", "ok", XSS_SCRIPT),
            diff("body", "$.img", "changed", "ok", XSS_IMG),
            diff("header", "x-debug", "added", None, XSS_IMG),
        ],
    )
    binary = PairSpec(
        "bin-1",
        "GET /static/logo.png",
        outcome="diverged",
        primary_status=200,
        mirror_status=404,
        primary_body=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(200)),
        mirror_body=b"not found",
        primary_headers=[("content-type", "image/png")],
        mirror_headers=[("content-type", "text/plain")],
        diffs=[diff("status", "status", "changed", 200, 404)],
        note="mirror body is text, primary binary",
    )
    orphans = [
        PairSpec("orphan-1", ITEMS, outcome="primary_only", mirror_ms=None),
        PairSpec("orphan-2", ITEMS, outcome="primary_only", mirror_ms=None),
    ]
    return [*specs, xss, binary, *orphans]
