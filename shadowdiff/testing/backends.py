"""The two versions of the lab's backend, and the table of differences planted between them.

Both versions serve the same small JSON API. ``v1`` is the primary, ``v2`` the candidate that
receives the mirrored copy. Every difference between them is declared in ``PLANTED`` (a
difference the tool must find) or ``VOLATILE`` (a field that differs on every response for
reasons unrelated to the version: noise the tool should learn to discount). Anything not
declared in either table is identical, so a test can compute the expected set of differences
for a request exactly with ``planted_for``.

Three more endpoints exist for the noise tests (:data:`NOISE_ENDPOINTS`): their responses are
full of random values (timestamps, UUIDs, hex tokens, random ints and floats, a random header)
and their real differences come at 1%, 10% and 100% of requests, one of them a random field whose
distribution shifts on v2 (:data:`NOISE_PLANTED`). The default traffic mix does not request them,
so the tables above describe it unchanged; the noise tests send their own requests.

Five more (:data:`HARD_NOISE_ENDPOINTS`) carry the noise that real services make and the real
changes that look like it: floating-point jitter (in the 12th significant digit, and a float32
round trip on some responses), ids and counters inside free text, set-like arrays returned in a
random order by every version, an ``etag`` of the body bytes, and endpoints requested only a
handful of times (down to once). Their planted look-alikes: a changed text template, a text slot
that changes systematically, arrays reversed or shuffled where the primary keeps one order, a
number off by one or scaled by 1.1, and a field that changes in 2 of 7 requests.

    >>> with serve("v1") as v1, serve("v2") as v2:
    ...     ...  # v1.port, v2.port on 127.0.0.1

Only the standard library is used: the lab must run wherever the tests run.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import secrets
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

VERSIONS = ("v1", "v2")
API_VERSION_HEADER = "x-api-version"
SEARCH_EXTRA_DELAY_S = 0.025
UNKNOWN_USER_FROM = 1000  # user ids from here on are 404 on both versions


@dataclass(frozen=True)
class Request:
    """What a client sends: enough to tell which planted differences apply."""

    method: str
    target: str  # path and query, as on the request line
    body: bytes | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


# Endpoint templates, in the `[endpoints] templates` syntax: `{name}` is one path segment.
ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("GET", "/api/users/{id}"),
    ("GET", "/api/orders/{id}"),
    ("GET", "/api/search"),
    ("GET", "/api/catalog"),
    ("GET", "/api/health"),
    ("GET", "/static/logo.png"),
    ("POST", "/api/cart"),
    ("GET", "/api/report"),
    ("GET", "/api/metrics/{id}"),
    ("GET", "/api/quotes/{id}"),
    ("GET", "/api/prices/{id}"),
    ("GET", "/api/invoices/{id}"),
    ("GET", "/api/tickets/{id}"),
    ("GET", "/api/admin/{id}"),
    ("GET", "/api/exports/{id}"),
    ("GET", "/api/ping"),
)
# Endpoints for the noise tests: random values everywhere, real differences at known rates.
NOISE_ENDPOINTS = ("/api/metrics/{id}", "/api/quotes/{id}", "/api/prices/{id}")
NOISE_HEADER = "x-backend-nonce"
QUOTA_CUT_EVERY = 100  # /api/metrics/{id}: quota changes on v2 for 1% of ids
REGION_MOVED_EVERY = 10  # /api/metrics/{id}: region changes on v2 for 10% of ids
SCORE_MEAN = {"v1": 100.0, "v2": 115.0}  # /api/quotes/{id}: score ~ N(mean, 15) per response
SCORE_SD = 15.0
# Endpoints for the harder noise tests (realistic noise, look-alike real changes, low volume).
HARD_NOISE_ENDPOINTS = (
    "/api/invoices/{id}",
    "/api/tickets/{id}",
    "/api/admin/{id}",
    "/api/exports/{id}",
    "/api/ping",
)
NOTE_VOIDED_EVERY = 10  # /api/invoices/{id}: the note's template changes for id % 10 == 5
REMINDER_SLOT_EVERY = 10  # /api/invoices/{id}: the reminder names the next invoice, id % 10 == 7
APPROVERS_REVERSED_EVERY = 10  # /api/invoices/{id}: approvers reversed for id % 10 == 1
EXPORT_IDS_CHANGED = (2, 5)  # /api/exports/{id}: the format changes for id % 7 in these


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_]+\})", template)
    pattern = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{pattern}$")


_ENDPOINT_REGEXES = tuple((m, t, _template_regex(t)) for m, t in ENDPOINTS)


def endpoint_of(method: str, target: str) -> tuple[str, dict[str, str]] | None:
    """The endpoint template ``target`` belongs to and its path parameters, or ``None``."""
    path = urlsplit(target).path
    for m, template, regex in _ENDPOINT_REGEXES:
        match = regex.match(path)
        if m == method and match:
            return template, match.groupdict()
    return None


def _int_param(request: Request, name: str) -> int | None:
    found = endpoint_of(request.method, request.target)
    if found is None:
        return None
    value = found[1].get(name, "")
    return int(value) if value.isdigit() else None


def _user_found(request: Request) -> bool:
    uid = _int_param(request, "id")
    return uid is not None and uid < UNKNOWN_USER_FROM


def _order_fails_on_v2(request: Request) -> bool:
    oid = _int_param(request, "id")
    return oid is not None and oid % 7 == 0


def _order_ok_on_v2(request: Request) -> bool:
    oid = _int_param(request, "id")
    return oid is not None and oid % 7 != 0


def _always(request: Request) -> bool:
    return True


def _versioned(request: Request) -> bool:
    """Whether v2 sends its version header: not on health checks nor the noise endpoints."""
    if request.path == "/api/health":
        return False
    found = endpoint_of(request.method, request.target)
    return found is None or found[0] not in (*NOISE_ENDPOINTS, *HARD_NOISE_ENDPOINTS)


def _quota_cut(request: Request) -> bool:
    mid = _int_param(request, "id")
    return mid is not None and mid % QUOTA_CUT_EVERY == 0


def _region_moved(request: Request) -> bool:
    mid = _int_param(request, "id")
    return mid is not None and mid % REGION_MOVED_EVERY == 3


def _every_nth(every: int, remainder: int) -> Callable[[Request], bool]:
    def applies(request: Request) -> bool:
        number = _int_param(request, "id")
        return number is not None and number % every == remainder

    return applies


def _export_changed(request: Request) -> bool:
    number = _int_param(request, "id")
    return number is not None and number % 7 in EXPORT_IDS_CHANGED


@dataclass(frozen=True)
class Planted:
    """One deliberate difference between v1 (primary) and v2 (mirror).

    ``part`` is ``status``, ``header``, ``body`` or ``latency``; ``path`` is the JSON path of a
    body difference (``$`` for the whole document), the header name, or ``""``; ``kind`` uses
    the ``diffs.kind`` vocabulary (plus ``slower`` for latency). ``primary``/``mirror`` are the
    values as JSON (``None``: absent); ``affects`` says in words which requests it touches and
    ``applies`` decides it for one request.
    """

    id: str
    method: str  # "*" for every method
    endpoint: str  # endpoint template, or "*" for every path
    part: str
    kind: str
    path: str
    primary: Any
    mirror: Any
    affects: str
    applies: Callable[[Request], bool] = field(repr=False, compare=False)

    def matches(self, request: Request) -> bool:
        if self.method not in ("*", request.method):
            return False
        if self.endpoint != "*":
            found = endpoint_of(request.method, request.target)
            if found is None or found[0] != self.endpoint:
                return False
        return self.applies(request)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "endpoint": self.endpoint,
            "part": self.part,
            "kind": self.kind,
            "path": self.path,
            "primary": self.primary,
            "mirror": self.mirror,
            "affects": self.affects,
        }


PLANTED: tuple[Planted, ...] = (
    Planted(
        "users-tier-added",
        "GET",
        "/api/users/{id}",
        "body",
        "added",
        "$.tier",
        None,
        "gold if id % 3 == 0 else standard",
        f"every user that exists (id < {UNKNOWN_USER_FROM}); unknown users are 404 on both",
        _user_found,
    ),
    Planted(
        "orders-status-500",
        "GET",
        "/api/orders/{id}",
        "status",
        "changed",
        "",
        200,
        500,
        "id % 7 == 0 (v2 then answers an error document instead of the order)",
        _order_fails_on_v2,
    ),
    Planted(
        "orders-legacy-ref-removed",
        "GET",
        "/api/orders/{id}",
        "body",
        "removed",
        "$.legacy_ref",
        "L<id as 6 digits>",
        None,
        "id % 7 != 0 (the others are 500 on v2)",
        _order_ok_on_v2,
    ),
    Planted(
        "search-slower",
        "GET",
        "/api/search",
        "latency",
        "slower",
        "",
        0,
        round(SEARCH_EXTRA_DELAY_S * 1000),
        "every search: v2 sleeps 25 ms more (duration_ms, not the body)",
        _always,
    ),
    Planted(
        "catalog-order",
        "GET",
        "/api/catalog",
        "body",
        "order",
        "$",
        "sorted by sku",
        "sorted by name",
        "every catalog: the same items in another order",
        _always,
    ),
    Planted(
        "logo-binary",
        "GET",
        "/static/logo.png",
        "body",
        "binary",
        "$",
        "16x16 PNG, blue",
        "16x16 PNG, blue with an orange bar",
        "every logo",
        _always,
    ),
    Planted(
        "cart-total-type",
        "POST",
        "/api/cart",
        "body",
        "type_changed",
        "$.total",
        "number, e.g. 31.5",
        'string with 2 decimals, e.g. "31.50"',
        "every cart",
        _always,
    ),
    Planted(
        "cart-status-changed",
        "POST",
        "/api/cart",
        "body",
        "changed",
        "$.status",
        "open",
        "active",
        "every cart",
        _always,
    ),
    Planted(
        "api-version-header",
        "*",
        "*",
        "header",
        "added",
        API_VERSION_HEADER,
        None,
        "2",
        "every response except GET /api/health and the noise endpoints (also 404s)",
        _versioned,
    ),
)

# Real differences on the noise endpoints (not in PLANTED: the default traffic never reaches
# them). ``planted_for`` covers both tables.
NOISE_PLANTED: tuple[Planted, ...] = (
    Planted(
        "metrics-quota-1pct",
        "GET",
        "/api/metrics/{id}",
        "body",
        "changed",
        "$.quota",
        100,
        50,
        f"id % {QUOTA_CUT_EVERY} == 0 (1% of ids)",
        _quota_cut,
    ),
    Planted(
        "metrics-region-10pct",
        "GET",
        "/api/metrics/{id}",
        "body",
        "changed",
        "$.region",
        "eu-west-1",
        "eu-central-1",
        f"id % {REGION_MOVED_EVERY} == 3 (10% of ids)",
        _region_moved,
    ),
    Planted(
        "quotes-score-shifted",
        "GET",
        "/api/quotes/{id}",
        "body",
        "changed",
        "$.score",
        f"random, normal with mean {SCORE_MEAN['v1']:g} and sd {SCORE_SD:g}",
        f"random, normal with mean {SCORE_MEAN['v2']:g} and sd {SCORE_SD:g}",
        "every quote: random on both sides, but the distribution shifts on v2",
        _always,
    ),
    Planted(
        "prices-amount-units",
        "GET",
        "/api/prices/{id}",
        "body",
        "changed",
        "$.amount",
        "cents, an integer, e.g. 1234",
        "euros, e.g. 12.34 (the same amount / 100)",
        "every price",
        _always,
    ),
    Planted(
        "invoices-note-voided",
        "GET",
        "/api/invoices/{id}",
        "body",
        "changed",
        "$.note",
        "receipt <a random number> issued",
        "receipt <a random number> voided",
        f"id % {NOTE_VOIDED_EVERY} == 5: the text's template changes, not only its number",
        _every_nth(NOTE_VOIDED_EVERY, 5),
    ),
    Planted(
        "invoices-reminder-slot",
        "GET",
        "/api/invoices/{id}",
        "body",
        "changed",
        "$.reminder",
        "reminder <a random number> for invoice <id>",
        "reminder <a random number> for invoice <id + 1>",
        f"id % {REMINDER_SLOT_EVERY} == 7: a slot of the text changes systematically",
        _every_nth(REMINDER_SLOT_EVERY, 7),
    ),
    Planted(
        "invoices-approvers-reversed",
        "GET",
        "/api/invoices/{id}",
        "body",
        "order",
        "$.approvers",
        "in the order of the approver list",
        "reversed",
        f"id % {APPROVERS_REVERSED_EVERY} == 1: one consistent permutation",
        _every_nth(APPROVERS_REVERSED_EVERY, 1),
    ),
    Planted(
        "tickets-sequence-off-by-one",
        "GET",
        "/api/tickets/{id}",
        "body",
        "changed",
        "$.sequence",
        "5000000 + 13 id",
        "5000001 + 13 id (a relative change of 2e-7, but always +1)",
        "every ticket",
        _always,
    ),
    Planted(
        "tickets-eta-scaled",
        "GET",
        "/api/tickets/{id}",
        "body",
        "changed",
        "$.eta_s",
        "30 + 1.5 (id % 50)",
        "1.1 times that",
        "every ticket",
        _always,
    ),
    Planted(
        "tickets-summary-slot",
        "GET",
        "/api/tickets/{id}",
        "body",
        "changed",
        "$.summary",
        "you have <n> open tickets (as of <now>)",
        "you have <n + 1> open tickets (as of <now>)",
        "every ticket: the count inside the text is off by one",
        _always,
    ),
    Planted(
        "tickets-steps-shuffled",
        "GET",
        "/api/tickets/{id}",
        "body",
        "order",
        "$.steps",
        "always open, triage, fix, verify, close",
        "another random order on every response",
        "every ticket: the primary's order is stable, the mirror's is not",
        _always,
    ),
    Planted(
        "tickets-watchers-reversed",
        "GET",
        "/api/tickets/{id}",
        "body",
        "order",
        "$.watchers",
        "in the order of the watcher list",
        "reversed",
        "every ticket",
        _always,
    ),
    Planted(
        "exports-format-2-of-7",
        "GET",
        "/api/exports/{id}",
        "body",
        "changed",
        "$.format",
        "csv",
        "tsv",
        f"id % 7 in {EXPORT_IDS_CHANGED}: 2 of an endpoint requested 7 times",
        _export_changed,
    ),
)


@dataclass(frozen=True)
class Volatile:
    """A value that differs between any two responses, whatever the version: noise."""

    endpoint: str
    part: str
    path: str
    why: str

    def to_json(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "part": self.part, "path": self.path, "why": self.why}


_JSON_OBJECT_ENDPOINTS = ("/api/users/{id}", "/api/orders/{id}", "/api/search", "/api/cart")
VOLATILE: tuple[Volatile, ...] = (
    *(
        Volatile(e, "body", "$.served_at", "server clock, microseconds")
        for e in _JSON_OBJECT_ENDPOINTS
    ),
    *(Volatile(e, "body", "$.trace_id", "random per response") for e in _JSON_OBJECT_ENDPOINTS),
    Volatile("/api/report", "body", "$.generated_at", "server clock, inside the gzip body"),
    *(
        Volatile(e, "body", f"$.{name}", why)
        for e in NOISE_ENDPOINTS
        for name, why in (
            ("served_at", "server clock, microseconds"),
            ("trace_id", "random per response"),
            ("request_uuid", "a UUID 4 per response"),
            ("sample", "a random integer in [0, 1000000]"),
            ("jitter", "a random float in [0, 1)"),
        )
    ),
    *(Volatile(e, "header", NOISE_HEADER, "random hex per response") for e in NOISE_ENDPOINTS),
    *(
        Volatile("/api/invoices/{id}", "body", f"$.{name}", why)
        for name, why in (
            ("lines_total", "line amounts summed in arrival order: the last bits vary"),
            ("fx_total", "float arithmetic: noise in the 12th significant digit"),
            ("weight_kg", "a float32 round trip on some responses (relative error ~1e-8)"),
            ("note", "'receipt <n> issued', n a random number per response"),
            ("unread", "'you have <n> unread messages', n random per response"),
            ("handled", "'request <uuid> handled in <n> ms', both random per response"),
            ("reminder", "'reminder <n> for invoice <id>', n random per response"),
            ("labels", "a set, in a random order on every response"),
        )
    ),
    *(
        Volatile(e, "body", f"$.{name}", why)
        for e in HARD_NOISE_ENDPOINTS
        for name, why in (
            ("served_at", "server clock, microseconds"),
            ("trace_id", "random per response"),
        )
    ),
    *(
        Volatile(e, "body", f"$.{name}", why)
        for e in ("/api/admin/{id}", "/api/exports/{id}")
        for name, why in (
            ("request_uuid", "a UUID 4 per response"),
            ("sample", "a random integer in [0, 1000000]"),
            ("jitter", "a random float in [0, 1)"),
        )
    ),
    *(
        Volatile("/api/tickets/{id}", "body", f"$.{name}", why)
        for name, why in (
            ("weight_kg", "a float32 round trip on some responses (relative error ~1e-8)"),
            ("labels", "a set, in a random order on every response"),
        )
    ),
    *(Volatile(e, "header", NOISE_HEADER, "random hex per response") for e in HARD_NOISE_ENDPOINTS),
    *(
        Volatile(e, "header", "etag", "a hash of the body bytes, which hold noise")
        for e in HARD_NOISE_ENDPOINTS
        if e != "/api/ping"
    ),
    Volatile("*", "header", "date", "server clock (seconds)"),
    Volatile("*", "header", "x-envoy-upstream-service-time", "measured by Envoy"),
)

# Not differences, on purpose: a tool that compares bytes instead of meaning reports them.
NON_DIFFERENCES: tuple[str, ...] = (
    "/api/report is gzip-compressed at level 6 on v1 and level 9 on v2: the compressed bytes "
    "differ, the decoded JSON differs only in the volatile $.generated_at.",
    "/api/health is identical on both versions (body and headers, except the volatile ones).",
    f"/api/users/{{id}} with id >= {UNKNOWN_USER_FROM} is the same 404 on both versions (apart "
    f"from the {API_VERSION_HEADER} header).",
)


def planted_for(request: Request) -> list[Planted]:
    """The planted differences that apply to ``request``, in ``PLANTED`` then
    ``NOISE_PLANTED`` order."""
    return [p for p in (*PLANTED, *NOISE_PLANTED) if p.matches(request)]


# --- content -------------------------------------------------------------------------------

NAMES = ("Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Donald", "Margaret", "Ken")
SKUS = tuple(f"SKU-{n:03d}" for n in range(1, 41))
PRODUCT_NAMES = (
    "anvil", "bolt", "cable", "drill", "epoxy", "funnel", "gasket", "hinge", "inker", "jack",
    "kettle", "lever", "magnet", "nozzle", "oiler", "pulley", "quill", "rivet", "spring", "tongs",
)  # fmt: skip
SEARCH_WORDS = ("bolt", "cable", "drill", "hinge", "magnet", "pulley", "spring", "zzz")


def price_of(sku: str) -> float:
    return round(1.5 + (int(sku[4:]) * 37 % 200) / 4, 2)


def _volatile() -> dict[str, str]:
    return {
        "served_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "trace_id": secrets.token_hex(8),
    }


def _user(uid: int, version: str) -> dict[str, Any]:
    name = NAMES[uid % len(NAMES)]
    doc: dict[str, Any] = {
        "id": uid,
        "name": f"{name} {uid}",
        "email": f"{name.lower()}.{uid}@example.com",
        "created_at": f"2023-{uid % 12 + 1:02d}-{uid % 28 + 1:02d}T08:00:00Z",
        "roles": ["reader", "admin"] if uid % 10 == 0 else ["reader"],
    }
    if version == "v2":
        doc["tier"] = "gold" if uid % 3 == 0 else "standard"
    return doc | _volatile()


def _order(oid: int, version: str) -> tuple[int, dict[str, Any]]:
    if version == "v2" and oid % 7 == 0:
        return 500, {"error": "internal error", "code": "E_ORDER_LOOKUP", **_volatile()}
    skus = [SKUS[(oid * k) % len(SKUS)] for k in range(1, oid % 3 + 2)]
    items: list[dict[str, Any]] = [
        {"sku": sku, "qty": k, "price": price_of(sku)} for k, sku in enumerate(skus, 1)
    ]
    doc: dict[str, Any] = {
        "id": oid,
        "user_id": oid * 7 % 97 + 1,
        "status": ("pending", "shipped", "delivered")[oid % 3],
        "items": items,
        "total": round(sum(i["qty"] * i["price"] for i in items), 2),
        "currency": "EUR",
    }
    if version == "v1":
        doc["legacy_ref"] = f"L{oid:06d}"
    return 200, doc | _volatile()


def _search(query: dict[str, list[str]]) -> dict[str, Any]:
    q = query.get("q", [""])[0]
    limit = int(query.get("limit", ["5"])[0] or 5)
    hits = [
        {"sku": SKUS[i], "name": name, "score": round(1 / (1 + abs(len(name) - len(q))), 3)}
        for i, name in enumerate(PRODUCT_NAMES)
        if q and (q in name or name[0] == q[0])
    ][:limit]
    return {"query": q, "limit": limit, "total": len(hits), "results": hits} | _volatile()


def _catalog(version: str) -> list[dict[str, Any]]:
    items = [
        {
            "sku": SKUS[i],
            "name": PRODUCT_NAMES[(i * 7) % len(PRODUCT_NAMES)],
            "price": price_of(SKUS[i]),
        }
        for i in range(10)
    ]
    key = "sku" if version == "v1" else "name"
    return sorted(items, key=lambda item: str(item[key]))


def _cart(body: bytes, version: str) -> tuple[int, dict[str, Any]]:
    try:
        cart = json.loads(body or b"{}")
        lines: list[dict[str, Any]] = [
            {"sku": str(i["sku"]), "qty": int(i["qty"]), "price": price_of(str(i["sku"]))}
            for i in cart.get("items", [])
        ]
        user_id = int(cart.get("user_id", 0))
    except (ValueError, TypeError, KeyError, AttributeError):
        return 400, {"error": "bad cart", **_volatile()}
    total = round(sum(line["qty"] * line["price"] for line in lines), 2)
    digest = zlib.crc32(json.dumps(cart, sort_keys=True).encode())
    return 200, {
        "cart_id": f"c-{digest:08x}",
        "user_id": user_id,
        "items": lines,
        "total": total if version == "v1" else f"{total:.2f}",
        "currency": "EUR",
        "status": "open" if version == "v1" else "active",
    } | _volatile()


# Not seeded: noise is what differs between any two responses, whatever the version.
_RANDOM = random.SystemRandom()


def _noisy() -> dict[str, Any]:
    """The random fields of the noise endpoints: a timestamp, a hex token, a UUID, an integer
    and a float, all drawn afresh for every response."""
    return _volatile() | {
        "request_uuid": str(uuid.uuid4()),
        "sample": _RANDOM.randint(0, 1_000_000),
        "jitter": round(_RANDOM.random(), 6),
    }


def _metrics(mid: int, version: str) -> dict[str, Any]:
    moved = version == "v2" and mid % REGION_MOVED_EVERY == 3
    cut = version == "v2" and mid % QUOTA_CUT_EVERY == 0
    return {
        "id": mid,
        "region": "eu-central-1" if moved else "eu-west-1",
        "quota": 50 if cut else 100,
        "window_s": 60,
    } | _noisy()


def _quote(qid: int, version: str) -> dict[str, Any]:
    score = round(_RANDOM.gauss(SCORE_MEAN[version], SCORE_SD), 2)
    if version == "v2":
        # Half a cent more: the two sides' random draws can round to the same value (about one
        # pair in 5,000), and the plant says every quote differs.
        score = round(score + 0.005, 3)
    return {"id": qid, "symbol": f"Q{qid % 50:03d}", "score": score} | _noisy()


def _price(pid: int, version: str) -> dict[str, Any]:
    cents = pid * 7919 % 100_000 + 100
    amount: int | float = cents if version == "v1" else cents / 100
    return {"id": pid, "sku": SKUS[pid % len(SKUS)], "amount": amount} | _noisy()


# --- realistic noise (HARD_NOISE_ENDPOINTS) -----------------------------------------------------

LABELS = ("paid", "eu", "priority", "b2b", "net30")
PEOPLE = ("kim", "lee", "ada", "raj", "zoe", "ola")  # in the order every list keeps them
STEPS = ("open", "triage", "fix", "verify", "close")


def _float32(value: float) -> float:
    """``value`` after a round trip through a 32-bit float (some code paths store floats so)."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _sometimes_float32(value: float) -> float:
    return _float32(value) if _RANDOM.random() < 0.5 else value


