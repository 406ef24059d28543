"""Whole processes measured side by side: wall time, CPU time and peak memory of a child.

Used by benchmarks/run.py and benchmarks/taps.py (not run on its own). Every measurement is a
fresh child process, started and reaped here with ``os.wait4``, so its CPU time (user + system)
and peak RSS are the child's own, including any worker processes it reaped. Measurements run in
interleaved rounds, each round every measurement once, in turn: a machine whose speed drifts
(shared cores) then slows the baseline and the tool alike, and each round gives a fair ratio.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One run of one measurement."""

    seconds: float
    cpu: float  # user + system seconds of the child (and the children it reaped)
    peak_mb: float  # peak resident set size of the child (or of its largest reaped child)
    stdout: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. stage timings, counts
    # Peak of the whole process tree's memory at once: the child and its workers, their
    # proportional set sizes summed (a page a forked worker shares with its parent counted
    # once), sampled every TREE_SAMPLE_S. What the run takes of the machine.
    tree_mb: float = 0.0


@dataclass(frozen=True)
class Summary:
    """The runs of one measurement: medians, the wall-time range and the highest peak."""

    seconds: float
    low: float
    high: float
    cpu: float
    peak_mb: float
    median_run: Sample
    tree_mb: float = 0.0


class ChildFailed(RuntimeError):
    pass


TREE_SAMPLE_S = 0.1


def run_process(argv: Sequence[str], cwd: str | None = None) -> Sample:
    """Run ``argv`` to its end; fail loudly (with its stderr) unless it exits 0."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, cwd=cwd)
        tree = _TreeMemory(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        tree_mb = tree.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-4000:]
            raise ChildFailed(f"exit {proc.returncode}: {shlex.join(argv)}\n{tail}")
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    return Sample(
        seconds=seconds,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        stdout=stdout,
        tree_mb=tree_mb,
    )


class _TreeMemory:
    """The peak of a process tree's summed PSS (``/proc/PID/smaps_rollup``), sampled by a
    thread until :meth:`stop`. Linux only; 0 where ``/proc`` does not tell."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kb = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_kb / 1024

    def _sample(self) -> None:
        while not self._done.wait(TREE_SAMPLE_S):
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(pid) for pid in _tree(self.root)))


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    found += _tree(int(child))
    except OSError:
        pass  # gone, or no /proc
    return found


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass  # the process ended between the listing and the read
    return 0


def rounds(measures: dict[str, Callable[[], Sample]], repeat: int) -> dict[str, list[Sample]]:
    """``repeat`` rounds; each runs every measurement once, in the order given."""
    runs: dict[str, list[Sample]] = {name: [] for name in measures}
    for number in range(1, repeat + 1):
        for name, measure in measures.items():
            sample = measure()
            runs[name].append(sample)
            print(
                f"round {number}/{repeat} {name}: {sample.seconds:.2f} s wall, "
                f"{sample.cpu:.2f} s CPU, {sample.peak_mb:.0f} MB "
                f"(whole tree {sample.tree_mb:.0f} MB)",
                flush=True,
            )
    return runs


def summarize(runs: list[Sample]) -> Summary:
    seconds = [r.seconds for r in runs]
    by_time = sorted(runs, key=lambda r: r.seconds)
    return Summary(
        seconds=statistics.median(seconds),
        low=min(seconds),
        high=max(seconds),
        cpu=statistics.median(r.cpu for r in runs),
        peak_mb=max(r.peak_mb for r in runs),
        median_run=by_time[(len(by_time) - 1) // 2],
        tree_mb=max(r.tree_mb for r in runs),
    )


@dataclass(frozen=True)
class Ratio:
    """Per-round ratios of two measurements' wall times: their median and range."""

    median: float
    low: float
    high: float

    def met(self, limit: float, at_least: bool = False) -> bool:
        return self.median >= limit if at_least else self.median <= limit

    def text(self, what: str, limit: float, at_least: bool = False) -> str:
        """E.g. ``1.94× the script (rounds 1.69–2.18; target ≤ 1.25×: **NOT met**)``."""
        verdict = "met" if self.met(limit, at_least) else "NOT met"
        return (
            f"{self.median:.2f}× {what} (rounds {self.low:.2f}–{self.high:.2f}; "
            f"target {'≥' if at_least else '≤'} {limit:g}×: **{verdict}**)"
        )


def ratio(numerator: list[Sample], denominator: list[Sample]) -> Ratio:
    values = [a.seconds / b.seconds for a, b in zip(numerator, denominator, strict=True)]
    return Ratio(statistics.median(values), min(values), max(values))


# --- shadowdiff as a user runs it ---------------------------------------------------------------


def shadowdiff_bin() -> str:
    """The ``shadowdiff`` script next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("shadowdiff")
    if beside.exists():
        return str(beside)
    found = shutil.which("shadowdiff")
    if found is None:
        raise SystemExit("no shadowdiff script beside this Python or on PATH")
    return found


def shadowdiff_command(primary: str, mirror: str, out: str, *options: str) -> list[str]:
    return [
        shadowdiff_bin(),
        "run",
        "--primary",
        primary,
        "--mirror",
        mirror,
        *options,
        "--out",
        out,
    ]


def outcomes(out: Path) -> dict[str, int]:
    """Pairs per outcome, read back from the run's ``pairs`` table with ``shadowdiff sql``."""
    done = subprocess.run(
        [
            shadowdiff_bin(),
            "sql",
            str(out),
            "SELECT outcome, count(*) AS n FROM pairs GROUP BY 1",
            "--format",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return {row["outcome"]: int(row["n"]) for row in json.loads(done.stdout)}


def run_shadowdiff(primary: str, mirror: str, *options: str, cwd: str | None = None) -> Sample:
    """One ``shadowdiff run`` process into a fresh directory. ``extra`` holds the manifest's
    ``timings_s`` (``stages``) and the outcome counts (``outcomes``), read after the timing."""
    parent = Path(tempfile.mkdtemp(prefix="bench-out-"))
    try:
        out = parent / "run"
        sample = run_process(shadowdiff_command(primary, mirror, str(out), *options), cwd=cwd)
        manifest = json.loads((out / "manifest.json").read_text())
        extra = {"stages": manifest["timings_s"], "outcomes": outcomes(out)}
        return dataclasses.replace(sample, extra=extra)
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def shown(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (the repository, where children run) when inside it."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(root))
    except ValueError:
        return str(path)
