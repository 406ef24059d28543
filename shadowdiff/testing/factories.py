"""Test factories (in the spirit of mitmproxy's ``tflow()``): small exchanges with overrides."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from shadowdiff import schema

T0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)


def texchange(**overrides: Any) -> dict[str, Any]:
    """One exchange row (a dict of ``schema.EXCHANGES`` columns), primary side by default."""
    row: dict[str, Any] = {
        "request_id": "req-1",
        "side": "primary",
        "source": "test",
        "location": "test.log:1",
        "start_time": T0,
        "duration_ms": 10.0,
        "method": "GET",
        "authority": "app:8080",
        "path": "/api/users/1",
        "status": 200,
    }
    row.update(overrides)
    return row


def tpair(request_id: str, **mirror_overrides: Any) -> list[dict[str, Any]]:
    """A primary row and its mirror copy (authority with ``-shadow``), mirror fields overridden."""
    primary = texchange(request_id=request_id)
    mirror = texchange(request_id=request_id, side="mirror", authority="app-shadow:8080")
    mirror.update(mirror_overrides)
    return [primary, mirror]


def ttable(rows: list[dict[str, Any]]) -> pa.Table:
    """An exchanges table from rows; extra keys become extra string columns."""
    extras = sorted({k for r in rows for k in r} - set(schema.EXCHANGE_COLUMNS))
    fields = list(schema.EXCHANGES) + [pa.field(k, pa.string()) for k in extras]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def ttap(
    request_id: str,
    path: str = "/api/items/1",
    status: int = 200,
    body: bytes = b'{"ok": true}',
    at: str = "2026-11-28T10:00:00.000Z",
) -> dict[str, Any]:
    """A buffered Envoy tap trace (``JSON_BODY_AS_BYTES``) of one GET exchange."""

    def headers(*pairs: tuple[str, str]) -> list[dict[str, str]]:
        return [{"key": k, "value": v} for k, v in pairs]

    return {
        "http_buffered_trace": {
            "request": {
                "headers": headers(
                    (":authority", "app:8080"),
                    (":path", path),
                    (":method", "GET"),
                    ("x-request-id", request_id),
                ),
                "headers_received_time": at,
            },
            "response": {
                "headers": headers((":status", str(status)), ("content-type", "application/json")),
                "body": {"as_bytes": base64.b64encode(body).decode(), "truncated": False},
                "headers_received_time": at.replace("00.000Z", "00.012Z"),
            },
        }
    }


def write_taps(folder: Path, traces: list[dict[str, Any]]) -> list[Path]:
    """One pretty-printed file per trace in ``folder``, as Envoy's ``file_per_tap`` sink
    writes them (``tap_<n>.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, trace in enumerate(traces):
        path = folder / f"tap_{number:07d}.json"
        path.write_text(json.dumps(trace, indent=1))
        paths.append(path)
    return paths