def _shuffled(items: list[Any]) -> list[Any]:
    return _RANDOM.sample(items, len(items))


def _another_order(items: list[Any]) -> list[Any]:
    """A random order of ``items`` that is not theirs (so every response differs)."""
    while True:
        found = _shuffled(items)
        if found != items:
            return found


def _subset(pool: tuple[str, ...], number: int, least: int) -> list[str]:
    """Some of ``pool`` (at least ``least``, in the pool's order), chosen by ``number``."""
    chosen = [name for k, name in enumerate(pool) if (number >> k) & 1]
    return chosen if len(chosen) >= least else list(pool[: least + number % 2])


def _invoice(iid: int, version: str) -> dict[str, Any]:
    lines = [round(1 + (iid * k * 7919) % 5000 / 100, 2) for k in range(1, iid % 4 + 3)]
    seq, reminder = _RANDOM.randint(1000, 9999), _RANDOM.randint(100, 999)
    voided = version == "v2" and iid % NOTE_VOIDED_EVERY == 5
    invoice = iid + 1 if version == "v2" and iid % REMINDER_SLOT_EVERY == 7 else iid
    approvers = _subset(PEOPLE, iid, 3)
    if version == "v2" and iid % APPROVERS_REVERSED_EVERY == 1:
        approvers.reverse()
    exact = round(sum(lines) * 1.0831, 2)
    return {
        "id": iid,
        "lines_total": sum(_shuffled(lines)),  # float addition is not associative
        "fx_total": exact * (1 + _RANDOM.uniform(-3e-12, 3e-12)),
        "weight_kg": _sometimes_float32(0.25 + (iid * 37 % 400) / 100),
        "note": f"receipt {seq} {'voided' if voided else 'issued'}",
        "unread": f"you have {_RANDOM.randint(0, 60)} unread messages",
        "handled": f"request {uuid.uuid4()} handled in {_RANDOM.randint(2, 250)} ms",
        "reminder": f"reminder {reminder} for invoice {invoice}",
        "labels": _shuffled(_subset(LABELS, iid, 3)),
        "approvers": approvers,
    } | _volatile()


