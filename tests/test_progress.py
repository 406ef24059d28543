"""shadowdiff.progress (kept with the report tests; it belongs in tests/test_progress.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from shadowdiff import progress
from shadowdiff.cli import main

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_self_overwriting_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    stream = Terminal()
    ticks = iter([0.0, 1.0, 1.01, 2.0])
    reporter = progress.Progress(stream, clock=lambda: next(ticks))
    assert reporter.enabled
    reporter("read 1/2 inputs, 10 records")
    reporter.update(files=(2, 2), records=12345, pairs=6000)
    reporter("dropped: too soon after the last draw")
    reporter("read 2/2 inputs, 20 records")
    reporter.close()
    text = stream.getvalue()
    assert text.startswith("\rread 1/2 inputs, 10 records")
    assert "\r2/2 files, 12,345 records, 6,000 pairs" in text
    assert "dropped" not in text
    assert text.endswith("\r" + " " * len("read 2/2 inputs, 20 records") + "\r")


def test_quiet_in_ci_and_in_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    stream = Terminal()
    reporter = progress.Progress(stream)
    reporter("anything")
    reporter.close()
    assert not reporter.enabled and stream.getvalue() == ""
    monkeypatch.delenv("CI")
    pipe = io.StringIO()
    with progress.terminal(pipe) as say:
        say("anything")
    assert pipe.getvalue() == ""


def test_the_run_command_passes_a_reporter_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    seen: list[str] = []
    monkeypatch.setattr(progress.Progress, "__call__", lambda self, m: seen.append(m))
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--primary",
            str(ROOT / "sample_data/envoy/primary/istio_text.log"),
            "--mirror",
            str(ROOT / "sample_data/envoy/mirror/istio_text.log"),
            "--out",
            str(tmp_path / "out"),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    # The engine's messages reach it: files and records while reading, then pairs.
    assert "read 2/2 inputs, 560 records" in seen
    assert "read 560 records; pairing and diffing in 1 bucket" in seen
    assert "bucket 1/1: 560 exchanges, 280 pairs" in seen
    assert seen[-1] == "paired 280 requests; judging noise"
    assert "records" not in result.output  # CliRunner's stderr is no terminal
