"""Scale benchmark (issue 14): whole ``shadowdiff run`` processes as the window grows, the
bucketed engine against the engine before it, and the Dask engine against the local one.

Corpora (generated unless found in ``benchmarks/data``): the access-log benchmark's JSON and
text logs (``generate.py``, 2 × 250k, 2 × 1M and, for the growth figures, 2 × 4M lines) and the
tap benchmark's buffered ``file_per_tap`` directories (``taps.py``, 2 × 10,000 and 2 × 40,000
files with ~4 KB bodies).

Measurements, each a fresh process (``procs.run_process``), in interleaved rounds:

- ``before``: the engine of commit ``BASELINE`` (the last before buckets), from a copy of that
  commit's tree run with this venv: what a user had;
- ``local``: this tree's engine; ``dask``: ``--engine dask``, the run starting its own 2-worker
  ``LocalCluster``; ``dask-running``: ``--engine dask --scheduler`` on a 2-worker cluster that
  was started before the rounds (what a team with a standing cluster pays);
- memory: the local engine on 250k and 1M pairs of JSON logs, and on 10k and 40k pairs of taps;
- growth: the local engine on 1×, 4× and 16× the 250k JSON corpus, once each.

Peak RSS is the run's process or the largest process it reaped (its reading workers; with
``dask``, the cluster's workers, which it starts and reaps). With ``dask-running`` the workers
are not the run's children: their memory is not in its figure.

``python benchmarks/scale.py [--repeat N] [--no-write]``; writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import taps  # noqa: E402
from benchmarks.procs import (  # noqa: E402
    Sample,
    ratio,
    rounds,
    run_process,
    shadowdiff_bin,
    summarize,
)
from benchmarks.record import machine, write_section  # noqa: E402

BASELINE = "c5bf2a1"
DATA = ROOT / "benchmarks" / "data"
TAPS_RULES = ROOT / "benchmarks" / "taps_rules.toml"
MEMORY_LIMIT_MB = 1.5 * 1024


def json_logs(n: int, kind: str = "json") -> tuple[Path, Path]:
    primary, mirror = DATA / f"primary-{n}.{kind}.log", DATA / f"mirror-{n}.{kind}.log"
    if not (primary.exists() and mirror.exists()):
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "generate.py"), "-n", str(n)], check=True
        )
    return primary, mirror


def tap_dirs(n: int) -> tuple[Path, Path]:
    corpus = taps.corpus(DATA, n, 7)
    return corpus.dir("buffered", "primary"), corpus.dir("buffered", "mirror")


def baseline_tree() -> Path:
    """A copy of the ``BASELINE`` commit's package, made once with ``git archive``."""
    tree = DATA / f"engine-{BASELINE}"
    if not (tree / "shadowdiff" / "cli.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BASELINE, "shadowdiff"],
            check=True,
            capture_output=True,
        )
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def command(engine: str, inputs: tuple[Path, Path], out: str, *options: str) -> list[str]:
    primary, mirror = inputs
    args = ["run", "--primary", str(primary), "--mirror", str(mirror), *options, "--out", out]
    if engine == "before":
        launcher = "import sys; sys.path.insert(0, sys.argv.pop(1)); "
        launcher += "from shadowdiff.cli import entry; entry()"
        return [sys.executable, "-c", launcher, str(baseline_tree()), *args]
    return [shadowdiff_bin(), *args]


def measure(engine: str, inputs: tuple[Path, Path], *options: str) -> Sample:
    parent = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        out = parent / "run"
        sample = run_process(command(engine, inputs, str(out), *options), cwd=str(ROOT))
        manifest = json.loads((out / "manifest.json").read_text())
        extra = {
            "stages": manifest["timings_s"],
            "outcomes": manifest["outcomes"],
            "buckets": manifest.get("engine", {}).get("buckets"),
        }
        return dataclasses.replace(sample, extra=extra)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def standing_cluster() -> Iterator[str]:
    """A 2-worker cluster on loopback for ``dask-running``, started before the rounds."""
    from shadowdiff.engine.dask import local_cluster

    with local_cluster(2) as cluster:
        yield str(cluster.scheduler_address)


@dataclass(frozen=True)
class Corpus:
    name: str
    inputs: tuple[Path, Path]
    options: tuple[str, ...] = ()


def throughput_measures(corpora: list[Corpus], scheduler: str) -> dict[str, Callable[[], Sample]]:
    found: dict[str, Callable[[], Sample]] = {}
    for c in corpora:
        found[f"{c.name} before"] = lambda c=c: measure("before", c.inputs, *c.options)
        found[f"{c.name} local"] = lambda c=c: measure("local", c.inputs, *c.options)
        found[f"{c.name} dask"] = lambda c=c: measure(
            "local", c.inputs, *c.options, "--engine", "dask"
        )
        found[f"{c.name} dask-running"] = lambda c=c: measure(
            "local", c.inputs, *c.options, "--engine", "dask", "--scheduler", scheduler
        )
    return found


def _row(name: str, runs: list[Sample], note: str = "") -> str:
    s = summarize(runs)
    buckets = s.median_run.extra.get("buckets")
    return (
        f"| {name} | {s.seconds:.2f} s | {s.low:.2f}–{s.high:.2f} s | {s.cpu:.1f} s "
        f"| {s.peak_mb:.0f} MB | {s.tree_mb:.0f} MB | {buckets if buckets is not None else '–'} "
        f"| {note} |"
    )


def _versus(runs: dict[str, list[Sample]], a: str, b: str, what: str, limit: float) -> str:
    return ratio(runs[a], runs[b]).text(what, limit)


