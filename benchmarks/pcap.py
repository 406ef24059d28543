"""Packet captures, end to end: ``shadowdiff run`` on a capture against tshark and scapy.

Run it with ``make bench`` or ``python benchmarks/pcap.py`` (``--packets``, default 200k;
``--repeat`` rounds, default 3; ``--no-write`` to leave BENCHMARKS.md alone). The capture comes
from benchmarks/pcap_corpus.py (keep-alive HTTP/1.1 to a primary on :8081 and a mirror on :8082,
thousands of interleaved connections, JSON bodies of 200–2000 bytes, a fifth chunked, MSS-sized
segments) and is kept in benchmarks/data/ (made only when missing), with one four times longer
for the memory check.

Measurements, each a fresh process, in interleaved rounds:

- ``shadowdiff run --input CAPTURE --rules benchmarks/pcap_rules.toml`` (sides by server port);
- tshark, as a user lists a capture's HTTP messages:
  ``tshark -r F -Y http -T fields -e frame.number -e http.request.method -e http.response.code``;
- scapy's ``PcapReader`` with full dissection (HTTP layer loaded), every packet;
- and once, ``shadowdiff run`` on the capture four times longer, for peak memory.

Reported: wall time, CPU, peak RSS; shadowdiff's speed-up over each (the median of the rounds'
ratios); the collect stage's packets/s from the manifest's ``timings_s``; and the peak RSS of the
long capture over the short one's. Checked: every run finds the planted diverged pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.pcap_corpus import generate  # noqa: E402
from benchmarks.procs import (  # noqa: E402
    Sample,
    outcomes,
    ratio,
    rounds,
    run_process,
    shadowdiff_bin,
    shown,
    summarize,
)
from benchmarks.record import machine, write_section  # noqa: E402

HEADING = "## Packet captures: end to end (issue 12)"
RULES = HERE / "pcap_rules.toml"
SCAPY = HERE / "pcap_scapy.py"
TARGET_SPEEDUP = 10.0
TARGET_PACKETS_S = 250_000
TARGET_MEMORY = 1.3
LONGER = 4
CORPUS_VERSION = 2  # bump when the generated capture changes


@dataclass(frozen=True)
class Capture:
    path: Path
    packets: int
    requests: int
    planted: int
    generated_s: float | None


def capture(data: Path, packets: int, seed: int) -> Capture:
    """The capture of about ``packets`` packets, made when missing (its counts beside it)."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"capture-{packets}-v{CORPUS_VERSION}.pcap"
    facts = path.with_suffix(".json")
    if path.exists() and facts.exists():
        known = json.loads(facts.read_text())
        return Capture(path, known["packets"], known["requests"], known["planted"], None)
    started = time.perf_counter()
    made = generate(path, packets, seed)
    facts.write_text(json.dumps(made))
    return Capture(
        path, made["packets"], made["requests"], made["planted"], time.perf_counter() - started
    )


def shadowdiff_argv(c: Capture, out: str) -> list[str]:
    return [
        shadowdiff_bin(), "run", "--input", shown(c.path, ROOT), "--rules", shown(RULES, ROOT),
        "--out", out,
    ]  # fmt: skip


def tshark_argv(c: Capture) -> list[str]:
    return [
        "tshark", "-r", shown(c.path, ROOT), "-Y", "http", "-T", "fields",
        "-e", "frame.number", "-e", "http.request.method", "-e", "http.response.code",
    ]  # fmt: skip


def scapy_argv(c: Capture) -> list[str]:
    return [sys.executable, shown(SCAPY, ROOT), shown(c.path, ROOT)]


def run_shadowdiff(c: Capture) -> Sample:
    parent = Path(tempfile.mkdtemp(prefix="bench-pcap-"))
    try:
        out = parent / "run"
        sample = run_process(shadowdiff_argv(c, str(out)), cwd=str(ROOT))
        manifest = json.loads((out / "manifest.json").read_text())
        extra = {"stages": manifest["timings_s"], "outcomes": outcomes(out)}
        return dataclasses.replace(sample, extra=extra)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def run_tshark(c: Capture) -> Sample:
    sample = run_process(tshark_argv(c), cwd=str(ROOT))
    requests = responses = 0
    for line in sample.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3:
            requests += bool(fields[1])
            responses += bool(fields[2])
    return dataclasses.replace(sample, extra={"messages": (requests, responses)})


def run_scapy(c: Capture) -> Sample:
    sample = run_process(scapy_argv(c), cwd=str(ROOT))
    return dataclasses.replace(sample, extra=json.loads(sample.stdout))


def measures(c: Capture) -> dict[str, Callable[[], Sample]]:
    return {
        "shadowdiff": lambda: run_shadowdiff(c),
        "tshark": lambda: run_tshark(c),
        "scapy": lambda: run_scapy(c),
    }


LABELS = {
    "shadowdiff": "shadowdiff `run` (pairs, diffs, noise, latency, Parquet)",
    "tshark": "tshark `-Y http -T fields` (lists the HTTP messages)",
    "scapy": "scapy `PcapReader`, full dissection with the HTTP layer",
}


