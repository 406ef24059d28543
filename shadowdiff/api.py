"""The Python API: one function per CLI command (the CLI holds no logic)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from shadowdiff import check as check_module
from shadowdiff import config as config_module
from shadowdiff import query, settings, store
from shadowdiff import report as report_module
from shadowdiff.engine.local import Progress, RunResult
from shadowdiff.engine.local import run as run_locally
from shadowdiff.errors import ConfigError
from shadowdiff.noise.summary import Summary as NoiseSummary
from shadowdiff.noise.thresholds import DEFAULT as DEFAULT_THRESHOLDS
from shadowdiff.noise.thresholds import Thresholds
from shadowdiff.window import Bounds


def load_config(
    pipeline: str | Path | None = None, rules: str | Path | None = None
) -> config_module.Config:
    """A config from a pipeline file and/or a rules file; a rules file's sections win."""
    data: dict[str, Any] = {}
    base: Path | None = None
    origin = "<flags>"
    for path in (pipeline, rules):
        if path is None:
            continue
        file = Path(path)
        try:
            loaded = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"{file}: no such file.") from e
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{file}: cannot be read as TOML ({e}).") from e
        except RecursionError as e:  # tomllib recurses once per nested array or inline table
            raise ConfigError(f"{file}: cannot be read as TOML (nested too deeply).") from e
        if path is pipeline:
            base, origin = file.parent, str(file)
        elif "inputs" in loaded or "output" in loaded:
            raise ConfigError(
                f"{file}: a rules file holds rules only ([sides], [endpoints], [ignore], …); "
                "put [inputs] and [output] in a pipeline file."
            )
        data.update(loaded)
    return config_module.from_mapping(data, origin=origin, base=base)