def _memory(runs: dict[str, list[Sample]], small: str, large: str, what: str) -> str:
    low, high = summarize(runs[small]), summarize(runs[large])
    growth = high.tree_mb / low.tree_mb
    flat = "met" if growth < 1.5 else "NOT met"
    under = "met" if high.tree_mb < MEMORY_LIMIT_MB else "NOT met"
    return (
        f"- {what}: the whole run {low.tree_mb:.0f} MB against {high.tree_mb:.0f} MB, "
        f"**{growth:.2f}×** (target < 1.5×: **{flat}**; under 1.5 GiB: **{under}**); its "
        f"largest process {low.peak_mb:.0f} against {high.peak_mb:.0f} MB "
        f"({high.peak_mb / low.peak_mb:.2f}×)"
    )


def _stages(sample: Sample) -> str:
    stages = sample.extra.get("stages", {})
    return ", ".join(f"{k} {v:.2f}" for k, v in stages.items() if v >= 0.005)


def section(
    runs: dict[str, list[Sample]],
    growth: dict[int, Sample],
    corpora: list[Corpus],
    repeat: int,
) -> str:
    lines = [
        "## Scale: buckets, memory and the Dask engine (issue 14)",
        "",
        f"Whole `shadowdiff run` processes, {repeat} interleaved rounds (each measurement a fresh "
        f"process), medians; `before` is the engine of commit `{BASELINE}` (before buckets) run "
        "from a copy of that commit's package with the same venv. `dask` starts its own 2-worker "
        "`LocalCluster` per run; `dask-running` connects to one started before the rounds "
        "(`--scheduler`), whose workers' memory is not the run's. Generated by "
        "`benchmarks/scale.py`, which names the corpora.",
        "",
        f"- Machine: {machine()}",
        f"- Command: `make bench` (`python benchmarks/scale.py --repeat {repeat}`), "
        f"{time.strftime('%Y-%m-%d')}; each run is `shadowdiff run --primary P --mirror M "
        "[--rules benchmarks/taps_rules.toml] [--engine dask [--scheduler ADDRESS]] --out TMP`",
        "",
        "| measurement | wall (median) | range | CPU (median) | peak RSS | whole run | buckets "
        "| result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in corpora:
        before, local = f"{c.name} before", f"{c.name} local"
        lines.append(_row(before, runs[before]))
        lines.append(_row(local, runs[local], _versus(runs, local, before, "before", 1.10)))
        for kind in ("dask", "dask-running"):
            name = f"{c.name} {kind}"
            lines.append(_row(name, runs[name], _versus(runs, name, local, "local", 1.20)))
    for name in ("json-250k local", "taps-40k local"):
        lines.append(_row(name, runs[name]))
    lines += [
        "",
        "Memory, the local engine (highest of the rounds). `peak RSS` is the largest single "
        "process (the run's, or a worker's); `whole run` is the peak of the process tree's "
        "memory at once, the proportional set sizes of the run and its workers summed (a page a "
        "forked worker shares with the run counted once), sampled every 0.1 s: what the run "
        "takes of the machine, and what the targets are held to:",
        _memory(runs, "json-250k local", "json-1M local", "JSON logs, 250k against 1M pairs"),
        _memory(runs, "taps-10k local", "taps-40k local", "tap traces, 10k against 40k pairs"),
        "",
        "Stages of the median local runs (s, the manifest's `timings_s`):",
    ]
    for c in corpora:
        name = f"{c.name} local"
        lines.append(f"- {name}: {_stages(summarize(runs[name]).median_run)}")
    lines += [
        "",
        "Growth, the local engine on 1×, 4× and 16× the 2 × 250k JSON corpus (once each):",
        "",
    ]
    lines.append(
        "| window | pairs | wall | CPU | peak RSS | whole run | buckets | µs of CPU per pair |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for factor, sample in growth.items():
        pairs = 250_000 * factor
        lines.append(
            f"| {factor}× | {pairs:,} | {sample.seconds:.2f} s | {sample.cpu:.1f} s "
            f"| {sample.peak_mb:.0f} MB | {sample.tree_mb:.0f} MB | {sample.extra.get('buckets')} "
            f"| {sample.cpu / pairs * 1e6:.1f} |"
        )
    checks = {name: _diverged(samples) for name, samples in runs.items()}
    lines += ["", f"- Check, diverged pairs per measurement (every round): {_checks(checks)}"]
    return "\n".join(lines) + "\n"


def _diverged(samples: list[Sample]) -> set[int]:
    return {int(s.extra["outcomes"].get("diverged", 0)) for s in samples}


def _checks(checks: dict[str, set[int]]) -> str:
    shown = []
    for name, values in checks.items():
        text = ", ".join(f"{v:,}" for v in sorted(values))
        shown.append(f"{name} {text}" if len(values) == 1 else f"{name} {text} (**differ**)")
    return "; ".join(shown)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    rules = ("--rules", str(TAPS_RULES))
    corpora = [
        Corpus("json-1M", json_logs(1_000_000)),
        Corpus("text-1M", json_logs(1_000_000, "text")),
        Corpus("taps-10k", tap_dirs(10_000), rules),
    ]
    extra = {
        "json-250k local": lambda: measure("local", json_logs(250_000)),
        "taps-40k local": lambda: measure("local", tap_dirs(40_000), *rules),
    }
    baseline_tree()
    with standing_cluster() as scheduler:
        measures = {**throughput_measures(corpora, scheduler), **extra}
        runs = rounds(measures, args.repeat)
    growth = {factor: measure("local", json_logs(250_000 * factor)) for factor in (1, 4, 16)}
    text = section(runs, growth, corpora, args.repeat)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
