"""Collecting many inputs: per-file cost that does not depend on the environment or on how many
files there are, a directory sniffed on a sample, files of another format as rejects, and the
worker processes giving exactly what one process gives."""

from __future__ import annotations

import cProfile
import hashlib
import importlib.metadata
import json
import pstats
import re
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

import shadowdiff
from shadowdiff.collect import registry
from shadowdiff.collect.inputs import expand_groups
from shadowdiff.diff import engine as diff_engine
from shadowdiff.engine import collection
from shadowdiff.errors import InputError
from shadowdiff.testing.factories import ttap, write_taps

TABLES = ("exchanges", "pairs", "diffs", "latency", "noise", "rejects")


def tap_window(root: Path, n: int, diverged_every: int = 10) -> tuple[Path, Path]:
    """``n`` requests as file-per-tap traces on each side; every ``diverged_every``-th answers
    500 on the mirror, and every 7th has another body there."""
    primary, mirror = root / "primary", root / "mirror"
    write_taps(primary, [ttap(f"req-{i:06d}", f"/api/items/{i}", body=_body(i)) for i in range(n)])
    mirrored = [
        ttap(
            f"req-{i:06d}",
            f"/api/items/{i}",
            500 if i % diverged_every == 0 else 200,
            _body(i, changed=i % 7 == 0),
        )
        for i in range(n)
    ]
    write_taps(mirror, mirrored)
    return primary, mirror


def _body(i: int, changed: bool = False) -> bytes:
    return json.dumps({"id": i, "total": i * 3 + changed, "tags": ["a", "b"]}).encode()


def run(primary: Path, mirror: Path, out: Path) -> dict[str, Any]:
    result = shadowdiff.run(primary=[str(primary)], mirror=[str(mirror)], out=str(out))
    return result.manifest


