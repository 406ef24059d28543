"""The inputs' sha256 digests for the manifest, computed on cores the stages leave idle.

Hashing a big input costs about a second of CPU per GB. A thread at normal priority takes that
second from DuckDB while it reads the same files. At the lowest priority the thread runs in
the gaps instead, when a stage waits on one core. On the JSON benchmark (1.48 GB of input) the
run was faster in each of 5 interleaved rounds, by 0.5 s in the median round.

``result`` does not wait on a starved thread for long. It waits at most for the chunk the
thread is on (1 MiB, about a millisecond of hashing). If the digest is still not finished, the
calling thread (normal priority) takes it over from where the background thread stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

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

    def _work(self) -> None:
        _lowest_priority()
        for digest in self._digests:
            try:
                with open(digest.path, "rb") as stream:
                    while not self._stop.is_set() and digest.advance(stream):
                        pass
            except OSError:
                pass  # the caller's own pass over the file reports it
            if self._stop.is_set():
                return


def _lowest_priority() -> None:
    """Give the calling thread the lowest CPU priority. On Linux a thread's nice value is its
    own (``setpriority`` with its thread id); elsewhere that id could name another process, so
    nothing is done there."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
