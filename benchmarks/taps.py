"""Tap directories, end to end: ``shadowdiff run`` against the notebook way (issue 10).

Run it with ``make bench`` or ``python benchmarks/taps.py`` (``-n`` traces per side, default
10,000; ``--repeat`` rounds, default 3; ``--no-write`` to leave BENCHMARKS.md alone).

The corpus, kept in benchmarks/data/taps-N/ and made only when missing: for each of N requests
to ``GET /api/orders/{id}``, one Envoy ``file_per_tap`` file per side (``tap_<trace_id>.json``,
pretty-printed with Envoy's one-space indent, bodies ``JSON_BODY_AS_BYTES``, ~4 KB), sharing the
request's ``x-request-id``. The response is a JSON order (~1.6 KB) whose ``$.served_at`` (ISO,
µs) differs per side: noise. 5% of the pairs (every 20th) carry a real body difference on the
mirror. Two corpora of the same traces: ``buffered`` (one ``http_buffered_trace`` per file, with
times and connections) and ``streamed`` (per file, one trace as five
``http_streamed_trace_segment`` documents: request headers, request body, response headers, two
response body chunks).

Three measurements, each a fresh process, in interleaved rounds (each round runs every one once,
in turn):

- the notebook baseline, benchmarks/taps_notebook.py (``glob`` + ``json.load``, ``pandas.merge``
  on the request id, ``DeepDiff`` per pair excluding ``served_at``), on the buffered corpus;
- ``shadowdiff run --primary DIR --mirror DIR --rules benchmarks/taps_rules.toml --out OUT`` on
  the buffered and on the streamed corpus (the rules ignore ``$.served_at``, like the notebook).

Reported: median wall time, range, median CPU time (user + system of the child), peak RSS,
files/s end to end (both sides' files / wall time), shadowdiff's speed-up over the notebook (the
median of the rounds' ratios; targets ≥ 10,000 files/s and ≥ 5×) and the run's stage timings.
Checked: every run finds exactly the planted number of diverged pairs.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.noise import START, Request, Response, _trace  # noqa: E402
from benchmarks.procs import (  # noqa: E402
    Sample,
    Summary,
    ratio,
    rounds,
    run_process,
    run_shadowdiff,
    shadowdiff_command,
    shown,
    summarize,
)
from benchmarks.record import machine, write_section  # noqa: E402

HEADING = "## Tap directories: end to end (issue 10)"
NOTEBOOK = HERE / "taps_notebook.py"
RULES = HERE / "taps_rules.toml"
TEMPLATE = "/api/orders/{id}"
SPACING_MS = 3.0
PLANT_EVERY = 20  # every 20th pair differs for real: 5%
TARGET_FILES_S = 10_000
TARGET_SPEEDUP = 5.0
CORPUS_VERSION = 1  # bump when the generated traces change, so old corpora are remade
KINDS = ("buffered", "streamed")
SIDES = ("primary", "mirror")
STREAMED = "http_streamed_trace_segment"
WORDS = ("anvil", "bolt", "clamp", "drill", "file", "gauge", "hinge", "jig", "lathe", "mallet")

# --- the corpus -----------------------------------------------------------------------------------


def plan(n: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    return [
        Request(
            seq,
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            TEMPLATE,
            100_000 + seq,
            START + timedelta(milliseconds=seq * SPACING_MS),
        )
        for seq in range(n)
    ]


def planted(request: Request) -> bool:
    return request.seq % PLANT_EVERY == 0


def order(request: Request, seed: int) -> dict[str, Any]:
    """The order both versions answer (the same on both sides, before noise and plants)."""
    rng = random.Random(seed * 1_000_003 + request.seq)
    items: list[dict[str, Any]] = [
        {
            "sku": f"SKU-{rng.randrange(10**6):06d}",
            "name": " ".join(rng.choices(WORDS, k=2)),
            "quantity": rng.randint(1, 9),
            "unit_price": round(rng.uniform(1, 200), 2),
            "currency": "EUR",
            "warehouse": rng.choice(("AMS-1", "FRA-2", "PAR-1")),
            "tags": rng.sample(WORDS, 2),
        }
        for _ in range(10)
    ]
    total = round(sum(i["quantity"] * i["unit_price"] for i in items), 2)
    return {
        "id": request.number,
        "status": "shipped",
        "customer": {"id": rng.randrange(10**7), "name": "Ada Lovelace", "tier": "gold"},
        "shipping": {"street": "1 Main St", "city": "Amsterdam", "zip": "1011AB", "country": "NL"},
        "items": items,
        "totals": {"items": total, "shipping": 4.95, "grand_total": round(total + 4.95, 2)},
        "served_at": "",
    }


def plant(doc: dict[str, Any], seq: int) -> None:
    """One real difference on the mirror; the kind cycles with the request."""
    which = seq // PLANT_EVERY % 4
    if which == 0:
        doc["items"][seq % len(doc["items"])]["quantity"] += 1
    elif which == 1:
        doc["status"] = "delayed"
    elif which == 2:
        del doc["shipping"]["zip"]
    else:
        doc["totals"]["grand_total"] = str(doc["totals"]["grand_total"])


def answer(request: Request, side: str, seed: int, rng: random.Random) -> dict[str, Any]:
    doc = order(request, seed)
    served = request.at + timedelta(microseconds=rng.randint(200, 4000))
    doc["served_at"] = served.isoformat(timespec="microseconds").replace("+00:00", "Z")
    if side == "mirror" and planted(request):
        plant(doc, request.seq)
    return doc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def buffered(request: Request, side: str, seed: int, rng: random.Random) -> dict[str, Any]:
    """A TraceWrapper as Envoy's tap filter writes it (fields in proto order)."""
    base = _trace(request, side, Response(200, answer(request, side, seed, rng)), rng)
    req, resp = base["http_buffered_trace"]["request"], base["http_buffered_trace"]["response"]
    extra = [
        (":scheme", "http"),
        ("user-agent", "orders-client/2.4"),
        ("accept", "application/json"),
        ("x-forwarded-proto", "http"),
        ("x-envoy-expected-rq-timeout-ms", "15000"),
    ]
    query = json.dumps({"fields": ["items", "totals"], "locale": "en"}).encode()
    body = resp["body"]["as_string"].encode()
    return {
        "http_buffered_trace": {
            "request": {
                "headers": req["headers"] + [{"key": k, "value": v} for k, v in extra],
                "body": {"truncated": False, "as_bytes": _b64(query)},
                "trailers": [],
                "headers_received_time": _rfc3339(req["headers_received_time"]),
            },
            "response": {
                "headers": resp["headers"],
                "body": {"truncated": False, "as_bytes": _b64(body)},
                "trailers": [],
                "headers_received_time": _rfc3339(resp["headers_received_time"]),
            },
            "downstream_connection": {
                "local_address": _address("127.0.0.1", 8080),
                "remote_address": _address("10.0.0.9", 30_000 + request.seq % 20_000),
            },
            "upstream_connection": {
                "local_address": _address("127.0.0.6", 40_000 + request.seq % 20_000),
                "remote_address": _address("127.0.0.1", 9080),
            },
        }
    }


