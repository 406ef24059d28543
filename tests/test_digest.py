"""The inputs' digests: correct whichever thread finishes them, and no thread left behind."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from shadowdiff.engine import digest
from shadowdiff.engine.digest import Digests


def _files(tmp_path: Path) -> list[Path]:
    paths = []
    for n, size in enumerate([0, 1, 1000, 10_000]):
        path = tmp_path / f"f{n}"
        path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        paths.append(path)
    return paths


def test_digests_are_the_files_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digest, "CHUNK", 64)  # many chunks per file
    paths = _files(tmp_path)
    with Digests(paths) as digests:
        found = [digests.result(i) for i in range(len(paths))]
    assert found == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_the_caller_takes_over_a_digest_the_thread_has_not_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digest, "CHUNK", 64)
    paths = _files(tmp_path)
    started = threading.Event()
    hold = threading.Event()
    advance = digest._Digest.advance

    def slow(self: digest._Digest, stream: object) -> bool:  # the starved background thread
        started.set()
        hold.wait(5)
        return advance(self, stream)  # type: ignore[arg-type]

    monkeypatch.setattr(digest._Digest, "advance", slow)
    with Digests(paths) as digests:
        started.wait(5)
        found = [digests.result(i) for i in range(len(paths))]  # without the thread's help
        hold.set()
    assert found == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_leaving_stops_the_thread(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"a" * (3 * digest.CHUNK))
    with Digests([big] * 20) as digests:
        thread = digests._thread
    assert not thread.is_alive()


def test_a_file_that_disappears_is_reported_by_the_caller_not_the_thread(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    with Digests([gone]) as digests, pytest.raises(FileNotFoundError):
        digests.result(0)


def test_the_thread_hashes_a_file_per_core_in_turn_and_results_finishes_them_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digest, "CHUNK", 64)
    monkeypatch.setattr(digest, "cores", lambda: 2)
    paths = []
    for n in range(3):
        path = tmp_path / f"log{n}"
        path.write_bytes(bytes([n]) * 64 * 10)
        paths.append(path)
    order: list[str] = []
    advance = digest._Digest.advance

    def noted(self: digest._Digest, stream: object) -> bool:
        order.append(self.path.name)
        return advance(self, stream)  # type: ignore[arg-type]

    monkeypatch.setattr(digest._Digest, "advance", noted)
    finishing: list[str] = []
    finish = digest._Digest.finish
    both = threading.Barrier(2, timeout=5)  # broken unless two finish at once

    def watched(self: digest._Digest) -> str:
        finishing.append(threading.current_thread().name)
        if len(finishing) <= 2:
            both.wait()
        return finish(self)

    with Digests(paths) as digests:
        digests._thread.join(5)  # every file hashed by the thread
        monkeypatch.setattr(digest._Digest, "finish", watched)
        found = digests.results([2, 0, 1])
    assert found == [hashlib.sha256(paths[i].read_bytes()).hexdigest() for i in (2, 0, 1)]
    # Two files at once, a chunk of each in turn, then the third on its own.
    assert order[:6] == ["log0", "log1"] * 3
    assert set(order[order.index("log2") :]) == {"log2"}
    assert order.count("log0") == order.count("log1") == order.count("log2") == 11
    assert len(set(finishing)) == 2  # side by side, in two threads
