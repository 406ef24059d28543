"""Regression checks: thresholds over a run directory, a verdict per endpoint and threshold.

Thresholds come from a ``[check]`` section (a pipeline or rules file, or the one recorded in the
run's manifest) and from flags, which win::

    [check]
    max_divergence_rate = 0.01          # diverged / paired pairs, over the whole run
    max_orphan_rate = 0.02              # (primary_only + mirror_only) / request ids
    max_reject_rate = 0.001             # rejected / records read
    max_mirrored_writes = 0             # POST/PUT/PATCH/DELETE (and [safety] writes) mirrored
    max_latency_ratio = { p50 = 1.2, p99 = 1.5 }   # mirror / primary, per endpoint

    [check.max_divergence_rate_per_endpoint]       # endpoint → rate; "*" for every other one
    "GET /api/orders/{id}" = 0.05
    "*" = 0.10

A rate is crossed when the figure is *above* the threshold (``0`` allows none).

Latency uses the **lower bound** of the bootstrap confidence interval (95 %, see
:mod:`shadowdiff.stats`), not the point estimate: an endpoint violates ``p99 = 1.5`` only when
the data show, beyond sampling noise, that its mirror p99 is more than 1.5 × the primary's. A
noisy endpoint whose estimate is 1.6 but whose interval reaches down to 1.3 passes. Endpoints or
quantiles with too few pairs (see ``stats.MIN_PAIRS`` and ``stats.required_pairs``) are reported
as skipped, never as violations. Divergence, orphan and reject rates are counts of what
happened, not samples of a noisy measurement, so they use the figure itself.
"""

from __future__ import annotations

import difflib
import math
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import duckdb

from shadowdiff import query, stats, store, window
from shadowdiff.errors import ConfigError

KEYS = (
    "max_divergence_rate",
    "max_divergence_rate_per_endpoint",
    "max_latency_ratio",
    "max_orphan_rate",
    "max_reject_rate",
    "max_mirrored_writes",
)
EVERY_ENDPOINT = "*"
OVERALL = "overall"
NO_ENDPOINT = "(no endpoint)"

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Thresholds:
    """What ``check`` enforces; ``None`` / empty: not checked."""

    max_divergence_rate: float | None = None
    max_divergence_rate_per_endpoint: Mapping[str, float] = field(default_factory=dict)
    max_latency_ratio: Mapping[str, float] = field(default_factory=dict)  # "p99" → 1.5
    max_orphan_rate: float | None = None
    max_reject_rate: float | None = None
    max_mirrored_writes: int | None = None

    @property
    def empty(self) -> bool:
        return (
            self.max_divergence_rate is None
            and not self.max_divergence_rate_per_endpoint
            and not self.max_latency_ratio
            and self.max_orphan_rate is None
            and self.max_reject_rate is None
            and self.max_mirrored_writes is None
        )

    def overridden_by(self, other: Thresholds) -> Thresholds:
        """These thresholds with every one ``other`` sets taken from ``other`` (flags win)."""
        return replace(
            self,
            max_divergence_rate=_first(other.max_divergence_rate, self.max_divergence_rate),
            max_divergence_rate_per_endpoint={
                **self.max_divergence_rate_per_endpoint,
                **other.max_divergence_rate_per_endpoint,
            },
            max_latency_ratio={**self.max_latency_ratio, **other.max_latency_ratio},
            max_orphan_rate=_first(other.max_orphan_rate, self.max_orphan_rate),
            max_reject_rate=_first(other.max_reject_rate, self.max_reject_rate),
            max_mirrored_writes=_first(other.max_mirrored_writes, self.max_mirrored_writes),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_divergence_rate": self.max_divergence_rate,
            "max_divergence_rate_per_endpoint": dict(self.max_divergence_rate_per_endpoint),
            "max_latency_ratio": dict(self.max_latency_ratio),
            "max_orphan_rate": self.max_orphan_rate,
            "max_reject_rate": self.max_reject_rate,
            "max_mirrored_writes": self.max_mirrored_writes,
        }


@dataclass(frozen=True)
class Verdict:
    """One threshold applied to one endpoint (or to the whole run: ``endpoint`` is None)."""

    check: str  # "max_divergence_rate", "max_latency_ratio.p99", …
    endpoint: str | None
    status: Status
    threshold: float
    figure: float | None  # what was compared: a rate, or a ratio's CI lower bound
    detail: str  # the figure in words: "8 of 55 paired requests diverged (14.55%)"

    @property
    def target(self) -> str:
        return OVERALL if self.endpoint is None else self.endpoint

    def line(self) -> str:
        """One line for the terminal: endpoint, check, figure and threshold."""
        word = {"fail": "FAIL", "pass": "ok", "skip": "skip"}[self.status]
        return f"{word:<4} {self.target}: {self.check}: {self.detail}"


