"""``shadowdiff run PIPELINE.toml``: collect → diff → store → report → check, exit code = check."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from shadowdiff.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "pipelines" / "sample.toml"


def test_sample_pipeline_reports_and_fails_its_check(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(SAMPLE), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "FAIL overall: max_divergence_rate" in result.output
    assert "FAIL GET /api/search: max_latency_ratio.p50" in result.output
    for name in ("report.html", "report.md", "report.json", "manifest.json"):
        assert (out / name).exists(), name


def test_pipeline_within_thresholds_exits_0(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(
        SAMPLE.read_text()
        .replace("../sample_data", str(ROOT / "sample_data"))
        .replace("max_divergence_rate = 0.05", "max_divergence_rate = 1.0")
        .replace("p50 = 1.5", "p50 = 100")
        + "\n"
    )
    result = CliRunner().invoke(main, ["run", str(pipeline), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "check passed" in result.output


def test_pipeline_without_check_section_exits_0_and_reports(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.toml"
    text = SAMPLE.read_text().replace("../sample_data", str(ROOT / "sample_data"))
    pipeline.write_text(text.split("[check]")[0])
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["run", str(pipeline), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").exists()


def test_unknown_report_setting_is_exit_2(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.toml"
    text = SAMPLE.read_text().replace("../sample_data", str(ROOT / "sample_data"))
    pipeline.write_text(text.replace("enabled = true", "enable = true"))
    result = CliRunner().invoke(main, ["run", str(pipeline), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "unknown setting 'enable' in [report]" in result.output


def test_missing_baseline_is_a_note_not_an_error(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.toml"
    text = SAMPLE.read_text().replace("../sample_data", str(ROOT / "sample_data"))
    text = text.replace("enabled = true", 'enabled = true\nbaseline = "runs/latest"')
    pipeline.write_text(text.split("[check]")[0])
    result = CliRunner().invoke(main, ["run", str(pipeline), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert f"no baseline run at {tmp_path / 'runs/latest'} yet" in result.output
