"""The command line: each command parses flags and calls one library function. No logic here."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from shadowdiff import __version__, api, progress
from shadowdiff import capture as capture_module
from shadowdiff.errors import OutputError, ShadowdiffError, no_room
from shadowdiff.report.summary import summary

F = TypeVar("F", bound=Callable[..., Any])


def _friendly(func: F) -> F:
    """Expected errors become a message and an exit code, never a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ShadowdiffError as e:
            click.echo(f"shadowdiff: error: {e}", err=True)
            sys.exit(e.exit_code)
        except OSError as e:  # a report or export that finds the disk full
            reason = no_room(e)
            if reason is None:
                raise
            click.echo(
                f"shadowdiff: error: cannot write {e.filename or 'a file'}: {reason}.", err=True
            )
            sys.exit(OutputError.exit_code)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(__version__, prog_name="shadowdiff")
def main() -> None:
    """Diff mirrored (shadow) HTTP traffic into queryable Parquet tables."""


@main.command()
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--primary",
    multiple=True,
    help="Primary (current version) inputs: files, dirs, globs, URLs (s3://, gs://, …).",
)
@click.option("--mirror", multiple=True, help="Mirror (candidate) inputs.")
@click.option(
    "--secondary", multiple=True, help="A second copy of the primary: the noise baseline."
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help="Mixed inputs; sides from [sides] rules or the -shadow authority suffix.",
)
@click.option("--source", default=None, help="Input format: envoy-text, envoy-json, … or auto.")
@click.option("--log-format", default=None, help="Your Envoy access-log format string, verbatim.")
@click.option("--rules", type=click.Path(dir_okay=False), help="Rules TOML file.")
@click.option("--pairing-key", default=None, help="Request header that pairs requests.")
@click.option(
    "--pair-by",
    type=click.Choice(["request_id", "fingerprint"]),
    default=None,
    help="Pair by the request-id header (default) or by method, path and body in time order.",
)
@click.option("--since", default=None, help="Only primary requests from this time (ISO 8601).")
@click.option("--until", default=None, help="Only primary requests before this time.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory to write.")
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default=None,
    help="Run here (local, the default) or on a Dask cluster (dask).",
)
@click.option(
    "--scheduler",
    default=None,
    help="With --engine dask: the scheduler's address (default: a LocalCluster here).",
)
@click.option(
    "--buckets",
    type=click.IntRange(1, 4096),
    default=None,
    help="Request-id buckets to pair and diff in (default: one per 256 MB of input).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the run directory.")
@_friendly
def run(
    pipeline: str | None,
    primary: tuple[str, ...],
    mirror: tuple[str, ...],
    secondary: tuple[str, ...],
    inputs: tuple[str, ...],
    source: str | None,
    log_format: str | None,
    rules: str | None,
    pairing_key: str | None,
    pair_by: str | None,
    since: str | None,
    until: str | None,
    out: str | None,
    engine: str | None,
    scheduler: str | None,
    buckets: int | None,
    quiet: bool,
) -> None:
    """Collect, pair and diff a mirroring window; write the tables to --out.

    With a PIPELINE file, also write its report and run its [check]: the exit code is the
    check's (0 within the thresholds, 1 crossed).
    """
    with progress.terminal() as say:
        options: dict[str, Any] = dict(
            primary=primary,
            mirror=mirror,
            secondary=secondary,
            inputs=inputs,
            source=source,
            log_format=log_format,
            rules=rules,
            pairing_key=pairing_key,
            pair_by=pair_by,
            since=since,
            until=until,
            out=out,
            engine=engine,
            scheduler=scheduler,
            buckets=buckets,
            progress=say,
        )
        if pipeline is None:
            result = api.run(None, **options)
            click.echo(str(result.out) if quiet else summary(result.out))
            return
        job = api.run_pipeline(pipeline, **options)
    click.echo(str(job.run.out) if quiet else summary(job.run.out))
    for note in job.notes:
        click.echo(f"note: {note}", err=True)
    if job.report is not None:
        click.echo(
            f"\nReport: {job.report.html} (also {job.report.markdown.name}, {job.report.json.name})"
        )
    if job.check is not None:
        click.echo("\n" + "\n".join(job.check.lines()))
        sys.exit(job.check.exit_code)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("statement")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@_friendly
def sql(run_dir: str, statement: str, fmt: str) -> None:
    """Query a run directory with DuckDB (tables: exchanges, pairs, diffs, latency, noise,
    rejects)."""
    relation = api.sql(Path(run_dir), statement)
    columns = list(relation.columns)
    rows = relation.fetchall()
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt == "json":
        click.echo(
            json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2)
        )
    else:
        click.echo(_table(columns, rows))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--html", type=click.Path(dir_okay=False), help="HTML file [DIR/report.html].")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Markdown file [DIR/report.md].")