@dataclass(frozen=True)
class CheckResult:
    run_dir: Path
    thresholds: Thresholds
    verdicts: tuple[Verdict, ...]

    @property
    def violations(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.status == "fail")

    @property
    def skipped(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.status == "skip")

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        """The violations, one per line, then a one-line tally."""
        out = [v.line() for v in self.violations]
        out.append(
            f"check {'passed' if self.ok else 'FAILED'}: {len(self.violations)} violation(s), "
            f"{len(self.verdicts) - len(self.violations) - len(self.skipped)} within, "
            f"{len(self.skipped)} skipped ({self.run_dir})"
        )
        return out


# --- thresholds from TOML and flags -------------------------------------------------------------


def thresholds(section: Mapping[str, Any], origin: str = "[check]") -> Thresholds:
    """Thresholds from a ``[check]`` section (as TOML gives it)."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{origin}: [check] must be a table of settings.")
    for key in section:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{origin}: unknown setting {key!r} in [check].{hint} Known: {', '.join(KEYS)}."
            )
    where = f"{origin}: [check]"
    per_endpoint = section.get("max_divergence_rate_per_endpoint", {})
    if not isinstance(per_endpoint, Mapping):
        raise ConfigError(
            f"{where} max_divergence_rate_per_endpoint must be a table of endpoint = rate, "
            'e.g. [check.max_divergence_rate_per_endpoint] "GET /api/x" = 0.05'
        )
    ratios = section.get("max_latency_ratio", {})
    if not isinstance(ratios, Mapping):
        raise ConfigError(
            f"{where} max_latency_ratio must be a table of quantile = ratio, "
            "e.g. max_latency_ratio = { p99 = 1.5 }"
        )
    return Thresholds(
        max_divergence_rate=_rate(
            section.get("max_divergence_rate"), f"{where} max_divergence_rate"
        ),
        max_divergence_rate_per_endpoint={
            str(endpoint): _required_rate(value, f"{where} max_divergence_rate_per_endpoint")
            for endpoint, value in per_endpoint.items()
        },
        max_latency_ratio={
            _quantile(str(q), f"{where} max_latency_ratio"): _ratio_limit(
                value, f"{where} max_latency_ratio.{q}"
            )
            for q, value in ratios.items()
        },
        max_orphan_rate=_rate(section.get("max_orphan_rate"), f"{where} max_orphan_rate"),
        max_reject_rate=_rate(section.get("max_reject_rate"), f"{where} max_reject_rate"),
        max_mirrored_writes=_count(
            section.get("max_mirrored_writes"), f"{where} max_mirrored_writes"
        ),
    )


def thresholds_from_flags(
    *,
    max_divergence_rate: float | None = None,
    max_endpoint_divergence_rate: Iterable[str] = (),
    max_latency_ratio: Iterable[str] = (),
    max_orphan_rate: float | None = None,
    max_reject_rate: float | None = None,
    max_mirrored_writes: int | None = None,
) -> Thresholds:
    """Thresholds from command-line values: ``ENDPOINT=RATE`` and ``pNN=RATIO`` strings."""
    per_endpoint = dict(
        _assignment(t, "--max-endpoint-divergence-rate") for t in max_endpoint_divergence_rate
    )
    ratios = dict(_assignment(t, "--max-latency-ratio") for t in max_latency_ratio)
    return Thresholds(
        max_divergence_rate=_rate(max_divergence_rate, "--max-divergence-rate"),
        max_divergence_rate_per_endpoint={
            endpoint: _required_rate(value, f"--max-endpoint-divergence-rate {endpoint!r}")
            for endpoint, value in per_endpoint.items()
        },
        max_latency_ratio={
            _quantile(q, "--max-latency-ratio"): _ratio_limit(value, f"--max-latency-ratio {q}")
            for q, value in ratios.items()
        },
        max_orphan_rate=_rate(max_orphan_rate, "--max-orphan-rate"),
        max_reject_rate=_rate(max_reject_rate, "--max-reject-rate"),
        max_mirrored_writes=_count(max_mirrored_writes, "--max-mirrored-writes"),
    )


def _assignment(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.rpartition("=")
    if not sep or not name.strip() or not value.strip():
        raise ConfigError(f"{flag} {text!r}: expected NAME=VALUE, e.g. {flag} p99=1.5")
    return name.strip(), value.strip()


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: expected a number, got {value!r}.") from e
    if math.isnan(number) or number < 0:
        raise ConfigError(f"{where}: expected a number ≥ 0, got {value!r}.")
    return number


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: a count of requests (0 or more), got {value!r}.")
    return value


def _rate(value: Any, where: str) -> float | None:
    return None if value is None else _required_rate(value, where)


def _required_rate(value: Any, where: str) -> float:
    number = _number(value, where)
    if number > 1:
        raise ConfigError(
            f"{where}: a rate is a fraction between 0 and 1 (0.05 for 5%), got {value!r}."
        )
    return number


def _ratio_limit(value: Any, where: str) -> float:
    number = _number(value, where)
    if number <= 0 or math.isinf(number):
        raise ConfigError(f"{where}: expected a ratio > 0 (1.5: 50% slower), got {value!r}.")
    return number


def _quantile(name: str, where: str) -> str:
    if name not in stats.QUANTILE_NAMES:
        close = difflib.get_close_matches(name, stats.QUANTILE_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{where}: unknown quantile {name!r}.{hint} Known: {', '.join(stats.QUANTILE_NAMES)}."
        )
    return name


N = TypeVar("N", int, float)


def _first(value: N | None, default: N | None) -> N | None:
    return default if value is None else value


# --- checking -----------------------------------------------------------------------------------


def check(
    run_dir: str | Path,
    limits: Thresholds,
    *,
    resamples: int = stats.RESAMPLES,
    seed: int = 0,
) -> CheckResult:
    """Apply ``limits`` to the run in ``run_dir``; ``result.exit_code`` is 0 or 1."""
    directory = Path(run_dir)
    manifest = store.read_manifest(directory)
    con = query.open(directory)
    try:
        verdicts: list[Verdict] = []
        verdicts += _divergence(con, limits)
        verdicts += _orphans(con, limits, manifest.get("mirroring"))
        verdicts += _rejects(manifest, limits)
        verdicts += _mirrored_writes(manifest.get("mirroring"), limits)
        if limits.max_latency_ratio:
            verdicts += _latency(con, limits, resamples=resamples, seed=seed)
    finally:
        con.close()
    return CheckResult(directory, limits, tuple(verdicts))


def _rate_verdict(
    name: str, endpoint: str | None, count: int, total: int, limit: float, what: str
) -> Verdict:
    """``what`` reads "<count> of <total> …": "paired requests diverged"."""
    if total == 0:
        return Verdict(name, endpoint, "skip", limit, None, f"0 of 0 {what}: nothing to rate")
    rate = count / total
    status: Status = "fail" if rate > limit else "pass"
    relation = ">" if status == "fail" else "≤"
    detail = f"{count} of {total} {what}: {rate:.2%} {relation} {limit:.2%}"
    return Verdict(name, endpoint, status, limit, rate, detail)


def _divergence(con: duckdb.DuckDBPyConnection, limits: Thresholds) -> list[Verdict]:
    rows = con.sql(
        """
        SELECT endpoint,
               count(*) FILTER (WHERE outcome = 'diverged') AS diverged,
               count(*) FILTER (WHERE outcome NOT IN ('primary_only', 'mirror_only')) AS paired
        FROM pairs GROUP BY endpoint ORDER BY endpoint NULLS LAST
        """
    ).fetchall()
    verdicts: list[Verdict] = []
    what = "paired requests diverged"
    if limits.max_divergence_rate is not None:
        diverged = sum(r[1] for r in rows)
        paired = sum(r[2] for r in rows)
        verdicts.append(
            _rate_verdict(
                "max_divergence_rate", None, diverged, paired, limits.max_divergence_rate, what
            )
        )
    per_endpoint = dict(limits.max_divergence_rate_per_endpoint)
    default = per_endpoint.pop(EVERY_ENDPOINT, None)
    seen = set()
    name = "max_divergence_rate_per_endpoint"
    for endpoint, diverged, paired in rows:
        label = endpoint if endpoint is not None else NO_ENDPOINT
        seen.add(label)
        limit = per_endpoint.get(label, default)
        if limit is not None:
            verdicts.append(_rate_verdict(name, label, diverged, paired, limit, what))
    for endpoint, limit in per_endpoint.items():
        if endpoint not in seen:
            close = difflib.get_close_matches(endpoint, sorted(seen), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            verdicts.append(
                Verdict(name, endpoint, "skip", limit, None, f"no pairs in this run{hint}")
            )
    return verdicts


def _orphans(
    con: duckdb.DuckDBPyConnection, limits: Thresholds, mirroring: Mapping[str, Any] | None
) -> list[Verdict]:
    """Orphans over request ids. With the run's ``mirroring`` figures, orphans near the logs'
    edges are left out, and primary-only ones count only beyond what sampled mirroring
    (``mirror_percent``) expects; mirror-only ones always count."""
    if limits.max_orphan_rate is None:
        return []
    [(orphans, total)] = con.sql(
        """
        SELECT count(*) FILTER (WHERE outcome IN ('primary_only', 'mirror_only')), count(*)
        FROM pairs
        """
    ).fetchall()
    what = "request ids had no partner (orphans)"
    if mirroring:
        orphans, how = window.unexpected_orphans(dict(mirroring))
        if how:
            what = f"request ids had no partner unexplained ({how})"
    return [_rate_verdict("max_orphan_rate", None, orphans, total, limits.max_orphan_rate, what)]


def _mirrored_writes(mirroring: Mapping[str, Any] | None, limits: Thresholds) -> list[Verdict]:
    limit = limits.max_mirrored_writes
    if limit is None:
        return []
    writes = list((mirroring or {}).get("mirrored_writes", []))
    count = sum(int(w["mirrored"]) for w in writes)
    accepted = sum(int(w["answered_2xx"]) for w in writes)
    status: Status = "fail" if count > limit else "pass"
    where = ", ".join(f"{w['endpoint']} {w['mirrored']}" for w in writes[:3])
    detail = (
        f"{count} non-idempotent requests reached the mirror ({accepted} answered 2xx"
        f"{': ' + where if where else ''}) {'>' if status == 'fail' else '≤'} {limit}"
    )
    return [Verdict("max_mirrored_writes", None, status, float(limit), float(count), detail)]


def _rejects(manifest: Mapping[str, Any], limits: Thresholds) -> list[Verdict]:
    if limits.max_reject_rate is None:
        return []
    conservation = manifest.get("conservation", {})
    read = sum(int(figures.get("read", 0)) for figures in conservation.values())
    rejected = int(manifest.get("rejects", 0))
    return [
        _rate_verdict(
            "max_reject_rate",
            None,
            rejected,
            read,
            limits.max_reject_rate,
            "records read were rejected",
        )
    ]


def _latency(
    con: duckdb.DuckDBPyConnection, limits: Thresholds, *, resamples: int, seed: int
) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for s in stats.endpoint_latency(con, resamples=resamples, seed=seed):
        label = s.endpoint if s.endpoint is not None else NO_ENDPOINT
        for quantile, limit in limits.max_latency_ratio.items():
            name = f"max_latency_ratio.{quantile}"
            if not s.sufficient:
                verdicts.append(Verdict(name, label, "skip", limit, None, s.note or ""))
                continue
            r = s.ratio(quantile)
            if r.estimate is None or r.low is None or r.high is None:
                verdicts.append(Verdict(name, label, "skip", limit, None, r.note or ""))
                continue
            failed = r.low > limit
            detail = (
                f"mirror/primary {quantile} = {r.estimate:.2f} "
                f"({s.confidence:.0%} CI {r.low:.2f}–{r.high:.2f}; "
                f"lower bound {'>' if failed else '≤'} {limit:g}), {s.n} pairs"
            )
            status: Status = "fail" if failed else "pass"
            verdicts.append(Verdict(name, label, status, limit, r.low, detail))
    return verdicts


# --- JUnit XML ----------------------------------------------------------------------------------


def junit(result: CheckResult) -> ET.ElementTree:
    """The verdicts as JUnit XML: one ``testcase`` per endpoint and threshold (``classname``
    the threshold, ``name`` the endpoint or "overall"), ``failure`` for a violation and
    ``skipped`` for too little data."""
    tests = len(result.verdicts)
    failures = len(result.violations)
    skipped = len(result.skipped)
    counts = {
        "tests": str(tests),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": "0",
    }
    root = ET.Element("testsuites", {"name": "shadowdiff check", **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": f"shadowdiff check {result.run_dir}",
            **counts,
            "timestamp": datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat(),
            "hostname": socket.gethostname(),
        },
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", {"name": "run_dir", "value": str(result.run_dir)})
    for key, value in result.thresholds.as_dict().items():
        if value not in (None, {}):
            ET.SubElement(properties, "property", {"name": key, "value": str(value)})
    for verdict in result.verdicts:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"shadowdiff.{verdict.check}", "name": verdict.target, "time": "0"},
        )
        if verdict.status == "fail":
            failure = ET.SubElement(
                case, "failure", {"message": verdict.detail, "type": "ThresholdExceeded"}
            )
            failure.text = verdict.line()
        elif verdict.status == "skip":
            ET.SubElement(case, "skipped", {"message": verdict.detail})
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(result: CheckResult, path: str | Path) -> Path:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        junit(result).write(target, encoding="utf-8", xml_declaration=True)
    except OSError as e:
        raise ConfigError(f"{target}: cannot write the JUnit file ({e}).") from e
    return target
