"""Inputs that change under a run: a log still being written, rotated away, truncated in place,
and compressed files cut short or corrupt. Each is read as it was when the run started."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

import shadowdiff
from shadowdiff.collect import snapshot
from shadowdiff.collect.inputs import expand_groups
from shadowdiff.engine import collection
from shadowdiff.errors import InputError

# Appends one line every half millisecond to argv[1] until killed, after saying it has begun.
WRITER = """
import sys, time
with open(sys.argv[1], "ab", buffering=0) as f:
    f.write((sys.argv[2] + "\\n").encode())
    print("writing", flush=True)
    while True:
        f.write((sys.argv[2] + "\\n").encode())
        time.sleep(0.0005)
"""


def log_lines(n: int, start: int = 0) -> list[str]:
    return [
        json.dumps(
            {
                "start_time": "2026-11-28T10:00:00.000Z",
                "method": "GET",
                "path": f"/api/items/{i}",
                "response_code": 200,
                "duration": 5,
                "request_id": f"r{i}",
                "authority": "app:8080",
            }
        )
        for i in range(start, start + n)
    ]


def text_of(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def collect(path: Path, change: object = None) -> collection.Collected:
    """Collect ``path`` as a run does, calling ``change()`` after the run's start (the pins)
    and before anything is read."""
    plan = collection.plan(expand_groups([path], "primary"), None)
    with collection.Readers(plan) as readers:
        if callable(change):
            change()
        return collection.collect(plan, collection.Options(), readers, lambda _: None)


# --- compressed inputs cut short ------------------------------------------------------------


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".zst", zstd)])
def test_a_cut_compressed_log_keeps_every_line_before_the_cut(
    tmp_path: Path, suffix: str, compress: object
) -> None:
    lines = log_lines(3000)
    # Two members (frames), as `cat a.gz b.gz` or a rotating writer makes them.
    whole = compress(text_of(lines[:1000])) + compress(text_of(lines[1000:]))  # type: ignore[operator]
    path = tmp_path / f"access.log{suffix}"
    for cut in (len(whole) // 3, len(whole) // 2, len(whole) - 5):
        path.write_bytes(whole[:cut])
        found = collect(path)
        ids = found.exchanges.column("request_id").to_pylist()
        assert ids == [f"r{i}" for i in range(len(ids))]  # a prefix, in order, none skipped
        assert 0 < len(ids) <= 3000  # a cut in the last member's trailer loses no line
        (cut_row,) = found.rejects
        assert cut_row["location"] == f"{path}:{len(ids) + 1}"
        assert "compressed data cut short" in str(cut_row["reason"])
        (report,) = found.reports
        assert report.records == len(ids) + 1 and report.rejected == 1
        assert "lines before the cut were read" in str(report.note)


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".zst", zstd)])
def test_a_compressed_log_decoded_a_little_at_a_time_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, compress: object
) -> None:
    """Decoded 512 compressed bytes at a time, lines and members straddle the steps: the
    same rows, rejects and figures as decoded in one step, whole or cut short."""
    lines = log_lines(3000)
    whole = compress(text_of(lines[:1000])) + compress(text_of(lines[1000:]))  # type: ignore[operator]
    path = tmp_path / f"access.log{suffix}"
    for cut in (len(whole), len(whole) // 2):
        path.write_bytes(whole[:cut])
        monkeypatch.setattr(snapshot, "DECODE_CHUNK", len(whole))
        at_once = collect(path)
        monkeypatch.setattr(snapshot, "DECODE_CHUNK", 512)
        stepped = collect(path)
        assert stepped.exchanges.to_pylist() == at_once.exchanges.to_pylist()
        assert stepped.rejects == at_once.rejects
        assert stepped.reports == at_once.reports
        assert (cut == len(whole)) == (at_once.rejects == [])


def test_a_whole_compressed_log_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "access.log.gz"
    path.write_bytes(gzip.compress(text_of(log_lines(500))))
    found = collect(path)
    assert found.exchanges.num_rows == 500 and found.rejects == []
    assert found.reports[0].note is None


def test_corrupt_compressed_data_keeps_the_lines_before_it(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(text_of(log_lines(50_000)), compresslevel=1))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "access.log.gz"
    path.write_bytes(bytes(data))
    found = collect(path)
    assert 0 < found.exchanges.num_rows < 50_000
    reasons = [str(r["reason"]) for r in found.rejects]
    assert any("compressed data cut short" in r for r in reasons), reasons
    report = found.reports[0]
    assert report.records == found.exchanges.num_rows + len(found.rejects)


# --- inputs that change during the run ---------------------------------------------------------


def test_a_log_that_grows_is_read_up_to_its_size_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(text_of(log_lines(100)))
    size = path.stat().st_size

    def append() -> None:
        with open(path, "ab") as f:
            f.write(text_of(log_lines(50, start=100)))

    found = collect(path, append)
    assert found.exchanges.num_rows == 100 and found.rejects == []
    (report,) = found.reports
    assert report.size == size
    assert f"read the first {size:,}" in str(report.note)


def test_a_rotated_log_is_read_from_the_file_of_the_start(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(text_of(log_lines(80)))

    def rotate() -> None:
        path.rename(tmp_path / "access.log.1")
        path.write_bytes(text_of(log_lines(3, start=1000)))  # the new, short log

    found = collect(path, rotate)
    assert found.exchanges.column("request_id").to_pylist() == [f"r{i}" for i in range(80)]
    assert found.exchanges.column("location").to_pylist()[0] == f"{path}:1"
    assert "rotated" in str(found.reports[0].note)


def test_a_log_truncated_in_place_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(text_of(log_lines(80)))

    def truncate() -> None:
        os.truncate(path, 0)

    with pytest.raises(InputError, match="shrank .* Run on the rotated copy"):
        collect(path, truncate)


def test_a_run_over_a_log_being_written_reads_what_was_there_at_its_start(
    tmp_path: Path,
) -> None:
    """A writer appends (a line at a time, as Envoy does) all through a real run. It is a
    process of its own, as Envoy is: a thread of this one could wait on the run for the GIL."""
    primary, mirror = tmp_path / "p.log", tmp_path / "m.log"
    primary.write_bytes(text_of(log_lines(20_000)))
    mirror.write_bytes(text_of(log_lines(20_000)))
    line = log_lines(1, start=20_000)[0]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(primary), line], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        result = shadowdiff.run(primary=[str(primary)], mirror=[str(mirror)], out=tmp_path / "o")
        time.sleep(0.05)  # a few lines more after the run, whatever the machine's load
    finally:
        writer.kill()
        writer.wait()
    entry = result.manifest["inputs"][0]
    assert primary.stat().st_size > entry["size"]  # it did grow while the run read it
    with open(primary, "rb") as f:
        lines_at_start = f.read(entry["size"]).count(b"\n")
    assert entry["records"] == lines_at_start
    assert result.manifest["conservation"]["primary"]["read"] == lines_at_start