def section(
    c: Capture, long: Capture, runs: dict[str, list[Sample]], long_run: Sample
) -> tuple[str, bool]:
    ours = summarize(runs["shadowdiff"])
    stages = ours.median_run.extra["stages"]
    collect_s = stages.get("collect", 0.0)
    packets_s = c.packets / collect_s if collect_s else 0.0
    memory = long_run.tree_mb / ours.tree_mb
    lines = [
        "| measurement | wall time (median) | range | CPU time (median) | peak RSS | whole run "
        "| result |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in runs:
        s = summarize(runs[name])
        result = ""
        speedup = ratio(runs[name], runs["shadowdiff"])
        if name == "tshark":
            result = speedup.text("faster than tshark", TARGET_SPEEDUP, at_least=True)
        elif name == "scapy":
            result = (
                f"{speedup.median:.1f}× faster than scapy "
                f"(rounds {speedup.low:.1f}–{speedup.high:.1f})"
            )
        lines.append(
            f"| {LABELS[name]} | {s.seconds:.2f} s | {s.low:.2f}–{s.high:.2f} s | {s.cpu:.1f} s "
            f"| {s.peak_mb:.0f} MB | {s.tree_mb:.0f} MB | {result} |"
        )
    diverged = sorted({r.extra["outcomes"].get("diverged", 0) for r in runs["shadowdiff"]})
    paired = sorted(
        {
            sum(v for k, v in r.extra["outcomes"].items() if not k.endswith("_only"))
            for r in runs["shadowdiff"]
        }
    )
    ok = diverged == [c.planted] and paired == [c.requests]
    tshark_seen = runs["tshark"][-1].extra["messages"]
    command = "python benchmarks/pcap.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    rate_ok = "met" if packets_s >= TARGET_PACKETS_S else "NOT met"
    memory_ok = "met" if memory < TARGET_MEMORY else "NOT met"
    made = (
        "generated by an earlier run"
        if c.generated_s is None
        else f"generated in {c.generated_s:.1f} s, not counted"
    )
    text = [
        HEADING,
        "",
        f"A generated capture of {c.packets:,} packets ({c.path.stat().st_size / 1e6:.0f} MB, "
        f"`{shown(c.path, ROOT)}`, {made}) from benchmarks/pcap_corpus.py: {c.requests:,} "
        "requests, each to the primary (:8081) and the mirror (:8082) over keep-alive HTTP/1.1, "
        "up to 2,000 connections open at once, JSON bodies of 200–2000 bytes, a fifth chunked, "
        f"MSS-sized segments, every data segment ACKed; {c.planted:,} mirror answers differ. "
        f"{len(runs['shadowdiff'])} interleaved rounds, each measurement a fresh process; medians.",
        "",
        f"- Machine: {machine()}",
        f"- Command: `make bench` (`{command}`), {datetime.now(UTC):%Y-%m-%d}; from the "
        "repository's root (TMP a fresh directory):",
        f"  - shadowdiff: `{shlex.join(shadowdiff_argv(c, 'TMP/run'))}`",
        f"  - tshark: `{shlex.join(tshark_argv(c))}`",
        f"  - scapy: `{shlex.join(scapy_argv(c))}`",
        "",
        *lines,
        "",
        f"- Collect stage: {collect_s:.2f} s in the median run, **{packets_s:,.0f} packets/s** "
        f"(target ≥ {TARGET_PACKETS_S:,}: **{rate_ok}**). Stages (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()),
        f"- Memory: {long.packets:,} packets (×{LONGER}) peak at {long_run.tree_mb:.0f} MB for the "
        f"whole run against {ours.tree_mb:.0f} MB, **{memory:.2f}×** (target < {TARGET_MEMORY}×: "
        f"**{memory_ok}**; the largest process {long_run.peak_mb:.0f} against "
        f"{ours.peak_mb:.0f} MB); "
        f"that run took {long_run.seconds:.2f} s.",
        f"- Check: shadowdiff found {'/'.join(map(str, diverged))} diverged of "
        f"{'/'.join(map(str, paired))} pairs ({c.planted:,} planted of {c.requests:,}): "
        f"{'as planted' if ok else '**MISMATCH**'}. tshark listed {tshark_seen[0]:,} requests and "
        f"{tshark_seen[1]:,} responses (both sides).",
        "",
    ]
    return "\n".join(text), ok


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    if shutil.which("tshark") is None:
        sys.exit("tshark is not installed: run `make bench-deps` (Debian's tshark).")
    c = capture(args.data, args.packets, args.seed)
    long = capture(args.data, args.packets * LONGER, args.seed)
    runs = rounds(measures(c), args.repeat)
    long_run = run_shadowdiff(long)
    print(f"long capture: {long_run.seconds:.2f} s, {long_run.peak_mb:.0f} MB", flush=True)
    text, ok = section(c, long, runs, long_run)
    print(text)
    if not args.no_write:
        write_section(text)
    if not ok:
        sys.exit("the diverged counts do not match the planted differences")


if __name__ == "__main__":
    os.environ.setdefault("CI", "1")  # no progress line from the children
    main()
