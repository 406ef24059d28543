"""A disk that fills up while a run writes: a clear error, exit code 2, no traceback, the
previous run whole and readable, and nothing left behind. Two ways to run out of room: a small
filesystem mounted for the test (tmpfs, where the machine lets the test mount one) and the
process's file size limit (RLIMIT_FSIZE, which needs no privilege)."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import shadowdiff

pytestmark = pytest.mark.integration


def write_log(path: Path, n: int) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            record = {
                "start_time": "2026-11-28T10:00:00.000Z",
                "method": "GET",
                "path": f"/api/items/{i}",
                "response_code": 200,
                "duration": 5,
                "request_id": str(uuid.UUID(int=i)),
                "authority": "app:8080",
            }
            f.write(json.dumps(record) + "\n")
    return path


def shadowdiff_run(
    inputs: Path, out: Path, limit: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limited() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "shadowdiff", "run", "--primary", str(inputs / "p.log")]
    command += ["--mirror", str(inputs / "m.log"), "--out", str(out)]
    return subprocess.run(
        command, capture_output=True, text=True, preexec_fn=limited, timeout=300, check=False
    )


def assert_refused_and_previous_kept(
    result: subprocess.CompletedProcess[str], out: Path, previous_pairs: int
) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "cannot write the run" in result.stderr and "untouched" in result.stderr
    assert shadowdiff.open(out).sql("SELECT count(*) FROM pairs").fetchall() == [(previous_pairs,)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pairs"] == previous_pairs
    leftovers = [p.name for p in out.parent.iterdir() if ".run-" in p.name or ".old-" in p.name]
    assert leftovers == []


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


def test_a_file_size_limit_hit_while_writing_leaves_the_previous_run(
    inputs: Path, tmp_path: Path
) -> None:
    write_log(inputs / "p.log", 40)
    write_log(inputs / "m.log", 40)
    out = tmp_path / "out"
    first = shadowdiff_run(inputs, out)
    assert first.returncode == 0, first.stderr
    write_log(inputs / "p.log", 20_000)
    write_log(inputs / "m.log", 20_000)
    result = shadowdiff_run(inputs, out, limit=20_000)
    assert "File too large" in result.stderr
    assert_refused_and_previous_kept(result, out, 40)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 192 KiB tmpfs, unmounted after the test; skipped where the test may not mount."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this machine")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip()}); RLIMIT_FSIZE covers it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_while_writing_leaves_the_previous_run(inputs: Path, small_disk: Path) -> None:
    write_log(inputs / "p.log", 40)
    write_log(inputs / "m.log", 40)
    out = small_disk / "out"
    first = shadowdiff_run(inputs, out)
    assert first.returncode == 0, first.stderr
    write_log(inputs / "p.log", 100_000)
    write_log(inputs / "m.log", 100_000)
    result = shadowdiff_run(inputs, out)
    assert "No space left on device" in result.stderr
    assert_refused_and_previous_kept(result, out, 40)
