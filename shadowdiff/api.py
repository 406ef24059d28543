"""The Python API: one function per CLI command (the CLI holds no logic)."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from shadowdiff import config as config_module
from shadowdiff import query
from shadowdiff.engine.local import Progress, RunResult
from shadowdiff.engine.local import run as run_locally
from shadowdiff.errors import ConfigError


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
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Collect, pair and diff one mirroring window and write the run directory.

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
    )
    target = Path(out or config.out or default_out())
    return run_locally(config, target, progress)


def default_out() -> str:
    return f"out/run-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def sql(run_dir: str | Path, statement: str) -> duckdb.DuckDBPyRelation:
    """Run ``statement`` over the run's tables; the caller fetches the result."""
    con = query.open(run_dir)
    try:
        return con.sql(statement)
    except duckdb.Error as e:
        raise ConfigError(f"The query failed: {str(e).splitlines()[0]}") from e