def run(
    pipeline: str | Path | None = None,
    *,
    primary: Sequence[str] = (),
    mirror: Sequence[str] = (),
    secondary: Sequence[str] = (),
    inputs: Sequence[str] = (),
    source: str | None = None,
    log_format: str | None = None,
    rules: str | Path | None = None,
    pairing_key: str | None = None,
    pair_by: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    out: str | Path | None = None,
    engine: str | None = None,
    scheduler: str | None = None,
    buckets: int | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Collect, pair and diff one mirroring window and write the run directory. ``engine``:
    ``"local"`` (the default) or ``"dask"`` (on the cluster at ``scheduler``, else a
    ``LocalCluster``); ``buckets``: how many request-id buckets (default: from the inputs'
    size).

    >>> result = shadowdiff.run(primary=["logs/v1"], mirror=["logs/v2"], out="out/run1")
    >>> result.manifest["outcomes"]
    """
    config = load_config(pipeline, rules).with_overrides(
        primary=tuple(primary),
        mirror=tuple(mirror),
        secondary=tuple(secondary),
        inputs=tuple(inputs),
        source=source,
        log_format=log_format,
        pairing_key=pairing_key.lower() if pairing_key else None,
        pair_by=pair_by,
        engine=engine,
        scheduler=scheduler,
        buckets=buckets,
    )
    if since is not None or until is not None:  # a bound given here replaces the file's
        config = replace(
            config,
            window=Bounds(
                config_module.moment(since, "--since", "the command line") or config.window.since,
                config_module.moment(until, "--until", "the command line") or config.window.until,
            ),
        )
    target = Path(out or config.out or default_out())
    return run_locally(config, target, progress)


@dataclass(frozen=True)
class PipelineResult:
    """A whole scheduled job: the run, its report (unless ``[report] enabled = false``) and its
    check (when the file has a ``[check]`` section). ``exit_code`` is the check's."""

    run: RunResult
    report: report_module.Written | None
    check: check_module.CheckResult | None
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return self.check.exit_code if self.check else 0


def run_pipeline(pipeline: str | Path, **overrides: Any) -> PipelineResult:
    """``shadowdiff run PIPELINE.toml``: collect → diff → store → report → check.

    ``overrides`` are :func:`run`'s keyword arguments (CLI flags win over the file).
    """
    result = run(pipeline, **overrides)
    config = result.config
    section = config.extra.get("report", {})
    written = None
    notes: list[str] = []
    where = str(pipeline)
    if settings.flag(section.get("enabled"), "[report] enabled", where, True):
        baseline = settings.text(section.get("baseline"), "[report] baseline", where)
        if baseline is not None:
            # Resolved, so a `latest` symlink is recorded as the run it pointed at.
            path = Path(config_module.relative_to(Path(pipeline).parent, str(baseline)))
            baseline = os.path.realpath(path)
            if not (path / store.MANIFEST).exists():
                # The first run of a schedule has nothing to compare with yet.
                notes.append(f"no baseline run at {path} yet: the report compares with nothing")
                baseline = None
        written = report(result.out, baseline=baseline)
    checked = check(result.out, config=pipeline) if "check" in config.extra else None
    return PipelineResult(result, written, checked, tuple(notes))


def default_out() -> str:
    return f"out/run-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def sql(run_dir: str | Path, statement: str) -> duckdb.DuckDBPyRelation:
    """Run ``statement`` over the run's tables; the caller fetches the result."""
    con = query.open(run_dir)
    try:
        return con.sql(statement)
    except duckdb.Error as e:
        raise ConfigError(f"The query failed: {str(e).splitlines()[0]}") from e


def report(
    run_dir: str | Path,
    *,
    html: str | Path | None = None,
    markdown: str | Path | None = None,
    json: str | Path | None = None,
    baseline: str | Path | None = None,
) -> report_module.Written:
    """Write the HTML, Markdown and JSON reports of a run (by default ``report.html``,
    ``report.md`` and ``report.json`` in ``run_dir``), compared with ``baseline`` if given.

    >>> shadowdiff.api.report("out/run2", baseline="out/run1").html
    PosixPath('out/run2/report.html')
    """
    return report_module.write(
        run_dir, html_path=html, markdown_path=markdown, json_path=json, baseline=baseline
    )


def check(
    run_dir: str | Path,
    *,
    config: str | Path | None = None,
    max_divergence_rate: float | None = None,
    max_endpoint_divergence_rate: Sequence[str] = (),
    max_latency_ratio: Sequence[str] = (),
    max_orphan_rate: float | None = None,
    max_reject_rate: float | None = None,
    max_mirrored_writes: int | None = None,
    junit: str | Path | None = None,
) -> check_module.CheckResult:
    """Check a run against thresholds; ``result.exit_code`` is 0 (within) or 1 (crossed).

    Thresholds: the ``[check]`` section of ``config`` (a pipeline or rules file) or, without
    one, the ``[check]`` the run was made with (its manifest); each flag overrides its key.
    ``max_endpoint_divergence_rate`` items read ``ENDPOINT=RATE``, ``max_latency_ratio`` items
    ``pNN=RATIO``. Writes JUnit XML to ``junit`` when given.

    >>> shadowdiff.api.check("out/run1", max_latency_ratio=["p99=1.5"]).violations
    """
    directory = Path(run_dir)
    manifest = store.read_manifest(directory)
    if config is not None:
        loaded = config_module.load(config)
        section, origin = loaded.extra.get("check", {}), str(config)
    else:
        recorded = manifest.get("config", {}).get("extra", {})
        section, origin = recorded.get("check", {}), f"{directory}/manifest.json"
    limits = check_module.thresholds(section, origin).overridden_by(
        check_module.thresholds_from_flags(
            max_divergence_rate=max_divergence_rate,
            max_endpoint_divergence_rate=max_endpoint_divergence_rate,
            max_latency_ratio=max_latency_ratio,
            max_orphan_rate=max_orphan_rate,
            max_reject_rate=max_reject_rate,
            max_mirrored_writes=max_mirrored_writes,
        )
    )
    if limits.empty:
        raise ConfigError(
            "No thresholds to check. Pass some (--max-divergence-rate 0.01, "
            "--max-latency-ratio p99=1.5, …) or a file with a [check] section (--config FILE)."
        )
    result = check_module.check(directory, limits)
    if junit is not None:
        check_module.write_junit(result, junit)
    return result


def noise(run_dir: str | Path) -> NoiseSummary:
    """The noise verdicts of a run, per endpoint × pattern × kind, with their evidence.

    >>> print(shadowdiff.api.noise("out/run1").text())    # the table and the thresholds
    >>> print(shadowdiff.api.noise("out/run1").rules())   # an [ignore] block for a rules file
    """
    directory = Path(run_dir)
    manifest = store.read_manifest(directory)
    secondary = manifest.get("conservation", {}).get("secondary", {}).get("read", 0) > 0
    con = query.open(directory)
    try:
        table = con.sql("SELECT * FROM noise ORDER BY endpoint, pattern, kind").to_arrow_table()
    except duckdb.Error as e:
        raise ConfigError(f"{directory}: no noise table ({str(e).splitlines()[0]}).") from e
    used = manifest.get("config", {}).get("noise")  # absent from runs made before [noise]
    thresholds = Thresholds.from_mapping(used, str(directory)) if used else DEFAULT_THRESHOLDS
    return NoiseSummary.from_table(table, secondary, thresholds)
