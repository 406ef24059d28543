"""The inputs' sha256 digests for the manifest, computed on cores the stages leave idle.

Hashing a big input costs about a second of CPU per GB. A thread at normal priority takes that
second from DuckDB while it reads the same files. At the lowest priority the thread runs in
the gaps instead, when a stage waits on one core. On the JSON benchmark (1.48 GB of input) the
run was faster in each of 5 interleaved rounds, by 0.5 s in the median round.

``result`` does not wait on a starved thread for long. It waits at most for the chunk the
thread is on (1 MiB, about a millisecond of hashing). If the digest is still not finished, the
calling thread (normal priority) takes it over from where the background thread stopped.
The thread hashes as many files at once as there are cores, a chunk of each in turn, so what
is left when the run asks is spread over them, and ``results`` finishes them side by side.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from shadowdiff.engine.collection import cores

CHUNK = 1 << 20


class _Digest:
    """One file's sha256, advanced a chunk at a time by whichever thread holds the lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.hash = hashlib.sha256()
        self.offset = 0
        self.done = False
        self.claimed = False  # the caller took over: the background thread leaves it

    def advance(self, stream: BinaryIO) -> bool:
        """Hash the next chunk from ``stream`` (the background thread's own handle, read in
        order from the start). False when there is nothing left to do here."""
        with self.lock:
            if self.done or self.claimed:
                return False
            chunk = stream.read(CHUNK)
            if not chunk:
                self.done = True
                return False
            self.hash.update(chunk)
            self.offset += len(chunk)
            return True

    def finish(self) -> str:
        with self.lock:
            self.claimed = True
            if not self.done:
                with open(self.path, "rb") as stream:
                    stream.seek(self.offset)
                    while chunk := stream.read(CHUNK):
                        self.hash.update(chunk)
                self.done = True
            return self.hash.hexdigest()


class Digests:
    """sha256 of each of ``paths``, started at once in a low-priority thread; ``result(i)``
    gives the digest of ``paths[i]``. Use as a context manager: leaving stops the thread."""

    def __init__(self, paths: list[Path]) -> None:
        self._digests = [_Digest(p) for p in paths]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="shadowdiff-digests")
        self._thread.start()

    def __enter__(self) -> Digests:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def result(self, index: int) -> str:
        return self._digests[index].finish()

    def results(self, indices: list[int]) -> list[str]:
        """The digests of ``paths[i]`` for each of ``indices``. Those the thread has not
        finished are finished at once, side by side (hashing and reading let go of the GIL)."""
        wanted = [self._digests[i] for i in indices]
        width = min(len(wanted), cores())
        if width <= 1:
            return [d.finish() for d in wanted]
        with ThreadPoolExecutor(max_workers=width) as pool:
            return list(pool.map(_Digest.finish, wanted))

    def _work(self) -> None:
        """Hash the files a few at a time, a chunk of each in turn: what is left of them when
        the run asks is then shared out evenly for ``results`` to finish side by side."""
        _lowest_priority()
        width = cores()
        for start in range(0, len(self._digests), width):
            with contextlib.ExitStack() as files:
                streams: dict[_Digest, BinaryIO] = {}
                for digest in self._digests[start : start + width]:
                    try:
                        streams[digest] = files.enter_context(open(digest.path, "rb"))
                    except OSError:
                        pass  # the caller's own pass over the file reports it
                active = list(streams)
                while active and not self._stop.is_set():
                    active = [d for d in active if d.advance(streams[d])]
            if self._stop.is_set():
                return


def _lowest_priority() -> None:
    """Give the calling thread the lowest CPU priority. On Linux a thread's nice value is its
    own (``setpriority`` with its thread id); elsewhere that id could name another process, so
    nothing is done there."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