@click.option(
    "--json", "json_file", type=click.Path(dir_okay=False), help="JSON [DIR/report.json]."
)
@click.option(
    "--baseline",
    type=click.Path(file_okay=False),
    help="An earlier run directory to compare with: new and gone patterns, rate and latency moves.",
)
@_friendly
def report(
    run_dir: str,
    html: str | None,
    markdown: str | None,
    json_file: str | None,
    baseline: str | None,
) -> None:
    """Write the HTML, Markdown and JSON reports of a run directory."""
    written = api.report(run_dir, html=html, markdown=markdown, json=json_file, baseline=baseline)
    click.echo("\n".join(str(path) for path in written.paths()))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="Pipeline or rules TOML whose [check] section holds the thresholds "
    "[default: the [check] the run was made with].",
)
@click.option(
    "--max-divergence-rate",
    type=float,
    help="Most diverged / paired requests over the whole run, e.g. 0.01.",
)
@click.option(
    "--max-endpoint-divergence-rate",
    multiple=True,
    metavar="ENDPOINT=RATE",
    help="Per endpoint ('GET /api/x=0.05'; '*=0.1' for every endpoint). Repeatable.",
)
@click.option(
    "--max-latency-ratio",
    multiple=True,
    metavar="pNN=RATIO",
    help="Most mirror/primary latency per endpoint, e.g. p99=1.5; violated when the 95% CI "
    "lower bound is above it. Repeatable (p50, p90, p99).",
)
@click.option("--max-orphan-rate", type=float, help="Most orphaned / all request ids.")
@click.option(
    "--max-mirrored-writes",
    type=int,
    help="Most non-idempotent requests (POST, PUT, PATCH, DELETE) the mirror may have received.",
)
@click.option("--max-reject-rate", type=float, help="Most rejected / read records.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write the verdicts as JUnit XML.")
@_friendly
def check(
    run_dir: str,
    config: str | None,
    max_divergence_rate: float | None,
    max_endpoint_divergence_rate: tuple[str, ...],
    max_latency_ratio: tuple[str, ...],
    max_orphan_rate: float | None,
    max_reject_rate: float | None,
    max_mirrored_writes: int | None,
    junit: str | None,
) -> None:
    """Check a run against thresholds: exit 0 within, 1 crossed (one line per violation)."""
    result = api.check(
        run_dir,
        config=config,
        max_divergence_rate=max_divergence_rate,
        max_endpoint_divergence_rate=max_endpoint_divergence_rate,
        max_latency_ratio=max_latency_ratio,
        max_orphan_rate=max_orphan_rate,
        max_reject_rate=max_reject_rate,
        max_mirrored_writes=max_mirrored_writes,
        junit=junit,
    )
    click.echo("\n".join(result.lines()))
    sys.exit(result.exit_code)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--suggest-rules",
    is_flag=True,
    help="Print an [ignore] block for a rules file (patterns that are noise everywhere) instead.",
)
@_friendly
def noise(run_dir: str, suggest_rules: bool) -> None:
    """Print the noise verdicts per endpoint × pattern × kind, their evidence and thresholds."""
    summary = api.noise(run_dir)
    click.echo(summary.rules() if suggest_rules else summary.text())


def _table(columns: list[str], rows: list[tuple[Any, ...]], width: int = 48) -> str:
    def cell(value: Any) -> str:
        text = "NULL" if value is None else str(value)
        return text if len(text) <= width else text[: width - 1] + "…"

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), line]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


@main.command()
@click.option("-i", "--interface", required=True, help="Interface to capture on (lo, eth0, …).")
@click.option(
    "-f", "--filter", "bpf", default=None, help="BPF filter, e.g. 'tcp port 8080 or tcp port 8081'."
)
@click.option(
    "-w",
    "--out",
    "prefix",
    required=True,
    type=click.Path(dir_okay=False),
    help="Files to write: PREFIX-00000.pcap, PREFIX-00001.pcap, … (and a .stats.json each).",
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--rotate-size", default=None, help="New file past this size (e.g. 100MB).")
@click.option("--rotate-seconds", type=float, default=None, help="New file after this long.")
@click.option(
    "--buffer",
    "buffer_size",
    default="64MiB",
    show_default=True,
    help="Kernel receive buffer: too small and a busy interface drops packets.",
)
@click.option("--snaplen", type=int, default=capture_module.DEFAULT_SNAPLEN, show_default=True)
@_friendly
def capture(
    interface: str,
    bpf: str | None,
    prefix: str,
    duration: float | None,
    rotate_size: str | None,
    rotate_seconds: float | None,
    buffer_size: str,
    snaplen: int,
) -> None:
    """Capture HTTP traffic live into rotating pcap files, for `shadowdiff run`.

    Stops on Ctrl-C, SIGTERM or --duration, every file closed. Packets the kernel dropped are
    counted in the progress line, in each file's .stats.json and then in the run's manifest.
    """
    settings = capture_module.Settings(
        interface=interface,
        prefix=Path(prefix),
        bpf=bpf,
        duration=duration,
        rotate_bytes=None if rotate_size is None else capture_module.parse_size(rotate_size),
        rotate_seconds=rotate_seconds,
        buffer_bytes=capture_module.parse_size(buffer_size),
        snaplen=snaplen,
    )
    with progress.terminal() as say:
        totals = capture_module.capture(settings, say)
    click.echo(totals.line())
    for name in totals.files:
        click.echo(name)
    if totals.kernel_drops:
        click.echo(
            f"warning: the kernel dropped {totals.kernel_drops:,} packets: give the capture a "
            "larger --buffer or a narrower --filter.",
            err=True,
        )


def entry() -> None:
    """The ``shadowdiff`` command. When a command is done it leaves without Python's teardown:
    freeing every object of a large run (DuckDB, Arrow buffers, a million small ones) costs
    0.2–0.4 s of nothing, and every file it wrote is closed and in place by then."""
    try:
        main()
        code: object = 0
    except SystemExit as done:
        code = done.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (``| head``), a closed stream
            pass
    os._exit(code if isinstance(code, int) else 0)
