"""pipelines/: every pipeline file is one shadowdiff accepts, its README documents every section
and holds valid TOML, and the README's nightly wrapper really keeps the previous run as the
baseline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from shadowdiff import check, config
from shadowdiff.api import load_config

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ROOT / "pipelines"
README = PIPELINES / "README.md"
NIGHTLY = PIPELINES / "nightly.example.toml"
REPORT_KEYS = {"enabled", "baseline"}  # what shadowdiff.api.run_pipeline reads from [report]


def fenced(language: str) -> list[str]:
    """The README's code blocks in ``language``."""
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*.toml")), ids=lambda p: p.name)
def test_every_pipeline_parses(path: Path) -> None:
    loaded = load_config(path)  # inputs need not exist: they are read by the run
    assert loaded.primary and loaded.mirror
    assert loaded.out is not None
    section = loaded.extra.get("report", {})
    assert set(section) <= REPORT_KEYS
    if "check" in loaded.extra:
        assert not check.thresholds(loaded.extra["check"], str(path)).empty


def test_nightly_is_a_whole_job() -> None:
    loaded = load_config(NIGHTLY)
    assert all(p.endswith(".log.gz") and "*" in p for p in loaded.primary + loaded.mirror)
    assert loaded.rules.ignore_body and loaded.rules.tolerance
    assert loaded.extra["report"]["enabled"] is True
    assert loaded.extra["report"]["baseline"].endswith("/latest")
    limits = check.thresholds(loaded.extra["check"], str(NIGHTLY))
    assert limits.max_divergence_rate is not None
    assert limits.max_orphan_rate is not None and limits.max_reject_rate is not None
    assert "*" in limits.max_divergence_rate_per_endpoint
    assert set(limits.max_latency_ratio) == {"p50", "p99"}
    # Each per-endpoint threshold names an endpoint the file's templates define.
    named = set(limits.max_divergence_rate_per_endpoint) - {"*"}
    assert named <= set(loaded.endpoint_templates)


def test_nightly_commented_sides_example_parses() -> None:
    lines = NIGHTLY.read_text(encoding="utf-8").splitlines()
    start = lines.index("# [sides]")
    block = [lines[start][2:]]
    for line in lines[start + 1 :]:
        if not line.startswith("# ") or " = " not in line:
            break
        block.append(line[2:])
    sides = config.from_mapping(tomllib.loads("\n".join(block))).sides
    assert sides.primary and sides.mirror and sides.secondary


def test_readme_documents_every_section() -> None:
    text = README.read_text(encoding="utf-8")
    for section in config.SECTIONS:
        assert f"`[{section}]`" in text or f"`[[{section}]]`" in text, section


def test_readme_toml_is_valid() -> None:
    blocks = fenced("toml")
    assert blocks
    for block in blocks:
        data = tomllib.loads(block)
        config.from_mapping(data, origin="pipelines/README.md")
        if "check" in data:
            check.thresholds(data["check"], "pipelines/README.md")


def wrapper_script() -> str:
    [script] = [b for b in fenced("sh") if b.startswith("#!/bin/sh")]
    return script


@pytest.mark.integration
def test_readme_wrapper_keeps_the_previous_run_as_baseline(tmp_path: Path) -> None:
    """The README's cron wrapper, run twice on the sample logs through the nightly pipeline."""
    if shutil.which("sh") is None:
        pytest.skip("no POSIX shell")
    runs = tmp_path / "runs"
    sample = ROOT / "sample_data" / "envoy"
    text = NIGHTLY.read_text(encoding="utf-8")
    for old, new in (
        ("/var/log/istio/app-v1/*.log.gz", f"{sample}/primary/istio_json.log"),
        ("/var/log/istio/app-v2/*.log.gz", f"{sample}/mirror/istio_json.log"),
        ("/var/lib/shadowdiff/nightly", str(runs)),
    ):
        assert old in text
        text = text.replace(old, new)
    pipeline = tmp_path / "nightly.toml"
    pipeline.write_text(text, encoding="utf-8")
    script = tmp_path / "shadowdiff-nightly"
    script.write_text(wrapper_script(), encoding="utf-8")
    env = {
        **os.environ,
        "PIPELINE": str(pipeline),
        "RUNS": str(runs),
        "SHADOWDIFF": str(Path(sys.executable).with_name("shadowdiff")),
    }

    def nightly() -> Path:
        done = subprocess.run(
            ["sh", str(script)], env=env, capture_output=True, text=True, timeout=300
        )
        # The sample's v2 crosses the nightly thresholds: the check's exit code comes through.
        assert done.returncode == 1, done.stdout + done.stderr
        assert "check FAILED" in done.stdout
        latest = runs / "latest"
        assert latest.is_symlink() and not Path(os.readlink(latest)).is_absolute()
        return latest.resolve()

    first = nightly()
    report = json.loads((first / "report.json").read_text(encoding="utf-8"))
    assert report["baseline"] is None  # the first run has nothing to compare with

    second = nightly()
    assert second != first and (first / "manifest.json").is_file()
    report = json.loads((second / "report.json").read_text(encoding="utf-8"))
    # The report names the baseline as configured (the symlink, which has moved on since), and
    # the baseline run by its start time.
    manifest = json.loads((first / "manifest.json").read_text(encoding="utf-8"))
    assert report["baseline"]["started_at"] == manifest["started_at"]
