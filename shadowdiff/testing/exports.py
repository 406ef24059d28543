"""The lab's mirrored traffic as other tools record it: HAR files (one per side, as a browser's
devtools or mitmproxy export them) and a GoReplay ``.gor`` file of requests with the original
(type 2) and replayed (type 3) responses.

Made from the Envoy tap traces the lab writes (read with the ``envoy-tap`` collector), so the
same planted differences can be looked for in every source.

    har(lab_run.primary.taps_dir, out / "primary.har")
    gor(lab_run.primary.taps_dir, lab_run.mirror.taps_dir, out / "window.gor")
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from shadowdiff.collect.base import Input, Options
from shadowdiff.collect.envoy_tap import COLLECTOR as TAPS
from shadowdiff.diff.decode import decode

SEPARATOR = "\n🐵🙈🙉\n"


def exchanges(taps_dir: Path) -> list[dict[str, Any]]:
    """The exchanges of a directory of tap files, in start-time order."""
    tables = [
        batch.exchanges
        for batch in TAPS.read_many(
            [Input(p) for p in sorted(taps_dir.iterdir()) if p.is_file()], Options()
        )
    ]
    rows = pa.concat_tables(tables, promote_options="permissive").to_pylist()
    return sorted(rows, key=lambda r: (r["start_time"], r["request_id"] or ""))


def har(taps_dir: Path, out: Path, request_ids: bool = True) -> Path:
    """A HAR 1.2 file of the exchanges in ``taps_dir``; ``request_ids=False`` leaves the
    ``x-request-id`` header out, as a browser's export of an app without one would be."""
    entries = [_entry(row, request_ids) for row in exchanges(taps_dir)]
    document = {
        "log": {"version": "1.2", "creator": {"name": "shadowdiff lab"}, "entries": entries}
    }
    out.write_text(json.dumps(document, indent=2))
    return out


def _headers(items: list[dict[str, str]] | None, drop: set[str]) -> list[dict[str, str]]:
    return [
        {"name": h["name"], "value": h["value"]}
        for h in items or []
        if h["name"].lower() not in drop
    ]


def _header(items: list[dict[str, str]] | None, name: str) -> str | None:
    return next((h["value"] for h in reversed(items or []) if h["name"].lower() == name), None)


def _entry(row: dict[str, Any], request_ids: bool) -> dict[str, Any]:
    drop = set() if request_ids else {"x-request-id"}
    request_headers = _headers(row["request_headers"], drop)
    response_headers = row["response_headers"] or []
    body = row["response_body"] or b""
    encoding = _header(response_headers, "content-encoding")
    if encoding:  # devtools show bodies decoded, the header as it came
        body = decode(body, encoding, 64 * 1024 * 1024).data
    started = row["start_time"].isoformat().replace("+00:00", "Z")
    request: dict[str, Any] = {
        "method": row["method"],
        "url": f"http://{row['authority']}{row['path']}",
        "httpVersion": "HTTP/1.1",
        "headers": request_headers,
        "queryString": [],
        "headersSize": -1,
        "bodySize": len(row["request_body"] or b""),
    }
    if row["request_body"]:
        request["postData"] = {
            "mimeType": _header(row["request_headers"], "content-type") or "",
            "text": row["request_body"].decode("utf-8", errors="replace"),
        }
    return {
        "startedDateTime": started,
        "time": row["duration_ms"] or 0,
        "request": request,
        "response": {
            "status": row["status"],
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "headers": _headers(response_headers, set()),
            "content": {
                "size": len(body),
                "mimeType": _header(response_headers, "content-type") or "",
                "text": base64.b64encode(body).decode(),
                "encoding": "base64",
            },
            "headersSize": -1,
            "bodySize": len(row["response_body"] or b""),
        },
        "timings": {"send": 0, "wait": row["duration_ms"] or 0, "receive": 0},
    }


def gor(primary_taps: Path, mirror_taps: Path, out: Path) -> Path:
    """A ``.gor`` file: each primary request (type 1), the primary's answer (type 2) and the
    mirror's (type 3, as ``--output-http-track-response`` records a replay)."""
    mirror = {row["request_id"]: row for row in exchanges(mirror_taps)}
    with open(out, "wb") as f:
        for number, row in enumerate(exchanges(primary_taps)):
            gor_id = f"{number + 1:024x}"
            ns = int(row["start_time"].timestamp() * 1e9)
            f.write(_payload(1, gor_id, ns, None, _request_bytes(row)))
            latency = int((row["duration_ms"] or 0) * 1e6)
            f.write(_payload(2, gor_id, ns, latency, _response_bytes(row)))
            answer = mirror.get(row["request_id"])
            if answer is not None:
                latency = int((answer["duration_ms"] or 0) * 1e6)
                f.write(_payload(3, gor_id, ns, latency, _response_bytes(answer)))
    return out


def _payload(kind: int, gor_id: str, ns: int, latency: int | None, message: bytes) -> bytes:
    head = f"{kind} {gor_id} {ns}" + ("" if latency is None else f" {latency}")
    return head.encode() + b"\n" + message + SEPARATOR.encode()


def _request_bytes(row: dict[str, Any]) -> bytes:
    lines = [f"{row['method']} {row['path']} HTTP/1.1", f"Host: {row['authority']}"]
    lines += [
        f"{h['name']}: {h['value']}"
        for h in row["request_headers"] or []
        if not h["name"].startswith(":") and h["name"].lower() != "host"
    ]
    body = row["request_body"] or b""
    if body and _header(row["request_headers"], "content-length") is None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _response_bytes(row: dict[str, Any]) -> bytes:
    body = row["response_body"] or b""
    lines = [f"HTTP/1.1 {row['status']} X"]
    lines += [
        f"{h['name']}: {h['value']}"
        for h in row["response_headers"] or []
        if not h["name"].startswith(":")
        and h["name"].lower() not in ("content-length", "transfer-encoding")
    ]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
