"""Run configuration: one frozen object built from a pipeline/rules TOML file and CLI flags.

Sections (DESIGN.md): ``[inputs]``, ``[pairing]``, ``[sides]``, ``[endpoints]``, ``[redact]``,
``[output]``; later stages read ``[ignore]``, ``[tolerance]``, ``[check]``, which are kept as given.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shadowdiff.collect import remote
from shadowdiff.diff.rules import RULE_SECTIONS, Rules
from shadowdiff.engine.buckets import MAX_BUCKETS
from shadowdiff.errors import ConfigError
from shadowdiff.fingerprint import DEFAULT_MAX_SKEW_MS
from shadowdiff.noise.thresholds import Thresholds
from shadowdiff.redact import DEFAULT_FIELD_SECRETS, DEFAULT_QUERY_SECRETS
from shadowdiff.settings import (
    DEFAULT_REDACT_HEADERS,
    SECTIONS,
    check_keys,
    flag,
    strings,
    suggest,
    text,
)
from shadowdiff.window import Bounds

# Sections kept as given in Config.extra, for the stages after the run (report, check, …).
LATER_SECTIONS = ("ignore", "tolerance", "normalize", "order", "limits", "check", "report")


@dataclass(frozen=True)
class SideRules:
    """DuckDB boolean expressions over ``exchanges`` columns, one per side (``None``: unused)."""

    primary: str | None = None
    mirror: str | None = None
    secondary: str | None = None

    def items(self) -> list[tuple[str, str]]:
        return [
            (s, e)
            for s, e in (
                ("primary", self.primary),
                ("mirror", self.mirror),
                ("secondary", self.secondary),
            )
            if e
        ]


@dataclass(frozen=True)
class Config:
    primary: tuple[str, ...] = ()
    mirror: tuple[str, ...] = ()
    secondary: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # mixed inputs: sides come from rules or the -shadow suffix
    source: str = "auto"
    log_format: str | None = None
    pairing_key: str = "x-request-id"
    # "request_id" (the pairing key's header) or "fingerprint" (shadowdiff.fingerprint).
    pair_by: str = "request_id"
    max_skew_ms: float = DEFAULT_MAX_SKEW_MS
    # What Istio's mirrorPercentage says, if given: the share of requests mirrored.
    mirror_percent: float | None = None
    window: Bounds = field(default_factory=Bounds)  # --since/--until, [window]
    safety_writes: tuple[str, ...] = ()  # [safety] writes: endpoints that write on a GET
    sides: SideRules = field(default_factory=SideRules)
    endpoint_templates: tuple[str, ...] = ()
    auto_endpoints: bool = True
    redact_headers: tuple[str, ...] = DEFAULT_REDACT_HEADERS
    redact_body: tuple[str, ...] = ()
    # Query parameters redacted in paths and URLs: the defaults and [redact] query.
    redact_query: tuple[str, ...] = DEFAULT_QUERY_SECRETS
    # JSON body fields (any depth) and form fields redacted: the defaults and [redact] fields.
    redact_fields: tuple[str, ...] = DEFAULT_FIELD_SECRETS
    out: str | None = None
    # How the run is executed: "local" or "dask" (scheduler: a cluster's address, else a
    # LocalCluster), and into how many request-id buckets (None: from the inputs' size).
    engine: str = "local"
    scheduler: str | None = None
    buckets: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # sections later stages read
    rules: Rules = field(default_factory=Rules)
    noise: Thresholds = field(default_factory=Thresholds)
    origin: str | None = None  # the TOML file this came from, for messages

    def with_overrides(self, **changes: Any) -> Config:
        """This config with every non-empty override applied (CLI flags win over the file)."""
        kept = {k: v for k, v in changes.items() if v not in (None, (), [])}
        return replace(self, **kept)

    def as_dict(self) -> dict[str, Any]:
        return {
            "primary": list(self.primary),
            "mirror": list(self.mirror),
            "secondary": list(self.secondary),
            "inputs": list(self.inputs),
            "source": self.source,
            "log_format": self.log_format,
            "pairing_key": self.pairing_key,
            "pair_by": self.pair_by,
            "max_skew_ms": self.max_skew_ms,
            "mirror_percent": self.mirror_percent,
            "window": {
                "since": None if self.window.since is None else self.window.since.isoformat(),
                "until": None if self.window.until is None else self.window.until.isoformat(),
            },
            "safety_writes": list(self.safety_writes),
            "sides": dict(self.sides.items()),
            "endpoint_templates": list(self.endpoint_templates),
            "auto_endpoints": self.auto_endpoints,
            "redact_headers": list(self.redact_headers),
            "redact_body": list(self.redact_body),
            "redact_query": list(self.redact_query),
            "redact_fields": list(self.redact_fields),
            "out": self.out,
            "engine": self.engine,
            "scheduler": self.scheduler,
            "buckets": self.buckets,
            "noise": self.noise.as_dict(),
            "extra": dict(self.extra),
            "origin": self.origin,
        }


def load(path: str | Path) -> Config:
    """Read a pipeline or rules TOML file. Relative input paths are taken from the file's folder."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"{file}: no such file.") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: cannot be read ({e}).") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML ({e}).") from e
    except RecursionError as e:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"{file}: not valid TOML (nested too deeply).") from e
    return from_mapping(data, origin=str(file), base=file.parent)


