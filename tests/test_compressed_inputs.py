"""Compressed inputs with the reading workers: as many as workers or more (a window of rotated
``.gz`` logs) are each read whole by a worker, with the tables, figures and the guarantees of
a reading in the run's process (a file rotated away since the start is read as it was), and
each plain copy is removed once its input is read."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zstandard
from test_buckets import run
from test_snapshot import log_lines, text_of

from shadowdiff.collect import snapshot
from shadowdiff.collect.base import Options
from shadowdiff.collect.inputs import expand_groups
from shadowdiff.engine import buckets, collection
from shadowdiff.engine.buckets import Layout
from shadowdiff.testing.compare import differences

LINES = 120


def gz_logs(directory: Path, side: str, files: int) -> list[Path]:
    """``files`` gzip-compressed logs of ``LINES`` lines each, request ids running on across
    them (the mirror answers the same ids, every tenth with a 500)."""
    directory.mkdir(parents=True)
    paths = []
    for n in range(files):
        lines = log_lines(LINES, start=n * LINES)
        if side == "mirror":
            lines = [
                line.replace('"response_code": 200', '"response_code": 500')
                if i % 10 == 0
                else line
                for i, line in enumerate(lines)
            ]
        path = directory / f"access.log.{n + 1}.gz"
        path.write_bytes(gzip.compress(text_of(lines)))
        paths.append(path)
    return paths


def with_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading workers for any log, two of them."""
    monkeypatch.setattr(collection, "PARALLEL_MIN_LOG_BYTES", 0)
    monkeypatch.setattr(collection, "cores", lambda: 2)


# Run in a fresh interpreter: a run forks its workers only where no other thread runs (the
# test process may hold Dask's threads from an earlier test, and then gets a fork server).
# Reading workers for any log, two of them; every reading of an input on its own is recorded
# with the process that did it.
FORKED = """
import json, os, sys
from shadowdiff.engine import collection
collection.PARALLEL_MIN_LOG_BYTES = 0
collection.cores = lambda: 2
real_read_one = collection.read_one
def recorded(item, *args):
    with open(sys.argv[1], "a") as f:
        f.write(json.dumps([os.getpid(), item.source.name]) + "\\n")
    return real_read_one(item, *args)
collection.read_one = recorded
"""

RUN = """
import shadowdiff
inputs = json.loads(sys.argv[3])
shadowdiff.run(out=sys.argv[2], buckets=4, **inputs)
print(os.getpid())
"""

ROTATED = """
from pathlib import Path
from shadowdiff.collect.base import Options
from shadowdiff.collect.inputs import expand_groups
directory, first, replacement = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
plan = collection.plan(expand_groups([directory], "primary"), None)
with collection.Readers(plan) as readers:
    assert readers.pool is not None and readers.forked
    first.rename(directory / "access.log.9.gz")
    replacement.rename(first)  # another file at its path
    found = collection.collect(plan, Options(), readers, lambda _: None)
report = next(r for r in found.reports if r.path == str(first))
print(json.dumps([found.exchanges.column("request_id").to_pylist(), report.records,
                  report.note, os.getpid()]))
"""


def forked(tmp_path: Path, script: str, *args: str) -> tuple[str, list[tuple[int, str]]]:
    """What ``script`` printed, run after ``FORKED`` in a fresh interpreter, and the readings
    of inputs on their own it recorded (process id, input)."""
    record = tmp_path / "readings.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", FORKED + script, str(record), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    readings = [tuple(json.loads(line)) for line in record.read_text().splitlines()]
    return done.stdout, readings  # type: ignore[return-value]


def test_compressed_logs_read_by_the_workers_give_what_they_give_read_here(
    tmp_path: Path,
) -> None:
    primary = gz_logs(tmp_path / "p", "primary", 3)
    mirror = gz_logs(tmp_path / "m", "mirror", 2)
    inputs = {"primary": [str(p) for p in primary], "mirror": [str(m) for m in mirror]}
    here = run(tmp_path / "here", 4, **inputs)
    printed, readings = forked(tmp_path, RUN, str(tmp_path / "workers"), json.dumps(inputs))
    workers = json.loads((tmp_path / "workers" / "manifest.json").read_text())
    assert differences(tmp_path / "here", tmp_path / "workers") == []
    assert here["conservation"] == workers["conservation"]
    assert here["inputs"] == workers["inputs"]
    # Every log read on its own once, each by a worker, not by the run's process.
    assert sorted(name for _, name in readings) == sorted(map(str, primary + mirror))
    run_pid = int(printed.split()[-1])
    assert {pid for pid, _ in readings}.isdisjoint({run_pid})