def _rfc3339(text: str) -> str:
    """Protobuf's JSON timestamps: 0, 3, 6 or 9 fractional digits, ``Z``."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def streamed(trace: dict[str, Any], trace_id: str) -> list[dict[str, Any]]:
    """The same trace as streamed segments: headers, body, headers, the body in two chunks."""
    http = trace["http_buffered_trace"]
    body = base64.b64decode(http["response"]["body"]["as_bytes"])
    half = len(body) // 2
    pieces: list[tuple[str, Any]] = [
        ("request_headers", {"headers": http["request"]["headers"]}),
        ("request_body_chunk", http["request"]["body"]),
        ("response_headers", {"headers": http["response"]["headers"]}),
        ("response_body_chunk", {"truncated": False, "as_bytes": _b64(body[:half])}),
        ("response_body_chunk", {"truncated": False, "as_bytes": _b64(body[half:])}),
    ]
    return [{STREAMED: {"trace_id": trace_id, name: value}} for name, value in pieces]


def _pretty(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1)  # Envoy pretty-prints with protobuf's one-space indent


def _trace_ids(rng: random.Random, n: int) -> Iterator[str]:
    seen: set[int] = set()
    while len(seen) < n:
        value = rng.getrandbits(64)
        if value not in seen:
            seen.add(value)
            yield str(value)


@dataclass(frozen=True)
class Corpus:
    root: Path
    n: int
    planted: int
    bytes: dict[str, int]  # kind → bytes of both sides' files
    generated_s: float | None  # None: found on disk

    def dir(self, kind: str, side: str) -> Path:
        return self.root / kind / side

    @property
    def files(self) -> int:
        return 2 * self.n


def _write_side(root: Path, side: str, requests: list[Request], seed: int) -> dict[str, int]:
    rng = random.Random(seed * 1000 + SIDES.index(side))
    sizes = dict.fromkeys(KINDS, 0)
    dirs = {kind: root / kind / side for kind in KINDS}
    for d in dirs.values():
        d.mkdir(parents=True)
    for request, trace_id in zip(requests, _trace_ids(rng, len(requests)), strict=True):
        trace = buffered(request, side, seed, rng)
        texts = {
            "buffered": _pretty(trace),
            "streamed": "\n".join(_pretty(doc) for doc in streamed(trace, trace_id)),
        }
        for kind, text in texts.items():
            data = (text + "\n").encode()
            (dirs[kind] / f"tap_{trace_id}.json").write_bytes(data)
            sizes[kind] += len(data)
    return sizes


def corpus(data: Path, n: int, seed: int) -> Corpus:
    """The corpus in ``data/taps-N``, generated unless a complete one is there."""
    root = data / f"taps-{n}"
    info = root / "corpus.json"
    if info.exists():
        saved = json.loads(info.read_text())
        if saved.get("version") == CORPUS_VERSION and saved["seed"] == seed:
            return Corpus(root, n, saved["planted"], saved["bytes"], None)
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    requests = plan(n, seed)
    sizes = dict.fromkeys(KINDS, 0)
    for side in SIDES:
        for kind, size in _write_side(root, side, requests, seed).items():
            sizes[kind] += size
    count = sum(planted(r) for r in requests)
    saved = {"version": CORPUS_VERSION, "n": n, "seed": seed, "planted": count, "bytes": sizes}
    info.write_text(json.dumps(saved))
    return Corpus(root, n, count, sizes, time.perf_counter() - start)


# --- the measurements ---------------------------------------------------------------------------


def _shown(path: Path) -> str:
    return shown(path, ROOT)


def _notebook_command(c: Corpus, out: str) -> list[str]:
    dirs = [_shown(c.dir("buffered", side)) for side in SIDES]
    return [sys.executable, _shown(NOTEBOOK), *dirs, out]


def _notebook(c: Corpus) -> Sample:
    parent = Path(tempfile.mkdtemp(prefix="bench-notebook-"))
    try:
        sample = run_process(_notebook_command(c, str(parent / "pairs.parquet")), cwd=str(ROOT))
        result = json.loads(sample.stdout.strip().splitlines()[-1])
        outcomes = {"pairs": result["pairs"], "diverged": result["diverged"]}
        return dataclasses.replace(sample, extra={"outcomes": outcomes})
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _shadowdiff_args(c: Corpus, kind: str) -> tuple[str, str, str, str]:
    return (_shown(c.dir(kind, "primary")), _shown(c.dir(kind, "mirror")), "--rules", _shown(RULES))


def _shadowdiff(c: Corpus, kind: str) -> Sample:
    return run_shadowdiff(*_shadowdiff_args(c, kind), cwd=str(ROOT))


def measures(c: Corpus) -> dict[str, Callable[[], Sample]]:
    return {
        "notebook": lambda: _notebook(c),
        "buffered": lambda: _shadowdiff(c, "buffered"),
        "streamed": lambda: _shadowdiff(c, "streamed"),
    }


# --- the section ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    corpus: Corpus
    repeat: int
    runs: dict[str, list[Sample]]

    def summary(self, name: str) -> Summary:
        return summarize(self.runs[name])

    def files_s(self, name: str) -> float:
        return self.corpus.files / self.summary(name).seconds


LABELS = {
    "notebook": "notebook: `glob` + `json.load`, `pandas.merge`, `DeepDiff` per pair "
    "(baseline, buffered corpus)",
    "buffered": "shadowdiff `run`, buffered traces",
    "streamed": "shadowdiff `run`, streamed traces (5 segments per file)",
}


def _result(res: Results, name: str) -> str:
    if name == "notebook":
        return ""
    rate = res.files_s(name)
    speedup = ratio(res.runs["notebook"], res.runs[name])
    rate_ok = "met" if rate >= TARGET_FILES_S else "NOT met"
    return f"{rate:,.0f} files/s (target ≥ {TARGET_FILES_S:,}: **{rate_ok}**); " + speedup.text(
        "the notebook's speed", TARGET_SPEEDUP, at_least=True
    )


def _table(res: Results) -> list[str]:
    lines = [
        "| measurement | wall time (median) | range | CPU time (median) | peak RSS | whole run "
        "| files/s | result |",
        "|---|---|---|---|---|---|---:|---|",
    ]
    for name in res.runs:
        s = res.summary(name)
        lines.append(
            f"| {LABELS[name]} | {s.seconds:.2f} s | {s.low:.2f}–{s.high:.2f} s | {s.cpu:.1f} s "
            f"| {s.peak_mb:.0f} MB | {s.tree_mb:.0f} MB | {res.files_s(name):,.0f} "
            f"| {_result(res, name)} |"
        )
    return lines


def _commands(res: Results) -> list[str]:
    c = res.corpus
    shown = [
        ("notebook", _notebook_command(c, "TMP/pairs.parquet")),
        *((kind, _shadowdiff_shown(c, kind)) for kind in KINDS),
    ]
    return [
        f"  - {name}: `{shlex.join([_shown(Path(argv[0])), *argv[1:]])}`" for name, argv in shown
    ]


def _shadowdiff_shown(c: Corpus, kind: str) -> list[str]:
    primary, mirror, *options = _shadowdiff_args(c, kind)
    return shadowdiff_command(primary, mirror, "TMP/run", *options)


def _stages(res: Results) -> list[str]:
    lines = []
    for kind in KINDS:
        stages = res.summary(kind).median_run.extra["stages"]
        lines.append(
            f"- Stages of the median {kind} run (s): "
            + ", ".join(f"{stage} {value:.2f}" for stage, value in stages.items())
        )
    lines.append(
        "- Stages are the manifest's `timings_s`; `store` is what was left of the background "
        "Parquet writing after the last stage; `noise` is part of `diff`. The rest of the wall "
        "time is starting the process, importing, and printing the summary."
    )
    return lines


def _check(res: Results) -> tuple[str, bool]:
    expected = res.corpus.planted
    parts = []
    ok = True
    for name, runs in res.runs.items():
        diverged = sorted({r.extra["outcomes"].get("diverged", 0) for r in runs})
        paired = sorted({_paired(r.extra["outcomes"]) for r in runs})
        ok = ok and diverged == [expected] and paired == [res.corpus.n]
        parts.append(
            f"{name} {'/'.join(f'{d:,}' for d in diverged)} diverged of "
            f"{'/'.join(f'{p:,}' for p in paired)} pairs"
        )
    last = res.runs["buffered"][-1].extra["outcomes"]
    verdict = "all as planted" if ok else "**MISMATCH**"
    return (
        f"- Check, every round: {'; '.join(parts)} ({expected:,} planted of {res.corpus.n:,}): "
        f"{verdict}. Outcomes of shadowdiff's last buffered run: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(last.items()))
        + ".",
        ok,
    )


def _paired(outcomes: dict[str, int]) -> int:
    if "pairs" in outcomes:  # the notebook's count
        return outcomes["pairs"]
    return sum(v for k, v in outcomes.items() if k not in ("primary_only", "mirror_only"))


def _corpus_line(c: Corpus) -> str:
    sizes = ", ".join(
        f"{kind} {c.bytes[kind] / c.files / 1000:.1f} KB per file ({c.bytes[kind] / 1e6:.0f} MB)"
        for kind in KINDS
    )
    made = (
        f"generated in {c.generated_s:.1f} s, not counted"
        if c.generated_s is not None
        else "generated by an earlier run"
    )
    return (
        f"{c.n:,} primary + {c.n:,} mirror Envoy `file_per_tap` traces per corpus, one file per "
        f"request per side, in `{_shown(c.root)}/` ({made}): one endpoint "
        f"(`GET /api/orders/{{id}}`), bodies as bytes; {sizes}. {c.planted:,} pairs "
        f"({c.planted / c.n:.0%}) have a real body difference on the mirror; `$.served_at` "
        "(ISO, µs) differs in every pair, as noise."
    )


def section(res: Results) -> tuple[str, bool]:
    check, ok = _check(res)
    command = "python benchmarks/taps.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    lines = [
        HEADING,
        "",
        _corpus_line(res.corpus),
        f"{res.repeat} rounds, each running the three measurements in turn, each in a fresh "
        "process; medians. Files/s is both sides' files over the wall time; the speed-up is the "
        "median of the rounds' ratios (notebook's wall time / shadowdiff's), with their range.",
        "",
        f"- Machine: {machine()}",
        f"- Command: `make bench` (`{command}`), {datetime.now(UTC):%Y-%m-%d}; each measurement "
        "runs from the repository's root as (TMP a fresh directory):",
        *_commands(res),
        "",
        *_table(res),
        "",
        *_stages(res),
        f"- CPU time is user + system time of the child process (and any workers it reaped), on "
        f"{os.cpu_count()} cores; peak RSS is the highest of the rounds. The notebook reads the "
        "buffered corpus only; the streamed run's speed-up is against that same notebook run.",
        check,
        "",
    ]
    return "\n".join(lines), ok


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="traces per side")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    c = corpus(args.data, args.n, args.seed)
    print(f"corpus: {c.root} ({c.generated_s or 0:.1f} s to generate)", flush=True)
    runs = rounds(measures(c), args.repeat)
    text, ok = section(Results(c, args.repeat, runs))
    print(text)
    if not args.no_write:
        write_section(text)
    if not ok:
        sys.exit("the diverged counts do not match the planted differences")


if __name__ == "__main__":
    main()