def _ticket(tid: int, version: str) -> dict[str, Any]:
    v2 = version == "v2"
    open_tickets = tid % 90 + 1 + (1 if v2 else 0)
    watchers = _subset(PEOPLE, tid + 7, 3)
    eta = 30 + 1.5 * (tid % 50)
    return {
        "id": tid,
        "sequence": 5_000_000 + 13 * tid + (1 if v2 else 0),
        "eta_s": round(eta * 1.1, 2) if v2 else eta,
        "summary": f"you have {open_tickets} open tickets (as of "
        f"{datetime.now(UTC).isoformat(timespec='microseconds')})",
        "steps": _another_order(list(STEPS)) if v2 else list(STEPS),
        "watchers": watchers[::-1] if v2 else watchers,
        "weight_kg": _sometimes_float32(0.5 + (tid * 53 % 300) / 100),
        "labels": _shuffled(_subset(LABELS, tid, 3)),
    } | _volatile()


def _admin(aid: int, version: str) -> dict[str, Any]:
    return {"id": aid, "role": "admin"} | _noisy()


def _export(eid: int, version: str) -> dict[str, Any]:
    changed = version == "v2" and eid % 7 in EXPORT_IDS_CHANGED
    return {"id": eid, "format": "tsv" if changed else "csv"} | _noisy()


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest()[:20] + '"'