def from_mapping(
    data: Mapping[str, Any], origin: str = "<config>", base: Path | None = None
) -> Config:
    _check_names(data, origin)
    inputs = data.get("inputs", {})
    pairing = data.get("pairing", {})
    sides = data.get("sides", {})
    endpoints = data.get("endpoints", {})
    redact = data.get("redact", {})
    output = data.get("output", {})
    window = data.get("window", {})
    safety = data.get("safety", {})
    engine = data.get("engine", {})

    def paths(key: str) -> tuple[str, ...]:
        values = strings(inputs.get(key, []), f"[inputs] {key}", origin)
        return tuple(relative_to(base, v) for v in values)

    out = text(output.get("dir"), "[output] dir", origin)
    if out is not None:
        out = relative_to(base, str(out))
    rules = _rules(data, origin)
    report = data.get("report", {})  # read after the run, by api.run_pipeline: checked now
    if isinstance(report, Mapping):
        flag(report.get("enabled"), "[report] enabled", origin, True)
        text(report.get("baseline"), "[report] baseline", origin)
    return Config(
        primary=paths("primary"),
        mirror=paths("mirror"),
        secondary=paths("secondary"),
        inputs=paths("input"),
        source=str(text(inputs.get("source"), "[inputs] source", origin, "auto")),
        log_format=text(inputs.get("log_format"), "[inputs] log_format", origin),
        pairing_key=str(text(pairing.get("key"), "[pairing] key", origin, "x-request-id")).lower(),
        pair_by=_pair_by(pairing.get("by", "request_id"), origin),
        max_skew_ms=_skew(pairing.get("max_skew_ms", DEFAULT_MAX_SKEW_MS), origin),
        mirror_percent=_percent(pairing.get("mirror_percent"), origin),
        window=Bounds(
            moment(window.get("since"), "[window] since", origin),
            moment(window.get("until"), "[window] until", origin),
        ),
        safety_writes=strings(safety.get("writes", []), "[safety] writes", origin),
        sides=SideRules(**{k: str(text(v, f"[sides] {k}", origin)) for k, v in sides.items()}),
        endpoint_templates=strings(endpoints.get("templates", []), "[endpoints] templates", origin),
        auto_endpoints=flag(endpoints.get("auto"), "[endpoints] auto", origin, True),
        redact_headers=rules.redact_headers,  # the defaults and [redact] headers, lowercase
        redact_body=strings(redact.get("body", []), "[redact] body", origin),
        redact_query=_secret_names(strings(redact.get("query", []), "[redact] query", origin)),
        redact_fields=_secret_names(
            strings(redact.get("fields", []), "[redact] fields", origin), DEFAULT_FIELD_SECRETS
        ),
        out=out,
        engine=_engine(engine.get("name", "local"), origin),
        scheduler=text(engine.get("scheduler"), "[engine] scheduler", origin),
        buckets=_buckets(engine.get("buckets"), "[engine] buckets", origin),
        extra={k: v for k, v in data.items() if k in LATER_SECTIONS},
        rules=rules,
        noise=_thresholds(data.get("noise", {}), origin),
        origin=origin,
    )


def _rules(data: Mapping[str, Any], origin: str) -> Rules:
    return Rules.from_mapping({k: v for k, v in data.items() if k in RULE_SECTIONS}, origin)


def _thresholds(data: Any, origin: str) -> Thresholds:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: [noise] must be a table of thresholds, e.g. min_pairs = 50.")
    return Thresholds.from_mapping(data, origin)


PAIR_BY = ("request_id", "fingerprint")


def _percent(value: Any, origin: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
        raise ConfigError(
            f"{origin}: [pairing] mirror_percent must be a percentage above 0 and up to 100 "
            f"(Istio's mirrorPercentage), not {value!r}."
        )
    return float(value)


def moment(value: Any, where: str, origin: str) -> datetime | None:
    """A time bound from TOML (a datetime, or an ISO 8601 string); a time without a zone is
    UTC, as the logs' start times are."""
    if value is None:
        return None
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            when = None
    if not isinstance(when, datetime):
        raise ConfigError(
            f"{origin}: {where} must be a time such as 2026-11-28T10:00:00Z, not {value!r}."
        )
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


ENGINES = ("local", "dask")


def _engine(value: Any, origin: str) -> str:
    if value not in ENGINES:
        raise ConfigError(f"{origin}: [engine] name must be one of {', '.join(ENGINES)}.")
    return str(value)


def _buckets(value: Any, where: str, origin: str) -> int | None:
    """A bucket count: a whole number from 1 to ``buckets.MAX_BUCKETS``, or none given."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BUCKETS:
        raise ConfigError(f"{origin}: {where} must be a whole number from 1 to {MAX_BUCKETS}.")
    return value


def _pair_by(value: Any, origin: str) -> str:
    if value not in PAIR_BY:
        raise ConfigError(
            f"{origin}: [pairing] by must be one of {', '.join(PAIR_BY)}, not {value!r}."
        )
    return str(value)


def _skew(value: Any, origin: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(
            f"{origin}: [pairing] max_skew_ms must be a number of milliseconds (0 or more), "
            f"not {value!r}."
        )
    return float(value)


def _secret_names(
    extra: tuple[str, ...], defaults: tuple[str, ...] = DEFAULT_QUERY_SECRETS
) -> tuple[str, ...]:
    """The default credential names and the configured ones, lowercase, once."""
    return tuple(dict.fromkeys(defaults + tuple(n.lower() for n in extra)))


def relative_to(base: Path | None, path: str) -> str:
    """``path`` as given when absolute, a URL or globbed from the working directory, else from
    ``base`` (the pipeline file's folder), normalised so messages show ``out/x``, not
    ``p/../out/x``."""
    if base is None or Path(path).is_absolute() or remote.is_url(path):
        return path
    return os.path.normpath(base / path)


def _check_names(data: Mapping[str, Any], origin: str) -> None:
    for section, value in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{origin}: unknown section [{section}].{suggest(section, SECTIONS)}")
        keys = SECTIONS[section]
        if keys is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{origin}: [{section}] must be a table of settings.")
        check_keys(value, keys, f"[{section}]", origin)
