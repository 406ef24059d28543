"""Noise benchmark: precision and recall of the ``diverged`` outcome on a corpus with known truth.

Run it with ``python benchmarks/noise.py`` (``--requests N``, ``--seed S``). It writes Envoy tap
output (``JSON_BODY_AS_STRING``, one file of concatenated traces per side) for three sides: the
primary (v1), the mirror (v2) and a secondary (a second v1), every side drawing its own random
values. Then it runs shadowdiff twice, with no rules file: primary + mirror + secondary (the
baseline method) and primary + mirror alone (volatile detection), and scores each run's pairs
against the truth: a pair is truly diverged when a planted real difference applies to its
request.

Planted real differences (v2 only):

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
noise only: too few to judge (``insufficient data``, which stays diverged). ``GET /api/health``
never differs.

It prints a markdown section (machine, command, numbers) for BENCHMARKS.md; ``--write`` also
replaces that section in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import random
import shutil
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
    status: int
    doc: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


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


def planted(request: Request) -> bool:
    """Whether a planted real difference applies to ``request``."""
    if request.template == "/api/feed/{id}":
        return request.number % 100 == 0
    if request.template == "/api/items/{id}":
        return request.number % 10 in (3, 7)
    if request.template == "/api/prices/{id}":
        return _price(request.number) != round(_price(request.number))
    return request.template == "/api/scores/{id}"


# --- the corpus -----------------------------------------------------------------------------------


def plan(n: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    templates = [t for t, _ in MIX]
    weights = [w for _, w in MIX]
    counters = dict.fromkeys(templates, 0)
    requests = []
    for seq in range(n):
        template = rng.choices(templates, weights)[0]
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
    body = json.dumps(response.doc, separators=(",", ":"))
    answered = request.at + timedelta(milliseconds=rng.uniform(1.0, 6.0))
    host = "app-shadow:8080" if side != "primary" else "app:8080"
    headers = [
        (":status", str(response.status)),
        ("content-type", "application/json"),
        ("content-length", str(len(body.encode()))),
        ("date", format_datetime(answered.replace(microsecond=0), usegmt=True)),
        ("server", "envoy"),
        ("x-envoy-upstream-service-time", str(rng.randint(0, 5))),
        *response.headers,
    ]
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


def generate(out: Path, n: int, seed: int = 7, secondary_share: float = 1.0) -> Truth:
    """Write ``out/{primary,mirror,secondary}.json`` (tap traces) for ``n`` requests and return
    the truth. ``secondary_share`` < 1 lets the secondary answer only that share of them."""
    out.mkdir(parents=True, exist_ok=True)
    requests = plan(n, seed)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-noise-"))
    try:
        start = time.perf_counter()
        truth = generate(work / "corpus", args.requests, args.seed)
        generated_s = time.perf_counter() - start
        import scipy.stats  # noqa: F401  # imported once (about 1 s) before anything is timed

        results = {}
        for name, secondary in (("with secondary", True), ("without secondary", False)):
            out = work / name.replace(" ", "-")
            manifest, wall = run(work / "corpus", out, secondary)
            results[name] = (score(out, truth), manifest, wall, verdict_counts(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/noise.py" + "".join(f" {a}" for a in sys.argv[1:])
    rows = []
    met = True
    for name, (s, manifest, wall, verdicts) in results.items():
        recall_target, precision_target = TARGETS[name]
        ok = s.recall >= recall_target and s.precision >= precision_target
        met = met and ok
        noise_s = manifest["timings_s"].get("noise", math.nan)
        counts = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        rows.append(
            f"| {name} | {s.true_positive:,} | {s.false_positive:,} | {s.false_negative:,} "
            f"| {s.true_negative:,} | **{s.precision:.2%}** | **{s.recall:.2%}** "
            f"| ≥ {precision_target:.0%} / {recall_target:.0%}: {'met' if ok else 'NOT met'} "
            f"| {noise_s:.2f} s of {wall:.1f} s | {counts} |"
        )
    details = []
    for name, (s, *_rest) in results.items():
        if s.false_positives or s.false_negatives:
            details.append(
                f"- {name}: false positives by endpoint {s.false_positives or '{}'}, false "
                f"negatives {s.false_negatives or '{}'}."
            )
    section = f"""## Noise: precision and recall of `diverged`

- Machine: {machine()}.
- Command: `{command}`; no rules file. The corpus ({args.requests:,} requests, Envoy tap \
traces for primary v1, mirror v2 and secondary v1, generated in {generated_s:.1f} s, not \
counted) plants real differences at 1% (`$.limit`), 10% (`$.category`, an added `x-cache` \
header), 100% (`$.price` rounded, `$.score` whose random distribution shifts by half a standard \
deviation) of an endpoint's requests, and noise: ISO and epoch-ms timestamps, an HTTP date from \
skewed clocks, hex trace ids, UUIDs, random integers and floats, log-normal `took_ms`, base64 \
tokens, a random header. {len(truth.real):,} requests are truly diverged.

| run | true pos. | false pos. | false neg. | true neg. | precision | recall | target \
(precision / recall) | noise stage (of the run, wall) | verdicts |
|---|---:|---:|---:|---:|---:|---:|---|---|---|
{chr(10).join(rows)}

- The noise stage's time includes, with a secondary, diffing every primary/secondary pair. \
False positives are pairs of `GET /api/admin/{{id}}`, an endpoint with a handful of requests: \
its patterns are `insufficient data`, which stays diverged rather than guessed.
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
