"""Test factories (in the spirit of mitmproxy's ``tflow()``): small exchanges with overrides."""

from __future__ import annotations

from datetime import UTC, datetime
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
