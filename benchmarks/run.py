"""``make bench``: shadowdiff side by side with its baselines, in one run, on this machine.

Every measurement runs in a fresh process (so peak memory is its own) and is repeated; the
median wall time is reported. Results go to stdout and to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.generate import generate  # noqa: E402
from benchmarks.record import machine, write_section  # noqa: E402


def _bare_read_json(primary: str, mirror: str) -> dict[str, float]:
    import duckdb

    con = duckdb.connect()
    table = con.sql(
        f"SELECT * FROM read_json(['{primary}', '{mirror}'], format='newline_delimited')"
    ).to_arrow_table()
    assert table.num_rows > 0
    return {}


def _shadowdiff(source: str) -> Callable[[str, str], dict[str, float]]:
    def measure(primary: str, mirror: str) -> dict[str, float]:
        import shadowdiff

        out = tempfile.mkdtemp(prefix="bench-out-")
        try:
            result = shadowdiff.run(primary=[primary], mirror=[mirror], source=source, out=out)
            assert result.manifest["pairs"] > 0
            return dict(result.timings)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    return measure


MEASURES: dict[str, Callable[[str, str], dict[str, float]]] = {
    "duckdb-read-json": _bare_read_json,
    "shadowdiff-json": _shadowdiff("envoy-json"),
    "shadowdiff-text": _shadowdiff("envoy-text"),
}


def _child(name: str, primary: str, mirror: str) -> None:
    start = time.perf_counter()
    stages = MEASURES[name](primary, mirror)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": usage.ru_utime + usage.ru_stime,
                "peak_mb": usage.ru_maxrss / 1024,
                "stages": stages,
            }
        )
    )


def _run_child(name: str, primary: Path, mirror: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, str(primary), str(mirror)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {
        "seconds": median["seconds"],
        "cpu": median["cpu"],
        "peak_mb": max(r["peak_mb"] for r in runs),
        "stages": median["stages"],
        "range": (min(r["seconds"] for r in runs), max(r["seconds"] for r in runs)),
    }


def _rounds(files: dict[str, Path], repeat: int) -> dict[str, list[dict[str, Any]]]:
    """Every measurement once per round, in turn: a machine whose speed drifts (shared cores)
    then slows the baseline and shadowdiff alike, and each round gives a fair ratio."""
    inputs = {
        "duckdb-read-json": (files["primary-json"], files["mirror-json"]),
        "shadowdiff-json": (files["primary-json"], files["mirror-json"]),
        "shadowdiff-text": (files["primary-text"], files["mirror-text"]),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in inputs}
    for _ in range(repeat):
        for name, (primary, mirror) in inputs.items():
            runs[name].append(_run_child(name, primary, mirror))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1_000_000, help="lines per side")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--child", nargs=3, metavar=("NAME", "PRIMARY", "MIRROR"))
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    files = generate(args.data, args.n)
    n = args.n
    runs = _rounds(files, args.repeat)
    bare = _summary(runs["duckdb-read-json"])
    ours_json = _summary(runs["shadowdiff-json"])
    ours_text = _summary(runs["shadowdiff-text"])
    ratios = sorted(
        ours["seconds"] / base["seconds"]
        for ours, base in zip(runs["shadowdiff-json"], runs["duckdb-read-json"], strict=True)
    )
    ratio = ratios[len(ratios) // 2]
    text_rate = n / ours_text["seconds"]
    rows = [
        ("DuckDB bare `read_json` of both JSON files (baseline)", bare, ""),
        (
            "shadowdiff `run` on the JSON files, end to end to Parquet",
            ours_json,
            f"{ratio:.2f}× the bare read, median of the rounds' ratios "
            f"({ratios[0]:.2f}–{ratios[-1]:.2f}; target ≤ 2×)",
        ),
        (
            "shadowdiff `run` on the text files, end to end to Parquet",
            ours_text,
            f"{text_rate / 1000:.0f}k lines/s per side (target ≥ 500k)",
        ),
    ]
    table = [
        "| measurement | wall time (median) | range | CPU time | peak memory | result |",
        "|---|---|---|---|---|---|",
        *(
            f"| {label} | {r['seconds']:.2f} s | {r['range'][0]:.2f}–{r['range'][1]:.2f} s | "
            f"{r['cpu']:.1f} s | {r['peak_mb']:.0f} MB | {note} |"
            for label, r, note in rows
        ),
    ]
    stages = [
        f"- Stages of the median `{kind}` run (s, from the manifest's `timings_s`; `store` is "
        "what was left of the background Parquet writing after the last stage; `noise` is "
        "part of `diff`): "
        + ", ".join(f"{stage} {value:.2f}" for stage, value in r["stages"].items())
        for kind, r in (("JSON", ours_json), ("text", ours_text))
    ]
    section = "\n".join(
        [
            "## Access logs: end to end (issue: the access-log pipeline)",
            "",
            f"{n:,} primary + {n:,} mirror lines (Istio keys/format, 5% status differences), "
            f"generated by `benchmarks/generate.py`; {args.repeat} rounds, each running the three "
            "measurements in turn, each in a fresh process; medians.",
            "",
            f"- Machine: {machine()}",
            f"- Command: `make bench` (`python benchmarks/run.py -n {n}`), "
            f"{datetime.now(UTC):%Y-%m-%d}",
            "",
            *table,
            "",
            *stages,
            "- CPU time is user + system time of the whole process, on 2 cores: the runs are "
            "CPU-bound, so it is the steadier figure when other work shares the machine.",
            "",
        ]
    )
    print(section)
    if not args.no_write:
        write_section(section)


if __name__ == "__main__":
    main()
