"""Noise benchmark: precision and recall of the ``diverged`` outcome on a corpus with known truth.

Run it with ``python benchmarks/noise.py`` (``--requests N`` per corpus, ``--seed S``). For each
of two corpora, ``basic`` and ``hard``, it writes Envoy tap output (``JSON_BODY_AS_STRING``, one
file of concatenated traces per side) for three sides: the primary (v1), the mirror (v2) and a
secondary (a second v1), every side drawing its own random values. Then it runs shadowdiff twice
per corpus, with no rules file: primary + mirror + secondary (the baseline method) and primary +
mirror alone (volatile detection), and scores each run's pairs against the truth: a pair is
truly diverged when a planted real difference applies to its request.

The basic corpus. Planted real differences (v2 only):

- ``GET /api/feed/{id}``: ``$.limit`` 20 → 25 for 1% of ids;
- ``GET /api/items/{id}``: ``$.category`` tools → hardware for 10% of ids, and an
  ``x-cache`` header added for another 10%;
- ``GET /api/prices/{id}``: ``$.price`` rounded to a whole number (100%: the mirror follows
  the primary, closely);
- ``GET /api/scores/{id}``: ``$.score`` random on every side, normal with mean 50 on v1 and 55
  on v2 (sd 10): a shifted distribution (100%).

Planted noise, on every side: ISO timestamps (µs), hex trace ids, UUIDs, random integers and
floats, a random header; on ``GET /api/status/{id}`` also epoch-millisecond clocks, an HTTP date
with one-second resolution from clocks that are skewed per instance (so it differs in a
fraction of pairs only, more often on the mirror than on the secondary), log-normal
``took_ms`` and base64 session tokens. ``GET /api/admin/{id}`` gets a handful of requests with
noise only (judged by the exact small-sample rule with a secondary, by the other endpoints'
verdicts without one). ``GET /api/health`` never differs.

The hard corpus: the noise that real services make, and real changes that look like it.

- ``GET /api/invoices/{id}``: floats summed in arrival order (the last bits vary) and converted
  with noise in the 12th digit (both within the default ``float_relative``), a weight that goes
  through float32 on half the responses (a relative error of ~1e-8, beyond it), counters and
  ids inside text (``"receipt <n> issued"``, ``"you have <n> unread messages"``, ``"request
  <uuid> handled in <n> ms"``, ``"reminder <n> for invoice <id>"``), labels in random order
  (a set), an etag of the body; real for 10% each: the approvers reversed, the note's template
  changed (``issued`` → ``voided``), the reminder naming the next invoice (a slot off by one);
- ``GET /api/tickets/{id}``: every ticket real, by look-alikes: a sequence number off by one
  (a relative change of 2e-7), an ETA times 1.1, a count in text off by one next to a clock,
  steps the primary always sends in one order shuffled, watchers reversed;
- ``GET /api/rates/{id}``: a rate within ~1e-8 of the primary's on every response (float noise
  beyond the default tolerance), the fee times 1.1 for 5% of ids;
- ``GET /api/jobs/{id}``: a text body with a job number and a worker id in it, a changed status
  line for 4% of ids;
- ``GET /api/feed/{id}`` as above; ``GET /api/health``, never different;
- low-volume endpoints: ``GET /api/admin/{id}`` (6 requests) and ``GET /api/audit/{id}`` (3),
  noise only; ``GET /api/exports/{id}`` (7), whose format changes in 2 of them; ``GET
  /api/ping`` (once), a timestamp.

It prints a markdown section (machine, command, numbers) for BENCHMARKS.md; ``--write`` also
replaces that section in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import random
import shutil
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.record import machine  # noqa: E402

SIDES = {"primary": "v1", "mirror": "v2", "secondary": "v1"}
# Per-instance clock skew (seconds): the HTTP date of /api/status/{id} crosses a second
# boundary between two instances in about |skew| of the requests.
SKEW_S = {"primary": 0.0, "mirror": 0.30, "secondary": 0.12}
START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
SPACING_MS = 3.0  # between requests
MIX: tuple[tuple[str, float], ...] = (
    ("/api/feed/{id}", 0.30),
    ("/api/items/{id}", 0.25),
    ("/api/prices/{id}", 0.10),
    ("/api/scores/{id}", 0.10),
    ("/api/status/{id}", 0.16),
    ("/api/health", 0.0888),
    ("/api/admin/{id}", 0.0012),
)
TARGETS = {"with secondary": (1.0, 0.99), "without secondary": (1.0, 0.95)}


@dataclass(frozen=True)
class Request:
    seq: int
    request_id: str
    template: str
    number: int
    at: datetime

    @property
    def path(self) -> str:
        return self.template.replace("{id}", str(self.number))


@dataclass(frozen=True)
class Response:
    """An answer: a JSON document (or, with ``text``, a text/plain body), extra headers, and
    ``etag``: send an etag of the body bytes."""

    status: int
    doc: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()
    text: str | None = None
    etag: bool = False

    def body(self) -> tuple[str, str]:
        """The body and its content type."""
        if self.text is not None:
            return self.text, "text/plain; charset=utf-8"
        return json.dumps(self.doc, separators=(",", ":")), "application/json"


@dataclass(frozen=True)
class Truth:
    """The request ids sent and those a planted real difference applies to."""

    ids: tuple[str, ...]
    real: frozenset[str]
    endpoints: dict[str, str]  # request id → endpoint template


# --- what each version answers ------------------------------------------------------------------


def _noisy(request: Request, side: str, rng: random.Random) -> dict[str, Any]:
    served = request.at + timedelta(milliseconds=rng.uniform(0.2, 4.0))
    return {
        "served_at": served.isoformat(timespec="microseconds"),
        "trace_id": f"{rng.getrandbits(64):016x}",
        "request_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "sample": rng.randint(0, 1_000_000),
        "jitter": round(rng.random(), 6),
    }


def _nonce(rng: random.Random) -> tuple[str, str]:
    return ("x-request-nonce", f"{rng.getrandbits(64):016x}")


def _feed(r: Request, side: str, rng: random.Random) -> Response:
    cut = SIDES[side] == "v2" and r.number % 100 == 0
    doc = {"id": r.number, "limit": 25 if cut else 20, "tags": ["a", "b"], **_noisy(r, side, rng)}
    return Response(200, doc, (_nonce(rng),))


def _items(r: Request, side: str, rng: random.Random) -> Response:
    v2 = SIDES[side] == "v2"
    moved = v2 and r.number % 10 == 3
    doc = {"id": r.number, "category": "hardware" if moved else "tools", **_noisy(r, side, rng)}
    headers = [_nonce(rng)]
    if v2 and r.number % 10 == 7:
        headers.append(("x-cache", "MISS"))
    return Response(200, doc, tuple(headers))


def _price(number: int) -> float:
    return round(1 + (number * 7919 % 100_000) / 100, 2)


def _prices(r: Request, side: str, rng: random.Random) -> Response:
    price: float = _price(r.number)
    if SIDES[side] == "v2":
        price = float(round(price))
    doc = {"id": r.number, "price": price, "currency": "EUR", **_noisy(r, side, rng)}
    return Response(200, doc, (_nonce(rng),))


def _scores(r: Request, side: str, rng: random.Random) -> Response:
    mean = 55.0 if SIDES[side] == "v2" else 50.0
    doc = {"id": r.number, "score": round(rng.gauss(mean, 10.0), 3), **_noisy(r, side, rng)}
    return Response(200, doc, (_nonce(rng),))


def _status(r: Request, side: str, rng: random.Random) -> Response:
    clock = r.at + timedelta(seconds=SKEW_S[side], milliseconds=rng.uniform(0.2, 4.0))
    token = base64.urlsafe_b64encode(rng.getrandbits(128).to_bytes(16, "big")).decode()
    doc = {
        "id": r.number,
        "ts_ms": int(clock.timestamp() * 1000),
        "generated": format_datetime(clock.replace(microsecond=0), usegmt=True),
        "took_ms": int(rng.lognormvariate(3.0, 0.5)),
        "session": token.rstrip("="),
        "state": "up",
    }
    return Response(200, doc)


def _health(r: Request, side: str, rng: random.Random) -> Response:
    return Response(200, {"status": "ok"})


def _admin(r: Request, side: str, rng: random.Random) -> Response:
    return Response(200, {"id": r.number, "role": "admin", **_noisy(r, side, rng)})


ANSWER: dict[str, Callable[[Request, str, random.Random], Response]] = {
    "/api/feed/{id}": _feed,
    "/api/items/{id}": _items,
    "/api/prices/{id}": _prices,
    "/api/scores/{id}": _scores,
    "/api/status/{id}": _status,
    "/api/health": _health,
    "/api/admin/{id}": _admin,
}


# --- the harder corpus: the noise real services make, and real changes that look like it -------

LABELS = ("paid", "eu", "priority", "b2b", "net30")
PEOPLE = ("kim", "lee", "ada", "raj", "zoe", "ola")  # every list keeps this order
STEPS = ("open", "triage", "fix", "verify", "close")


def _float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _sometimes_float32(value: float, rng: random.Random) -> float:
    """A float32 round trip on half the responses: a relative error of ~1e-8, either way."""
    return _float32(value) if rng.random() < 0.5 else value


def _subset(pool: tuple[str, ...], number: int, least: int) -> list[str]:
    chosen = [name for k, name in enumerate(pool) if (number >> k) & 1]
    return chosen if len(chosen) >= least else list(pool[: least + number % 2])


def _shuffled(items: list[Any], rng: random.Random) -> list[Any]:
    return rng.sample(items, len(items))


def _invoices(r: Request, side: str, rng: random.Random) -> Response:
    """Floating-point jitter, ids and counters inside text, a set in random order, an etag;
    real for id % 10 in (1, 5, 7): approvers reversed, another template, a slot off by one."""
    v2 = SIDES[side] == "v2"
    lines = [round(1 + (r.number * k * 7919) % 5000 / 100, 2) for k in range(1, r.number % 4 + 3)]
    approvers = _subset(PEOPLE, r.number, 3)
    if v2 and r.number % 10 == 1:
        approvers.reverse()
    voided = v2 and r.number % 10 == 5
    invoice = r.number + 1 if v2 and r.number % 10 == 7 else r.number
    doc = {
        "id": r.number,
        "lines_total": sum(_shuffled(lines, rng)),
        "fx_total": round(sum(lines) * 1.0831, 2) * (1 + rng.uniform(-3e-12, 3e-12)),
        "weight_kg": _sometimes_float32(0.25 + (r.number * 37 % 400) / 100, rng),
        "note": f"receipt {rng.randint(1000, 9999)} {'voided' if voided else 'issued'}",
        "unread": f"you have {rng.randint(0, 60)} unread messages",
        "handled": f"request {uuid.UUID(int=rng.getrandbits(128), version=4)} handled in "
        f"{rng.randint(2, 250)} ms",
        "reminder": f"reminder {rng.randint(100, 999)} for invoice {invoice}",
        "labels": _shuffled(_subset(LABELS, r.number, 3), rng),
        "approvers": approvers,
        **_noisy(r, side, rng),
    }
    return Response(200, doc, (_nonce(rng),), etag=True)


def _tickets(r: Request, side: str, rng: random.Random) -> Response:
    """Every ticket is real: a number off by one (relative 2e-7), one scaled by 1.1, a count in
    text off by one, a stable order shuffled, a list reversed; and the same noise as invoices."""
    v2 = SIDES[side] == "v2"
    eta = 30 + 1.5 * (r.number % 50)
    steps = list(STEPS)
    while v2 and steps == list(STEPS):
        steps = _shuffled(list(STEPS), rng)
    watchers = _subset(PEOPLE, r.number + 7, 3)
    served = (r.at + timedelta(milliseconds=rng.uniform(0.2, 4.0))).isoformat()
    doc = {
        "id": r.number,
        "sequence": 5_000_000 + 13 * r.number + (1 if v2 else 0),
        "eta_s": round(eta * 1.1, 2) if v2 else eta,
        "summary": f"you have {r.number % 90 + 1 + (1 if v2 else 0)} open tickets (as of {served})",
        "steps": steps,
        "watchers": watchers[::-1] if v2 else watchers,
        "weight_kg": _sometimes_float32(0.5 + (r.number * 53 % 300) / 100, rng),
        "labels": _shuffled(_subset(LABELS, r.number, 3), rng),
        **_noisy(r, side, rng),
    }
    return Response(200, doc, (_nonce(rng),), etag=True)


def _rates(r: Request, side: str, rng: random.Random) -> Response:
    """A rate that tracks the primary within ~1e-8 on every response, a converted amount with
    noise in the 12th digit; real for id % 20 == 0: the fee scaled by 1.1."""
    base = 0.5 + (r.number * 7919 % 10_000) / 7
    fee = round(2 + r.number % 13 * 0.25, 2)
    if SIDES[side] == "v2" and r.number % 20 == 0:
        fee = round(fee * 1.1, 2)
    doc = {
        "id": r.number,
        "rate": base * (1 + rng.uniform(-4e-8, 4e-8)),
        "converted": round(base * 0.9213, 2) * (1 + rng.uniform(-3e-12, 3e-12)),
        "fee": fee,
        **_noisy(r, side, rng),
    }
    return Response(200, doc, (_nonce(rng),), etag=True)


def _jobs(r: Request, side: str, rng: random.Random) -> Response:
    """A text body with a job number and a worker id in it; real for id % 25 == 0."""
    state = "degraded" if SIDES[side] == "v2" and r.number % 25 == 0 else "ok"
    text = (
        f"job {rng.randint(10_000, 99_999)} queued by worker {rng.getrandbits(32):08x}\n"
        f"status: {state}\n"
    )
    return Response(200, {}, (_nonce(rng),), text=text, etag=True)


def _exports(r: Request, side: str, rng: random.Random) -> Response:
    """Requested 7 times: the format changes in 2 of them (ids 2 and 5)."""
    changed = SIDES[side] == "v2" and r.number in (2, 5)
    doc = {"id": r.number, "format": "tsv" if changed else "csv", **_noisy(r, side, rng)}
    return Response(200, doc, (_nonce(rng),), etag=True)


def _audit(r: Request, side: str, rng: random.Random) -> Response:
    return Response(200, {"id": r.number, "kind": "audit", **_noisy(r, side, rng)}, (_nonce(rng),))


def _ping(r: Request, side: str, rng: random.Random) -> Response:
    return Response(200, {"status": "ok", "served_at": _noisy(r, side, rng)["served_at"]})


ANSWER.update(
    {
        "/api/invoices/{id}": _invoices,
        "/api/tickets/{id}": _tickets,
        "/api/rates/{id}": _rates,
        "/api/jobs/{id}": _jobs,
        "/api/exports/{id}": _exports,
        "/api/audit/{id}": _audit,
        "/api/ping": _ping,
    }
)


@dataclass(frozen=True)
class Corpus:
    """A mix of endpoints by weight, plus low-volume endpoints with a fixed number of requests
    (spread through the window)."""

    name: str
    mix: tuple[tuple[str, float], ...]
    fixed: tuple[tuple[str, int], ...] = ()


HARD_MIX: tuple[tuple[str, float], ...] = (
    ("/api/invoices/{id}", 0.40),
    ("/api/feed/{id}", 0.25),
    ("/api/rates/{id}", 0.15),
    ("/api/jobs/{id}", 0.07),
    ("/api/tickets/{id}", 0.03),
    ("/api/health", 0.10),
)
CORPORA = {
    "basic": Corpus("basic", MIX),
    "hard": Corpus(
        "hard",
        HARD_MIX,
        (
            ("/api/admin/{id}", 6),
            ("/api/exports/{id}", 7),
            ("/api/audit/{id}", 3),
            ("/api/ping", 1),
        ),
    ),
}


def planted(request: Request) -> bool:
    """Whether a planted real difference applies to ``request``."""
    number = request.number
    if request.template == "/api/feed/{id}":
        return number % 100 == 0
    if request.template == "/api/items/{id}":
        return number % 10 in (3, 7)
    if request.template == "/api/prices/{id}":
        return _price(number) != round(_price(number))
    if request.template == "/api/invoices/{id}":
        return number % 10 in (1, 5, 7)
    if request.template == "/api/rates/{id}":
        return number % 20 == 0
    if request.template == "/api/jobs/{id}":
        return number % 25 == 0
    if request.template == "/api/exports/{id}":
        return number in (2, 5)
    return request.template in ("/api/scores/{id}", "/api/tickets/{id}")


# --- the corpus -----------------------------------------------------------------------------------


def plan(n: int, seed: int, corpus: str = "basic") -> list[Request]:
    """The ``n`` requests of ``corpus``: its fixed low-volume requests at random places, the
    rest drawn from its mix."""
    found = CORPORA[corpus]
    rng = random.Random(seed)
    templates = [t for t, _ in found.mix]
    weights = [w for _, w in found.mix]
    counters = dict.fromkeys([*templates, *(t for t, _ in found.fixed)], 0)
    fixed = [t for t, count in found.fixed for _ in range(count)]
    places = dict(zip(random.Random(seed + 1).sample(range(n), len(fixed)), fixed, strict=True))
    requests = []
    for seq in range(n):
        template = places.get(seq) or rng.choices(templates, weights)[0]
        counters[template] += 1
        requests.append(
            Request(
                seq,
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                template,
                counters[template],
                START + timedelta(milliseconds=seq * SPACING_MS),
            )
        )
    return requests


def _trace(request: Request, side: str, response: Response, rng: random.Random) -> dict[str, Any]:
    body, content_type = response.body()
    answered = request.at + timedelta(milliseconds=rng.uniform(1.0, 6.0))
    host = "app-shadow:8080" if side != "primary" else "app:8080"
    headers = [
        (":status", str(response.status)),
        ("content-type", content_type),
        ("content-length", str(len(body.encode()))),
        ("date", format_datetime(answered.replace(microsecond=0), usegmt=True)),
        ("server", "envoy"),
        ("x-envoy-upstream-service-time", str(rng.randint(0, 5))),
        *response.headers,
    ]
    if response.etag:
        headers.append(("etag", '"' + hashlib.sha1(body.encode()).hexdigest()[:20] + '"'))
    return {
        "http_buffered_trace": {
            "request": {
                "headers": [
                    {"key": k, "value": v}
                    for k, v in (
                        (":authority", host),
                        (":path", request.path),
                        (":method", "GET"),
                        ("x-request-id", request.request_id),
                    )
                ],
                "headers_received_time": request.at.isoformat().replace("+00:00", "Z"),
            },
            "response": {
                "headers": [{"key": k, "value": v} for k, v in headers],
                "body": {"as_string": body, "truncated": False},
                "headers_received_time": answered.isoformat().replace("+00:00", "Z"),
            },
        }
    }


def generate(
    out: Path, n: int, seed: int = 7, secondary_share: float = 1.0, corpus: str = "basic"
) -> Truth:
    """Write ``out/{primary,mirror,secondary}.json`` (tap traces) for ``n`` requests of
    ``corpus`` (``basic`` or ``hard``) and return the truth. ``secondary_share`` < 1 lets the
    secondary answer only that share of them."""
    out.mkdir(parents=True, exist_ok=True)
    requests = plan(n, seed, corpus)
    for number, side in enumerate(SIDES):
        rng = random.Random(seed * 1000 + number)
        keep = random.Random(seed + 17)
        with open(out / f"{side}.json", "w", encoding="utf-8") as f:
            for request in requests:
                if side == "secondary" and keep.random() >= secondary_share:
                    continue
                response = ANSWER[request.template](request, side, rng)
                f.write(json.dumps(_trace(request, side, response, rng)) + "\n")
    return Truth(
        ids=tuple(r.request_id for r in requests),
        real=frozenset(r.request_id for r in requests if planted(r)),
        endpoints={r.request_id: r.template for r in requests},
    )


# --- scoring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """The ``diverged`` outcome against the truth."""

    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    false_positives: dict[str, int]  # endpoint template → count
    false_negatives: dict[str, int]

    @property
    def precision(self) -> float:
        found = self.true_positive + self.false_positive
        return self.true_positive / found if found else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positive + self.false_negative
        return self.true_positive / real if real else 1.0


def score(run_dir: Path, truth: Truth) -> Score:
    import shadowdiff

    con = shadowdiff.open(run_dir)
    outcomes = dict(con.sql("SELECT request_id, outcome FROM pairs").fetchall())
    tp = fp = fn = tn = 0
    fps: dict[str, int] = {}
    fns: dict[str, int] = {}
    for request_id in truth.ids:
        diverged = outcomes.get(request_id) == "diverged"
        real = request_id in truth.real
        template = truth.endpoints[request_id]
        if diverged and real:
            tp += 1
        elif diverged:
            fp += 1
            fps[template] = fps.get(template, 0) + 1
        elif real:
            fn += 1
            fns[template] = fns.get(template, 0) + 1
        else:
            tn += 1
    return Score(tp, fp, fn, tn, fps, fns)


def run(corpus: Path, out: Path, secondary: bool) -> tuple[dict[str, Any], float]:
    import shadowdiff

    start = time.perf_counter()
    result = shadowdiff.run(
        primary=[str(corpus / "primary.json")],
        mirror=[str(corpus / "mirror.json")],
        secondary=[str(corpus / "secondary.json")] if secondary else [],
        source="envoy-tap",
        out=out,
    )
    return result.manifest, time.perf_counter() - start


def verdict_counts(run_dir: Path) -> dict[str, int]:
    import shadowdiff

    con = shadowdiff.open(run_dir)
    return dict(con.sql("SELECT verdict, count(*) FROM noise GROUP BY 1").fetchall())


CORPUS_WORDS = {
    "basic": "real differences at 1% (`$.limit`), 10% (`$.category`, an added `x-cache` header), "
    "100% (`$.price` rounded, `$.score` whose random distribution shifts by half a standard "
    "deviation) of an endpoint's requests, and noise: ISO and epoch-ms timestamps, an HTTP date "
    "from skewed clocks, hex trace ids, UUIDs, random integers and floats, log-normal `took_ms`, "
    "base64 tokens, a random header; and an endpoint of 16 requests with noise only",
    "hard": "the noise real services make: floating-point jitter (in the 12th digit, and float32 "
    "round trips beyond the default tolerance), counters, ids and clocks inside text (JSON "
    "strings and a text body), sets in random order, an etag of the body, endpoints requested "
    "1, 3, 6 and 7 times; and real changes that look like it: a changed text template, a text "
    "slot off by one, numbers off by one (relative 2e-7) or times 1.1, arrays reversed or "
    "shuffled where the primary keeps one order, a field changed in 2 of 7 requests",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per corpus")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-noise-"))
    results = {}
    truths = {}
    generated_s = {}
    try:
        import scipy.stats  # noqa: F401  # imported once (about 1 s) before anything is timed

        for corpus in CORPORA:
            start = time.perf_counter()
            truths[corpus] = generate(work / corpus, args.requests, args.seed, corpus=corpus)
            generated_s[corpus] = time.perf_counter() - start
            for name, secondary in (("with secondary", True), ("without secondary", False)):
                out = work / f"{corpus}-{name.replace(' ', '-')}"
                manifest, wall = run(work / corpus, out, secondary)
                verdicts = verdict_counts(out)
                results[(corpus, name)] = (score(out, truths[corpus]), manifest, wall, verdicts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/noise.py" + "".join(f" {a}" for a in sys.argv[1:])
    rows = []
    met = True
    for (corpus, name), (s, manifest, wall, verdicts) in results.items():
        recall_target, precision_target = TARGETS[name]
        ok = s.recall >= recall_target and s.precision >= precision_target
        met = met and ok
        noise_s = manifest["timings_s"].get("noise", math.nan)
        counts = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        rows.append(
            f"| {corpus} | {name} | {s.true_positive:,} | {s.false_positive:,} "
            f"| {s.false_negative:,} | {s.true_negative:,} | **{s.precision:.2%}** "
            f"| **{s.recall:.2%}** "
            f"| ≥ {precision_target:.0%} / {recall_target:.0%}: {'met' if ok else 'NOT met'} "
            f"| {noise_s:.2f} s of {wall:.1f} s | {counts} |"
        )
    details = []
    for (corpus, name), (s, *_rest) in results.items():
        if s.false_positives or s.false_negatives:
            details.append(
                f"- {corpus}, {name}: false positives by endpoint {s.false_positives or '{}'}, "
                f"false negatives {s.false_negatives or '{}'}."
            )
    corpora = "\n".join(
        f"- The {corpus} corpus (generated in {generated_s[corpus]:.1f} s, not counted; "
        f"{len(truths[corpus].real):,} requests truly diverged) plants {CORPUS_WORDS[corpus]}."
        for corpus in CORPORA
    )
    section = f"""## Noise: precision and recall of `diverged`

- Machine: {machine()}.
- Command: `{command}`; no rules file. Each corpus: {args.requests:,} requests, Envoy tap \
traces for primary v1, mirror v2 and secondary v1 (see `benchmarks/noise.py`).
{corpora}

| corpus | run | true pos. | false pos. | false neg. | true neg. | precision | recall | target \
(precision / recall) | noise stage (of the run, wall) | verdicts |
|---|---|---:|---:|---:|---:|---:|---:|---|---|---|
{chr(10).join(rows)}

- The noise stage's time includes, with a secondary, diffing every primary/secondary pair. \
Verdicts count endpoint × pattern × kind rows; `insufficient data` stays diverged rather than \
guessed (without a secondary: a field that changes in 2 of an endpoint's 7 requests and exists \
nowhere else).
{chr(10).join(details)}
"""
    print(section)
    if args.write:
        from benchmarks.record import write_section

        write_section(section)
    if not met:
        sys.exit("a precision or recall target was not met")


if __name__ == "__main__":
    main()
