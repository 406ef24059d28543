"""A deterministic traffic driver: the same seed sends the same requests, in the same order.

    >>> record = drive("http://127.0.0.1:10000", n=100, seed=7)
    >>> record.ids[:2], record.sent[0].target

Requests go one at a time over one keep-alive connection (reopened after an error), each with
a bounded timeout. Most carry an ``x-request-id`` made from the seed; the rest let Envoy
generate one, which the edge echoes back, so the record always knows every id.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shadowdiff.testing import backends

DEFAULT_AUTHORITY = "app:8080"  # the mirror side sees "app-shadow:8080"
USER_AGENT = "shadowdiff-lab/1.0"
OWN_ID_SHARE = 0.9  # the share of requests that carry the driver's own x-request-id

# Endpoint mix: (weight, kind).
MIX: tuple[tuple[int, str], ...] = (
    (24, "users"),
    (20, "orders"),
    (14, "search"),
    (8, "catalog"),
    (8, "health"),
    (6, "logo"),
    (12, "cart"),
    (5, "report"),
    (3, "not_found"),
)
NOT_FOUND_PATHS = ("/favicon.ico", "/api/v0/users", "/robots.txt")


@dataclass(frozen=True)
class Planned:
    """A request the driver will send; ``request_id`` is ``None`` when Envoy makes one."""

    request: backends.Request
    request_id: str | None


@dataclass(frozen=True)
class Sent:
    """One request as sent, and what the client saw (the primary's answer)."""

    seq: int
    request_id: str
    id_from_client: bool
    method: str
    target: str
    endpoint: str | None  # template, None for paths outside the API
    body: bytes | None
    status: int | None  # None: no answer (see ``error``)
    elapsed_ms: float
    error: str | None = None

    @property
    def request(self) -> backends.Request:
        return backends.Request(self.method, self.target, self.body)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "seq": self.seq,
            "request_id": self.request_id,
            "id_from_client": self.id_from_client,
            "method": self.method,
            "target": self.target,
            "endpoint": self.endpoint,
            "body": None if self.body is None else self.body.decode(),
            "status": self.status,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "planted": [p.id for p in backends.planted_for(self.request)],
        }
        if self.error is not None:
            doc["error"] = self.error
        return doc


@dataclass(frozen=True)
class Record:
    """What the driver sent."""

    seed: int
    authority: str
    sent: tuple[Sent, ...]

    @property
    def ids(self) -> list[str]:
        return [s.request_id for s in self.sent]

    @property
    def errors(self) -> list[Sent]:
        return [s for s in self.sent if s.error is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "authority": self.authority,
            "count": len(self.sent),
            "requests": [s.to_json() for s in self.sent],
        }


def _request(kind: str, rng: random.Random) -> backends.Request:
    if kind == "users":
        uid = rng.randint(1000, 1099) if rng.random() < 0.05 else rng.randint(1, 150)
        return backends.Request("GET", f"/api/users/{uid}")
    if kind == "orders":
        return backends.Request("GET", f"/api/orders/{rng.randint(1, 200)}")
    if kind == "search":
        q, limit = rng.choice(backends.SEARCH_WORDS), rng.choice((3, 5, 10))
        return backends.Request("GET", f"/api/search?q={q}&limit={limit}")
    if kind == "catalog":
        return backends.Request("GET", "/api/catalog")
    if kind == "health":
        return backends.Request("GET", "/api/health")
    if kind == "logo":
        return backends.Request("GET", "/static/logo.png")
    if kind == "cart":
        items = [
            {"sku": rng.choice(backends.SKUS), "qty": rng.randint(1, 4)}
            for _ in range(rng.randint(1, 4))
        ]
        body = json.dumps({"user_id": rng.randint(1, 150), "items": items})
        return backends.Request("POST", "/api/cart", body.encode())
    if kind == "report":
        return backends.Request("GET", "/api/report")
    return backends.Request("GET", rng.choice(NOT_FOUND_PATHS))


def plan(n: int, seed: int = 0, own_id_share: float = OWN_ID_SHARE) -> list[Planned]:
    """The ``n`` requests that ``drive`` sends for ``seed``, without sending them."""
    rng = random.Random(seed)
    weights = [w for w, _ in MIX]
    kinds = [k for _, k in MIX]
    planned = []
    for _ in range(n):
        request = _request(rng.choices(kinds, weights)[0], rng)
        own = rng.random() < own_id_share
        request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        planned.append(Planned(request, request_id if own else None))
    return planned


def drive(
    base_url: str,
    n: int,
    seed: int = 0,
    *,
    authority: str = DEFAULT_AUTHORITY,
    timeout: float = 5.0,
    own_id_share: float = OWN_ID_SHARE,
) -> Record:
    """Send ``plan(n, seed)`` to ``base_url`` (``http://host:port``) with ``Host: authority``."""
    url = urlsplit(base_url)
    if url.scheme != "http" or url.hostname is None or url.port is None:
        raise ValueError(f"Expected http://host:port, got {base_url!r}.")
    host, port = url.hostname, url.port
    connection: http.client.HTTPConnection | None = None
    sent: list[Sent] = []
    try:
        for seq, item in enumerate(plan(n, seed, own_id_share)):
            if connection is None:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            request = item.request
            found = backends.endpoint_of(request.method, request.target)
            headers = {
                "host": authority,
                "user-agent": USER_AGENT,
                "accept-encoding": "gzip",
            }
            if item.request_id is not None:
                headers["x-request-id"] = item.request_id
            if request.body is not None:
                headers["content-type"] = "application/json"
            started = time.perf_counter()
            status: int | None = None
            error: str | None = None
            request_id = item.request_id or ""
            try:
                connection.request(request.method, request.target, request.body, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                echoed = response.getheader("x-request-id") or ""
                if item.request_id is None:
                    request_id = echoed
                elif echoed and echoed != item.request_id:
                    error = f"the edge answered x-request-id {echoed!r}"
            except (OSError, http.client.HTTPException) as e:
                error = f"{type(e).__name__}: {e}"
                connection.close()
                connection = None
            sent.append(
                Sent(
                    seq=seq,
                    request_id=request_id,
                    id_from_client=item.request_id is not None,
                    method=request.method,
                    target=request.target,
                    endpoint=found[0] if found else None,
                    body=request.body,
                    status=status,
                    elapsed_ms=(time.perf_counter() - started) * 1000,
                    error=error,
                )
            )
    finally:
        if connection is not None:
            connection.close()
    return Record(seed, authority, tuple(sent))
