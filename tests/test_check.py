from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from shadowdiff import check, schema, store
from shadowdiff.cli import main
from shadowdiff.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ORDERS = "GET /api/orders/{id}"
USERS = "GET /api/users/{id}"


def write_run(
    out: Path,
    endpoints: dict[str, dict[str, Any]],
    *,
    rejects: int = 0,
    check_section: dict[str, Any] | None = None,
) -> Path:
    """A run directory with ``pairs`` per endpoint: ``{"pairs": n, "diverged": k,
    "orphans": o, "slowdown": x}`` (latencies lognormal around 20 ms, mirror × slowdown)."""
    rng = np.random.default_rng(5)
    rows = []
    for endpoint, spec in endpoints.items():
        for i in range(spec["pairs"]):
            p = float(rng.lognormal(3, 0.3))
            m = p * spec.get("slowdown", 1.0) * float(rng.lognormal(0, 0.05))
            outcome = "diverged" if i < spec.get("diverged", 0) else "match"
            rows.append(_pair(f"{endpoint}-{i}", endpoint, outcome, p, m))
        for i in range(spec.get("orphans", 0)):
            rows.append(_pair(f"{endpoint}-orphan-{i}", endpoint, "primary_only", 10.0, None))
    store.begin(out)
    store.write_table(out, "pairs", pa.Table.from_pylist(rows, schema.PAIRS))
    for name in ("exchanges", "diffs", "latency", "noise", "rejects"):
        store.write_table(out, name, schema.empty(schema.TABLES[name]))
    read = len(rows)
    store.finish(
        out,
        {
            "version": "test",
            "config": {"extra": {"check": check_section} if check_section else {}},
            "conservation": {"primary": {"read": read + rejects}, "mirror": {"read": read}},
            "rejects": rejects,
        },
    )
    return out


def _pair(rid: str, endpoint: str, outcome: str, p: float, m: float | None) -> dict[str, Any]:
    return {
        "request_id": rid,
        "endpoint": endpoint,
        "outcome": outcome,
        "primary_duration_ms": p,
        "mirror_duration_ms": m,
        "latency_delta_ms": None if m is None else m - p,
    }


@pytest.fixture
def run(tmp_path: Path) -> Path:
    # orders: 5 of 50 diverged (10%), mirror 2× slower; users: 1 of 100 (1%), same speed;
    # 2 orphans of 152 request ids; 3 rejects of 307 records
    return write_run(
        tmp_path / "run",
        {
            ORDERS: {"pairs": 50, "diverged": 5, "slowdown": 2.0},
            USERS: {"pairs": 100, "diverged": 1, "orphans": 2},
        },
        rejects=3,
    )


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["check", *args], catch_exceptions=False)


def test_within_every_threshold_exits_0(run: Path) -> None:
    result = invoke(
        str(run),
        "--max-divergence-rate",
        "0.05",
        "--max-endpoint-divergence-rate",
        f"{ORDERS}=0.2",
        "--max-latency-ratio",
        "p50=2.5",
        "--max-orphan-rate",
        "0.02",
        "--max-reject-rate",
        "0.01",
    )
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output
    assert result.output.splitlines()[-1].startswith(
        "check passed: 0 violation(s), 6 within, 0 skipped"
    )


def test_each_crossed_threshold_is_one_line_naming_endpoint_figure_and_threshold(
    run: Path,
) -> None:
    result = invoke(
        str(run),
        "--max-divergence-rate",
        "0.03",
        "--max-endpoint-divergence-rate",
        "*=0.05",
        "--max-latency-ratio",
        "p50=1.5",
        "--max-orphan-rate",
        "0.01",
        "--max-reject-rate",
        "0.005",
    )
    assert result.exit_code == 1
    fails = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert fails == [
        "FAIL overall: max_divergence_rate: 6 of 150 paired requests diverged: 4.00% > 3.00%",
        f"FAIL {ORDERS}: max_divergence_rate_per_endpoint: 5 of 50 paired requests diverged: "
        "10.00% > 5.00%",
        "FAIL overall: max_orphan_rate: 2 of 152 request ids had no partner (orphans): "
        "1.32% > 1.00%",
        "FAIL overall: max_reject_rate: 3 of 307 records read were rejected: 0.98% > 0.50%",
        fails[4],
    ]
    assert re.fullmatch(
        rf"FAIL {re.escape(ORDERS)}: max_latency_ratio\.p50: mirror/primary p50 = (1\.9\d|2\.0\d) "
        r"\(95% CI \d\.\d\d–\d\.\d\d; lower bound > 1\.5\), 50 pairs",
        fails[4],
    ), fails[4]
    assert "check FAILED: 5 violation(s)" in result.output


def test_latency_uses_the_interval_lower_bound_not_the_estimate(run: Path) -> None:
    limits = check.Thresholds(max_latency_ratio={"p50": 1.0})
    result = check.check(run, limits)
    by_endpoint = {v.endpoint: v for v in result.verdicts}
    users = by_endpoint[USERS]  # same speed: the estimate may exceed 1.0, the lower bound not
    assert users.status == "pass" and users.figure is not None and users.figure <= 1.0
    assert by_endpoint[ORDERS].status == "fail"
    # p99 needs 500 pairs: skipped, never a violation
    p99 = check.check(run, check.Thresholds(max_latency_ratio={"p99": 1.0}))
    assert {v.status for v in p99.verdicts} == {"skip"}
    assert p99.exit_code == 0