def test_fewer_compressed_inputs_than_workers_are_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One compressed log beside a plain one: read in this process, where DuckDB reads its
    copy on every core, while a worker reads the plain log."""
    (primary,) = gz_logs(tmp_path / "p", "primary", 1)
    mirror = tmp_path / "mirror.log"
    mirror.write_bytes(text_of(log_lines(LINES)))
    with_workers(monkeypatch)
    plan = collection.plan(expand_groups([primary, mirror], "primary"), None)
    with collection.Readers(plan) as readers:
        assert readers.pool is not None
        assert collection._whole_in_workers(plan, readers) == set()
    assert [item.source.path for item in plan.compressed()] == [primary]


def test_with_a_fork_server_compressed_logs_are_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers from a fork server (the caller runs threads) do not hold the descriptors of
    the inputs as they were at the start: this process reads the compressed ones."""
    gz_logs(tmp_path / "p", "primary", 2)
    with_workers(monkeypatch)
    plan = collection.plan(expand_groups([tmp_path / "p"], "primary"), None)
    running = threading.Event()
    other = threading.Thread(target=running.wait)  # a thread of the caller's
    other.start()
    try:
        with collection.Readers(plan) as readers:
            assert readers.pool is not None and not readers.forked
            assert collection._whole_in_workers(plan, readers) == set()
    finally:
        running.set()
        other.join()


def test_a_compressed_log_rotated_away_is_read_by_its_worker_as_it_was(tmp_path: Path) -> None:
    """The workers are forked after the run pinned its inputs, so a worker holds the
    descriptor of the file that was there at the start, as the run's process does."""
    first, second = gz_logs(tmp_path / "p", "primary", 2)
    replacement = tmp_path / "replacement.gz"
    replacement.write_bytes(gzip.compress(text_of(log_lines(3, start=1000))))
    printed, readings = forked(tmp_path, ROTATED, str(tmp_path / "p"), str(first), str(replacement))
    ids, records, note, run_pid = json.loads(printed)
    assert sorted(ids, key=lambda i: int(i[1:])) == [f"r{i}" for i in range(2 * LINES)]
    assert records == LINES and "rotated" in str(note)
    assert sorted(name for _, name in readings) == sorted(map(str, (first, second)))
    assert run_pid not in {pid for pid, _ in readings}


def test_the_plain_copy_of_a_compressed_input_is_removed_once_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (path,) = gz_logs(tmp_path / "p", "primary", 1)
    plan = collection.plan(expand_groups([path], "primary"), None)
    (item,) = plan.items
    assert isinstance(item, collection._One)
    copies: list[Path] = []
    real_scratch_file = snapshot.scratch_file

    def recorded(scratch: Path, source: object) -> Path:
        copies.append(real_scratch_file(scratch, source))  # type: ignore[arg-type]
        return copies[-1]

    monkeypatch.setattr(snapshot, "scratch_file", recorded)
    kept = Layout(str(tmp_path / "kept"), 1)
    kept.create()
    scratch = tmp_path / "scratch" / "0000000"
    pinned = snapshot.pin(path, keep_open=False)
    rejects, reports, _ = collection.read_one(
        item, Options(), collection.Keep(kept), 0, scratch, pinned
    )
    assert rejects == [] and reports[0].records == LINES
    assert buckets.read(kept, 0).num_rows == LINES
    assert len(copies) == 1 and copies[0].is_relative_to(scratch)  # it was decompressed there
    assert not scratch.exists()


def test_a_compressed_log_counts_for_the_size_it_records(tmp_path: Path) -> None:
    """For the bucket count and the workers: a gzip file's trailer and a zstd frame's header
    give the decompressed size; a gzip file of several members records its last one's only,
    and counts for at least ``COMPRESSION_GUESS`` times its size."""
    text = text_of(log_lines(4000))  # repetitive lines: far more than 8 times their gzip
    one = tmp_path / "one.log.gz"
    one.write_bytes(gzip.compress(text))
    frame = tmp_path / "frame.log.zst"
    frame.write_bytes(zstandard.ZstdCompressor().compress(text))
    members = tmp_path / "members.log.gz"
    members.write_bytes(gzip.compress(text) + gzip.compress(text[:100]))
    assert len(text) > collection.COMPRESSION_GUESS * one.stat().st_size
    sizes = {}
    for path in (one, frame, members):
        plan = collection.plan(expand_groups([path], "primary"), None)
        sizes[path.name] = plan.log_bytes()
    assert sizes["one.log.gz"] == sizes["frame.log.zst"] == len(text)
    assert sizes["members.log.gz"] == collection.COMPRESSION_GUESS * members.stat().st_size
    plain = tmp_path / "plain.log"
    plain.write_bytes(text)
    assert collection.plan(expand_groups([plain], "primary"), None).log_bytes() == len(text)
