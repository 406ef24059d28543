"""Runs killed with SIGKILL at many points leave the previous run whole and readable; the next
run removes what they left. A run holds a lock on its directory: a second run fails at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import shadowdiff
from shadowdiff.errors import ConfigError
from shadowdiff.rundir import RunDir, RunLocked

pytestmark = pytest.mark.integration

TABLES = ("exchanges", "pairs", "diffs", "latency", "noise", "rejects")
# A run that reports progress on stdout, one line per message, so the test can kill it at a
# known stage (the CLI shows progress only on a terminal).
DRIVER = textwrap.dedent(
    """
    import sys
    import shadowdiff

    def say(message):
        print(message, flush=True)

    shadowdiff.run(primary=[sys.argv[1]], mirror=[sys.argv[2]], out=sys.argv[3], progress=say)
    print("done", flush=True)
    """
)


def write_logs(root: Path, files: int = 6, lines: int = 20_000) -> tuple[Path, Path]:
    primary, mirror = root / "primary", root / "mirror"
    for side, folder in (("primary", primary), ("mirror", mirror)):
        folder.mkdir(parents=True)
        for f in range(files):
            rows = (
                json.dumps(
                    {
                        "start_time": "2026-11-28T10:00:00.000Z",
                        "method": "GET",
                        "path": f"/api/items/{i % 500}",
                        "response_code": 500 if side == "mirror" and i % 50 == 0 else 200,
                        "duration": 10 + i % 7,
                        "request_id": f"r-{f}-{i}",
                        "authority": "app:8080",
                    }
                )
                for i in range(lines)
            )
            (folder / f"access-{f}.log").write_text("\n".join(rows) + "\n")
    return primary, mirror


def snapshot(out: Path) -> dict[str, object]:
    """What a reader sees of a run directory: its manifest's start and every table's rows."""
    manifest = json.loads((out / "manifest.json").read_text())
    con = shadowdiff.open(out)
    counts = {t: con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}
    return {"started_at": manifest["started_at"], "counts": counts}


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*-*"))


def test_killed_runs_leave_the_previous_run_whole(tmp_path: Path) -> None:
    primary, mirror = write_logs(tmp_path / "logs")
    out = tmp_path / "runs" / "window"
    shadowdiff.run(primary=[str(primary)], mirror=[str(mirror)], out=out)
    before = snapshot(out)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    killed_at: list[str] = []
    # Kill after the n-th progress message (reading input n, then diffing), and at delays
    # after the last message (diffing, writing the tables, the swap).
    points = [(n, 0.0) for n in range(1, 14)] + [(13, d) for d in (0.05, 0.2, 0.4, 0.7)]
    for after, delay in points:
        child = subprocess.Popen(
            [sys.executable, str(driver), str(primary), str(mirror), str(out)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        seen = ""
        for _ in range(after):
            seen = child.stdout.readline().strip()
            if not seen or seen == "done":
                break
        if delay:
            time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        now = snapshot(out)  # readable and whole, whatever the moment of the kill
        assert now["counts"] == before["counts"], f"after a kill at {seen!r}"
        if now != before:
            before = now  # the run had put itself in place before the kill: a new run
            continue
        killed_at.append(seen)
    print(f"killed {len(killed_at)} of {len(points)} runs before they finished: {killed_at}")
    assert len(killed_at) >= 10, killed_at
    assert any("diffing" in stage for stage in killed_at)
    # The next run takes the killed runs' lock over, removes their leftovers and replaces
    # the previous run.
    shadowdiff.run(primary=[str(primary)], mirror=[str(mirror)], out=out)
    after = snapshot(out)
    assert after["counts"] == before["counts"]
    assert after["started_at"] != before["started_at"]
    assert leftovers(out) == []


def test_a_second_run_into_a_locked_directory_fails_at_once(tmp_path: Path) -> None:
    out = tmp_path / "window"
    with RunDir(out), pytest.raises(RunLocked, match=rf"pid {os.getpid()}, started "):
        RunDir(out).__enter__()
    with RunDir(out):  # the lock went with the first
        pass


FORKED_UNDER_THE_LOCK = """
import multiprocessing, sys, time
from pathlib import Path
from shadowdiff.rundir import RunDir, RunLocked
out = Path(sys.argv[1])
with RunDir(out):
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
    child.start()
try:
    with RunDir(out):  # while the child, forked under the lock, still runs
        assert child.is_alive()
        try:
            RunDir(out).__enter__()
        except RunLocked:
            print("locked while held")  # the lock itself still works
finally:
    child.kill()
    child.join()
print("next run started")
"""


def test_a_forked_child_still_running_does_not_hold_the_run_lock(tmp_path: Path) -> None:
    """A run's reading workers are forked while it holds its lock; one still exiting when the
    run ends (a run that failed early lets its workers go without waiting) must not keep the
    directory locked: the next run starts at once. (In a fresh interpreter: the run forks its
    workers only where it runs no other thread, which this test process may.)"""
    done = subprocess.run(
        [sys.executable, "-c", FORKED_UNDER_THE_LOCK, str(tmp_path / "window")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["locked while held", "next run started"]


def test_the_cli_names_the_holder_and_exits_2(tmp_path: Path) -> None:
    primary, mirror = write_logs(tmp_path / "logs", files=1, lines=50)
    out = tmp_path / "window"
    with RunDir(out):
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "shadowdiff"),
                "run",
                "--primary",
                str(primary),
                "--mirror",
                str(mirror),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert "another shadowdiff run is writing this run directory" in done.stderr
    assert f"pid {os.getpid()}" in done.stderr


def test_a_directory_of_other_files_is_never_replaced(tmp_path: Path) -> None:
    primary, mirror = write_logs(tmp_path / "logs", files=1, lines=50)
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a shadowdiff run directory"):
        shadowdiff.run(primary=[str(primary)], mirror=[str(mirror)], out=home)
    assert (home / "notes.txt").read_text() == "mine"


def test_a_run_parked_by_a_cut_swap_is_put_back(tmp_path: Path) -> None:
    primary, mirror = write_logs(tmp_path / "logs", files=1, lines=50)
    out = tmp_path / "window"
    shadowdiff.run(primary=[str(primary)], mirror=[str(mirror)], out=out)
    before = snapshot(out)
    out.rename(tmp_path / ".window.old-0123456789ab")  # killed between the two renames
    with RunDir(out):
        assert snapshot(out) == before
    assert leftovers(out) == []
