"""Access logs, end to end: ``shadowdiff run`` against the DuckDB an analyst writes by hand.

Run it with ``make bench`` or ``python benchmarks/run.py`` (``-n`` lines per side, default 1M;
``--repeat`` rounds, default 5; ``--no-write`` to leave BENCHMARKS.md alone). The corpus (Istio
JSON and text access logs, 5% planted status differences) comes from benchmarks/generate.py and
is kept in benchmarks/data/ (made only when missing).

Five measurements, each a fresh process, run in interleaved rounds (each round runs every one
once, in turn):

- the hand-written script, benchmarks/handwritten.sql (through benchmarks/sqlrun.py): reads both
  files, full-outer-joins them on ``request_id``, derives outcomes and endpoints, per-endpoint
  ``quantile_cont`` of the durations, and COPYs pairs, latency and both sides to Parquet;
- the full read of both files into tables, benchmarks/full_read.sql;
- ``shadowdiff run`` on the JSON files and on the text files, the CLI as a user runs it;
- ``shadowdiff run`` on the same JSON lines as a window of rotated ``.gz`` logs
  (``ROTATED_FILES`` per side, in a directory per side), as logrotate leaves them.

Reported: median wall time, its range, median CPU time (user + system of the child), peak RSS,
and the ratios issue 10 sets targets for (JSON vs script ≤ 1.25×, JSON vs full read ≤ 2×, text
vs JSON ≤ 1.25×), each the median of the rounds' ratios with their range, and the rotated
logs' time against the plain JSON run's (no target). Checked: every run finds the planted
number of diverged pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generate import ROTATED_FILES, generate, planted, rotated  # noqa: E402
from benchmarks.procs import (  # noqa: E402
    Ratio,
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

HEADING = "## Access logs: end to end (issue: the access-log pipeline)"
SCRIPT = HERE / "handwritten.sql"
FULL_READ = HERE / "full_read.sql"
SQLRUN = HERE / "sqlrun.py"


def _shown(path: Path) -> str:
    return shown(path, ROOT)


def _sql_command(script: Path, primary: Path, mirror: Path, out: str | None) -> list[str]:
    variables = [f"primary_log={_shown(primary)}", f"mirror_log={_shown(mirror)}"]
    if out is not None:
        variables.append(f"out_dir={out}")
    return [sys.executable, _shown(SQLRUN), _shown(script), *variables]


def _script(primary: Path, mirror: Path) -> Sample:
    """The hand-written script into a fresh directory; ``extra`` holds its diverged count."""
    out = Path(tempfile.mkdtemp(prefix="bench-sql-"))
    try:
        sample = run_process(_sql_command(SCRIPT, primary, mirror, str(out)), cwd=str(ROOT))
        pairs = str(out / "pairs.parquet").replace("'", "''")
        row = (
            duckdb.connect()
            .execute(f"SELECT count(*) FROM '{pairs}' WHERE outcome = 'diverged'")
            .fetchone()
        )
        assert row is not None
        return dataclasses.replace(sample, extra={"diverged": row[0]})
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _full_read(primary: Path, mirror: Path) -> Sample:
    return run_process(_sql_command(FULL_READ, primary, mirror, None), cwd=str(ROOT))


def _shadowdiff(primary: Path, mirror: Path) -> Sample:
    sample = run_shadowdiff(_shown(primary), _shown(mirror), cwd=str(ROOT))
    outcomes = sample.extra["outcomes"]
    return dataclasses.replace(
        sample,
        extra={**sample.extra, "diverged": outcomes.get("diverged", 0)},
    )


def measures(files: dict[str, Path]) -> dict[str, Callable[[], Sample]]:
    pj, mj = files["primary-json"], files["mirror-json"]
    pt, mt = files["primary-text"], files["mirror-text"]
    pg, mg = files["primary-rotated"], files["mirror-rotated"]
    return {
        "script": lambda: _script(pj, mj),
        "full-read": lambda: _full_read(pj, mj),
        "json": lambda: _shadowdiff(pj, mj),
        "text": lambda: _shadowdiff(pt, mt),
        "rotated": lambda: _shadowdiff(pg, mg),
    }


@dataclass(frozen=True)
class Results:
    n: int
    repeat: int
    files: dict[str, Path]
    runs: dict[str, list[Sample]]

    def summary(self, name: str) -> Summary:
        return summarize(self.runs[name])

    def ratio(self, numerator: str, denominator: str) -> Ratio:
        return ratio(self.runs[numerator], self.runs[denominator])


def _table(res: Results) -> list[str]:
    json_script = res.ratio("json", "script")
    json_read = res.ratio("json", "full-read")
    text_json = res.ratio("text", "json")
    rotated_json = res.ratio("rotated", "json")
    text_rate = res.n / res.summary("text").seconds
    rows = [
        ("hand-written DuckDB script, `benchmarks/handwritten.sql` (baseline)", "script", ""),
        (
            "DuckDB full read of both JSON files into tables, `benchmarks/full_read.sql`",
            "full-read",
            "",
        ),
        (
            "shadowdiff `run` on the JSON files",
            "json",
            f"{json_script.text('the script', 1.25)}; {json_read.text('the full read', 2)}",
        ),
        (
            "shadowdiff `run` on the text files",
            "text",
            f"{text_json.text('the JSON run', 1.25)}; {text_rate / 1000:.0f}k lines/s per side",
        ),
        (
            f"shadowdiff `run` on the JSON lines as {ROTATED_FILES} rotated `.gz` logs per side",
            "rotated",
            f"{rotated_json.median:.2f}× the JSON run (rounds {rotated_json.low:.2f}–"
            f"{rotated_json.high:.2f})",
        ),
    ]
    lines = [
        "| measurement | wall time (median) | range | CPU time (median) | peak RSS | whole run "
        "| result |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, name, note in rows:
        s = res.summary(name)
        lines.append(
            f"| {label} | {s.seconds:.2f} s | {s.low:.2f}–{s.high:.2f} s | {s.cpu:.1f} s "
            f"| {s.peak_mb:.0f} MB | {s.tree_mb:.0f} MB | {note} |"
        )
    return lines


def _commands(res: Results) -> list[str]:
    pj, mj = res.files["primary-json"], res.files["mirror-json"]
    pt, mt = res.files["primary-text"], res.files["mirror-text"]
    pg, mg = res.files["primary-rotated"], res.files["mirror-rotated"]
    shown = [
        ("script", _sql_command(SCRIPT, pj, mj, "TMP")),
        ("full read", _sql_command(FULL_READ, pj, mj, None)),
        ("JSON", shadowdiff_command(_shown(pj), _shown(mj), "TMP/run")),
        ("text", shadowdiff_command(_shown(pt), _shown(mt), "TMP/run")),
        ("rotated", shadowdiff_command(_shown(pg), _shown(mg), "TMP/run")),
    ]
    return [
        f"  - {name}: `{shlex.join([_shown(Path(argv[0])), *argv[1:]])}`" for name, argv in shown
    ]


def _stages(res: Results) -> list[str]:
    lines = [
        f"- Stages of the median {kind} run (s): "
        + ", ".join(
            f"{stage} {value:.2f}"
            for stage, value in res.summary(name).median_run.extra["stages"].items()
        )
        for kind, name in (("JSON", "json"), ("text", "text"), ("rotated", "rotated"))
    ]
    return [
        *lines,
        "- Stages are the manifest's `timings_s`; `store` is what was left of the background "
        "Parquet writing after the last stage; `noise` is part of `diff`.",
    ]


def _check(res: Results) -> tuple[str, bool]:
    expected = planted(res.n)
    found = {
        name: sorted({r.extra["diverged"] for r in res.runs[name]})
        for name in ("script", "json", "text", "rotated")
    }
    ok = all(values == [expected] for values in found.values())
    counts = ", ".join(f"{name} {'/'.join(f'{v:,}' for v in vs)}" for name, vs in found.items())
    verdict = "all equal" if ok else "**MISMATCH**"
    return (
        f"- Check: diverged pairs in every round: {counts} ({expected:,} planted): {verdict}.",
        ok,
    )


def section(res: Results) -> tuple[str, bool]:
    check, ok = _check(res)
    command = "python benchmarks/run.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    lines = [
        HEADING,
        "",
        f"{res.n:,} primary + {res.n:,} mirror lines (Istio keys/format, 5% status differences), "
        f"generated by `benchmarks/generate.py` (the JSON lines also as {ROTATED_FILES} gzip files "
        "per side, `access.log.1.gz` … in a directory per side); "
        f"{res.repeat} rounds, each running the five "
        "measurements in turn, each in a fresh process; medians. Ratios are the median of the "
        "rounds' ratios of wall times, with their range (issue 10's targets).",
        "",
        f"- Machine: {machine()}",
        f"- Command: `make bench` (`{command}`), {datetime.now(UTC):%Y-%m-%d}; each measurement "
        "runs from the repository's root as (TMP a fresh directory):",
        *_commands(res),
        "",
        *_table(res),
        "",
        *_stages(res),
        "- CPU time is user + system time of the child process (and any workers it reaped), "
        f"on {os.cpu_count()} cores: the runs are CPU-bound, so it is the steadier figure when "
        "other work shares the machine. Peak RSS is the highest of the rounds. shadowdiff's "
        "wall time includes the summary it prints at the end, as a user sees it.",
        check,
        "",
    ]
    return "\n".join(lines), ok


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="lines per side")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    files = generate(args.data, args.n)
    for side, directory in rotated(args.data, files, args.n).items():
        files[f"{side}-rotated"] = directory
    runs = rounds(measures(files), args.repeat)
    text, ok = section(Results(args.n, args.repeat, files, runs))
    print(text)
    if not args.no_write:
        write_section(text)
    if not ok:
        sys.exit("the diverged counts do not match the planted differences")


if __name__ == "__main__":
    main()