def test_thresholds_from_the_config_file_and_flags_override_them(run: Path, tmp_path: Path) -> None:
    config = tmp_path / "job.toml"
    config.write_text(
        """
[check]
max_divergence_rate = 0.01
max_latency_ratio = { p50 = 1.5 }

[check.max_divergence_rate_per_endpoint]
"GET /api/orders/{id}" = 0.5
"GET /api/ordres/{id}" = 0.5
""",
        encoding="utf-8",
    )
    result = invoke(str(run), "--config", str(config))
    assert result.exit_code == 1
    assert "FAIL overall: max_divergence_rate" in result.output
    assert f"FAIL {ORDERS}: max_latency_ratio.p50" in result.output
    assert f"FAIL {ORDERS}: max_divergence_rate_per_endpoint" not in result.output
    relaxed = invoke(
        str(run),
        "--config",
        str(config),
        "--max-divergence-rate",
        "0.1",
        "--max-latency-ratio",
        "p50=3",
    )
    assert relaxed.exit_code == 0, relaxed.output
    # the misspelt endpoint is reported as skipped, with a suggestion
    result_obj = check.check(
        run, check.thresholds({"max_divergence_rate_per_endpoint": {"GET /api/ordres/{id}": 0.5}})
    )
    [skipped] = result_obj.skipped
    assert skipped.detail == f"no pairs in this run; did you mean {ORDERS!r}?"


def test_without_flags_or_config_the_runs_own_check_section_is_used(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run",
        {ORDERS: {"pairs": 30, "diverged": 3}},
        check_section={"max_divergence_rate": 0.05},
    )
    result = invoke(str(run))
    assert result.exit_code == 1
    assert "3 of 30 paired requests diverged: 10.00% > 5.00%" in result.output


def test_junit_has_one_testcase_per_endpoint_and_threshold(run: Path, tmp_path: Path) -> None:
    junit = tmp_path / "reports" / "check.xml"
    result = invoke(
        str(run),
        "--max-divergence-rate",
        "0.03",
        "--max-endpoint-divergence-rate",
        "*=0.05",
        "--max-latency-ratio",
        "p50=1.5",
        "--max-latency-ratio",
        "p99=1.5",
        "--junit",
        str(junit),
    )
    assert result.exit_code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    # overall divergence + 2 endpoints × (divergence, p50, p99)
    assert len(cases) == 7
    assert suite.get("tests") == root.get("tests") == "7"
    failures = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert suite.get("failures") == str(len(failures)) == "3"
    assert suite.get("skipped") == str(len(skipped)) == "2"  # p99 needs 500 pairs
    names = {(c.get("classname"), c.get("name")) for c in failures}
    assert names == {
        ("shadowdiff.max_divergence_rate", "overall"),
        ("shadowdiff.max_divergence_rate_per_endpoint", ORDERS),
        ("shadowdiff.max_latency_ratio.p50", ORDERS),
    }
    message = next(c for c in failures if c.get("name") == "overall").find("failure")
    assert message is not None and "4.00% > 3.00%" in (message.get("message") or "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "No thresholds to check"),
        (["--max-latency-ratio", "p95=1.5"], "unknown quantile 'p95'"),
        (["--max-latency-ratio", "p99"], "expected NAME=VALUE"),
        (["--max-divergence-rate", "5"], "a rate is a fraction between 0 and 1"),
        (["--max-orphan-rate", "-0.1"], "expected a number ≥ 0"),
        (["--max-latency-ratio", "p99=0"], "expected a ratio > 0"),
        (["--config", "missing.toml"], "missing.toml: no such file"),
    ],
)
def test_usage_and_input_errors_exit_2(run: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["check", str(run), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_directory_that_is_not_a_run_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(tmp_path), "--max-divergence-rate", "0"])
    assert result.exit_code == 2
    assert "not a shadowdiff run directory" in result.output


def test_unknown_settings_in_the_check_section_are_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'max_orphan_rate'"):
        check.thresholds({"max_orphans_rate": 0.1}, "job.toml")
    with pytest.raises(ConfigError, match="table of quantile = ratio"):
        check.thresholds({"max_latency_ratio": 1.5}, "job.toml")


def test_check_on_the_sample_data(sample_text_run: Path) -> None:
    """The bundled window: 8 of 55 orders pairs answer 500 on the mirror, and search is ~26 ms
    slower on the mirror at p50."""
    out = sample_text_run
    result = invoke(
        str(out), "--max-endpoint-divergence-rate", "*=0.1", "--max-latency-ratio", "p50=2"
    )
    assert result.exit_code == 1
    fails = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2
    assert fails[0].startswith(f"FAIL {ORDERS}: max_divergence_rate_per_endpoint: 8 of 55")
    assert fails[1].startswith("FAIL GET /api/search: max_latency_ratio.p50")
    assert invoke(str(out), "--max-divergence-rate", "0.05").exit_code == 0