def _hard(template: str, number: int, version: str) -> Response:
    """A response of the harder noise endpoints: a random header, and an etag of the body."""
    if template == "/api/ping":
        response = _json(200, {"status": "ok", "served_at": _volatile()["served_at"]})
    else:
        make = {
            "/api/invoices/{id}": _invoice,
            "/api/tickets/{id}": _ticket,
            "/api/admin/{id}": _admin,
            "/api/exports/{id}": _export,
        }[template]
        response = _json(200, make(number, version))
        response.headers.append(("etag", _etag(response.body)))
    response.headers.append((NOISE_HEADER, secrets.token_hex(8)))
    return response


def _report(version: str) -> bytes:
    rows = [
        {"day": f"2024-03-{d:02d}", "requests": 1000 + d * 37, "errors": d % 4, "p99_ms": 40 + d}
        for d in range(1, 21)
    ]
    doc = {"period": "2024-03", "rows": rows, "generated_at": datetime.now(UTC).isoformat()}
    level = 6 if version == "v1" else 9
    return gzip.compress(json.dumps(doc).encode(), compresslevel=level, mtime=0)


def _png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


LOGOS = {
    "v1": _png(16, 16, lambda x, y: (0x22, 0x55, 0xCC)),
    "v2": _png(16, 16, lambda x, y: (0xEE, 0x88, 0x11) if 6 <= y < 10 else (0x22, 0x55, 0xCC)),
}