def calls_of_run(primary: Path, mirror: Path, out: Path) -> int:
    """Python function calls made by a whole run in this process."""
    profile = cProfile.Profile()
    profile.enable()
    run(primary, mirror, out)
    profile.disable()
    return sum(entry[1] for entry in pstats.Stats(profile).stats.values())  # type: ignore[attr-defined]


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read every file in this process (no worker processes), so a profile sees all the work."""
    monkeypatch.setattr(collection, "PARALLEL_MIN_FILES", 10**9)


def test_cost_per_file_stays_flat_as_the_directory_grows(tmp_path: Path, in_process: None) -> None:
    sizes = (500, 2500, 5000)
    calls = []
    for n in sizes:
        primary, mirror = tap_window(tmp_path / f"w{n}", n)
        run(primary, mirror, tmp_path / f"warm{n}")  # imports and caches out of the count
        calls.append(calls_of_run(primary, mirror, tmp_path / f"out{n}"))
    # Calls per extra file pair, between the small and the middle, and the middle and the big
    # directory: the same, whatever the size (a scan of the environment per file, or a sniff
    # per file, would add hundreds of calls to each).
    small = (calls[1] - calls[0]) / (sizes[1] - sizes[0])
    big = (calls[2] - calls[1]) / (sizes[2] - sizes[1])
    assert big == pytest.approx(small, rel=0.05), (small, big)
    assert big < 1000, f"{big:.0f} Python calls per request (two tap files and their diff)"


def test_entry_points_are_read_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, mirror = tap_window(tmp_path, 5000)
    scans = []
    real = importlib.metadata.entry_points

    def counted(**kwargs: Any) -> Any:
        scans.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(registry, "entry_points", counted)
    registry._plugins.cache_clear()
    manifest = run(primary, mirror, tmp_path / "out")
    assert manifest["pairs"] == 5000
    assert len(scans) <= 1


def test_a_directory_is_sniffed_on_a_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_taps(tmp_path / "taps", [ttap(f"r{i}") for i in range(5000)])
    heads = []
    real = collection.read_head

    def counted(source: Any, *args: Any) -> bytes:
        heads.append(source)
        return real(source, *args)

    monkeypatch.setattr(collection, "read_head", counted)
    plan = collection.plan(expand_groups([tmp_path / "taps"], "primary"), None)
    assert len(heads) <= collection.SNIFF_SAMPLE
    assert plan.many_files == 5000
    assert len(plan.items) == 1


def test_files_of_another_format_in_a_tap_directory_are_rejects(tmp_path: Path) -> None:
    primary, mirror = tap_window(tmp_path, 40)
    # Not in the sample that chose the collector: read as taps, they are rejects.
    (primary / "tap_0000005.json").write_text("copied here by mistake\n")
    (primary / "tap_9999998.json").write_bytes(b"")
    (mirror / "tap_9999999.json").write_text('{"http_buffered_trace": {"request": ')
    manifest = run(primary, mirror, tmp_path / "out")
    rejects = duckdb.sql(
        f"SELECT location, reason FROM '{tmp_path / 'out' / 'rejects.parquet'}' ORDER BY 1"
    ).fetchall()
    # A location is file:0 for a whole file, file#N for the N-th document in it.
    reasons = {re.split(r"[:#]", Path(loc).name)[0]: reason for loc, reason in rejects}
    assert reasons["tap_0000005.json"].startswith("not Envoy tap output")
    assert reasons["tap_9999998.json"] == "empty file: nothing to read"
    assert reasons["tap_9999999.json"].startswith("truncated JSON")
    assert manifest["conservation"]["primary"]["read"] == 41
    assert manifest["conservation"]["primary"]["rejected"] == 2
    assert manifest["conservation"]["mirror"]["rejected"] == 1
    assert manifest["pairs"] == 40


def test_a_mixed_directory_is_read_file_by_file(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    write_taps(folder, [ttap(f"r{i}") for i in range(3)])
    log = {"request_id": "r-log", "method": "GET", "path": "/x", "response_code": 200}
    (folder / "access.log").write_text(json.dumps(log) + "\n")
    (folder / "zz.bin").write_bytes(b"\x00\x01binary")
    plan = collection.plan(expand_groups([folder], "primary"), None)
    found = collection.collect(plan, collection.Options(), collection.Readers(plan), print)
    sources = {Path(r.path).name: r.source for r in found.reports}
    assert sources["access.log"] == "envoy-json"
    assert sources["tap_0000000.json"] == "envoy-tap"
    assert found.exchanges.num_rows == 4
    (row,) = found.rejects
    assert str(row["reason"]).startswith("not a format shadowdiff reads")


def test_a_file_named_alone_that_no_collector_reads_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "zz.bin"
    path.write_bytes(b"\x00\x01binary")
    with pytest.raises(InputError, match="not a format shadowdiff reads"):
        collection.plan(expand_groups([path], "primary"), None)


def test_workers_give_what_one_process_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, mirror = tap_window(tmp_path, 2 * collection.MIN_CHUNK_FILES + 345)
    (primary / "tap_0000007.json").write_text("not a trace\n")
    groups = [*expand_groups([primary], "primary"), *expand_groups([mirror], "mirror")]
    with collection.Readers(collection.plan(groups, None)) as readers:
        assert readers.pool is not None  # the first run below reads in worker processes
    monkeypatch.setattr(diff_engine, "PARALLEL_SLICE", 300)  # and diffs there, in slices
    parallel = run(primary, mirror, tmp_path / "parallel")
    monkeypatch.setattr(collection, "PARALLEL_MIN_FILES", 10**9)
    single = run(primary, mirror, tmp_path / "single")
    assert parallel["inputs"] == single["inputs"]
    assert parallel["conservation"] == single["conservation"]
    for table in TABLES:
        a = duckdb.sql(
            f"SELECT * FROM '{tmp_path / 'parallel' / table}.parquet' ORDER BY ALL"
        ).fetchall()
        b = duckdb.sql(
            f"SELECT * FROM '{tmp_path / 'single' / table}.parquet' ORDER BY ALL"
        ).fetchall()
        assert a == b, table


def test_tap_inputs_carry_the_sha256_of_their_bytes(tmp_path: Path) -> None:
    primary, mirror = tap_window(tmp_path, 30)
    manifest = run(primary, mirror, tmp_path / "out")
    for entry in manifest["inputs"]:
        data = Path(entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)


def test_workers_come_from_a_fork_server_where_threads_already_run(tmp_path: Path) -> None:
    """A notebook's kernel runs threads: forking it could copy a lock one of them holds."""
    primary, mirror = tap_window(tmp_path, collection.MIN_CHUNK_FILES + 100)
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait)
    busy.start()
    try:
        groups = [*expand_groups([primary], "primary"), *expand_groups([mirror], "mirror")]
        plan = collection.plan(groups, None)
        with collection.Readers(plan) as readers:
            assert readers.pool is not None
            context = readers.pool._mp_context  # type: ignore[attr-defined]
            assert context.get_start_method() == "forkserver"
            found = collection.collect(plan, collection.Options(), readers, lambda _: None)
    finally:
        stop.set()
        busy.join()
    assert found.exchanges.num_rows == 2 * (collection.MIN_CHUNK_FILES + 100)
    assert not found.rejects