# --- server --------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0  # > 0: send with Transfer-Encoding: chunked, in this many pieces


def _json(status: int, doc: Any) -> Response:
    return Response(status, json.dumps(doc, separators=(",", ":")).encode())


def respond(version: str, request: Request) -> Response:
    """What ``version`` answers to ``request``: the whole behaviour of the backend, without I/O
    (the added latency of ``/api/search`` on v2 is applied by the server)."""
    found = endpoint_of(request.method, request.target)
    if found is None:
        response = _json(404, {"error": "not found", "path": request.path})
    else:
        template, params = found
        if template == "/api/users/{id}":
            uid = int(params["id"]) if params["id"].isdigit() else UNKNOWN_USER_FROM
            if uid >= UNKNOWN_USER_FROM:
                response = _json(404, {"error": "no such user", "id": params["id"]})
            else:
                response = _json(200, _user(uid, version))
        elif template == "/api/orders/{id}":
            if not params["id"].isdigit():
                response = _json(400, {"error": "bad order id"})
            else:
                response = _json(*_order(int(params["id"]), version))
        elif template == "/api/search":
            response = _json(200, _search(request.query))
        elif template == "/api/catalog":
            response = _json(200, _catalog(version))
        elif template == "/api/health":
            response = _json(200, {"status": "ok"})
        elif template == "/static/logo.png":
            response = Response(200, LOGOS[version], "image/png")
        elif template == "/api/cart":
            response = _json(*_cart(request.body or b"", version))
        elif template in NOISE_ENDPOINTS:
            number = int(params["id"]) if params["id"].isdigit() else 0
            make = {
                "/api/metrics/{id}": _metrics,
                "/api/quotes/{id}": _quote,
                "/api/prices/{id}": _price,
            }[template]
            response = _json(200, make(number, version))
            response.headers.append((NOISE_HEADER, secrets.token_hex(8)))
        elif template in HARD_NOISE_ENDPOINTS:
            number = int(params.get("id", "0")) if params.get("id", "0").isdigit() else 0
            response = _hard(template, number, version)
        else:  # /api/report
            response = Response(
                200, _report(version), headers=[("content-encoding", "gzip")], chunks=3
            )
    if version == "v2" and _versioned(request):
        response.headers.append((API_VERSION_HEADER, "2"))
    return response


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses, as Envoy expects
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # Envoy's delayed ACK hold the body back ~40 ms, which would drown the planted latency.
    disable_nagle_algorithm = True
    server_version = "lab-backend"
    sys_version = ""
    version = "v1"  # set per server class

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        request = Request(self.command, self.path, body)
        response = respond(self.version, request)
        if self.version == "v2" and request.path == "/api/search":
            time.sleep(SEARCH_EXTRA_DELAY_S)
        self.send_response(response.status)
        self.send_header("content-type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.chunks:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            size = -(-len(response.body) // response.chunks)
            for start in range(0, len(response.body), size):
                piece = response.body[start : start + size]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # Envoy's access logs are the record; stderr stays quiet


@dataclass
class Backend:
    """A running backend: ``version`` served on 127.0.0.1:``port`` by a thread."""

    version: str
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self, timeout: float = 5.0) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout)


def start(version: str, host: str = "127.0.0.1") -> Backend:
    """Start ``version`` (``v1`` or ``v2``) on a free port of ``host``, in a daemon thread."""
    if version not in VERSIONS:
        raise ValueError(f"Unknown backend version {version!r}; expected one of {VERSIONS}.")
    handler = type(f"Handler_{version}", (_Handler,), {"version": version})
    server = ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"backend-{version}"
    )
    thread.daemon = True
    thread.start()
    return Backend(version, server, thread)


@contextmanager
def serve(version: str) -> Iterator[Backend]:
    backend = start(version)
    try:
        yield backend
    finally:
        backend.stop()
