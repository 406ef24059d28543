"""Progress for long runs: one self-overwriting status line on a terminal, nothing elsewhere.

The line goes to stderr, and only when stderr is a terminal and the ``CI`` environment variable
is not set, so pipes, log files, cron mails and CI logs stay clean. Messages come from the
engine (``read 3/12 inputs, 480000 records``); :meth:`Progress.update` builds one from counts.

    with progress.terminal() as say:
        shadowdiff.run(pipeline, progress=say)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

# Redraw at most this often: a terminal is slow next to a collector emitting per batch.
MIN_INTERVAL_S = 0.1


def wanted(stream: TextIO) -> bool:
    """True when progress should be shown on ``stream``: a terminal, and not in CI."""
    if os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


class Progress:
    """A callable ``(message) -> None`` the engine reports to (``progress=`` of ``run``).

    Quiet (every call does nothing) unless ``enabled``; by default enabled when
    :func:`wanted` says so for ``stream`` (stderr)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        min_interval: float = MIN_INTERVAL_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = wanted(self.stream) if enabled is None else enabled
        self.min_interval = min_interval
        self._clock = clock or time.monotonic
        self._last = -float("inf")
        self._width = 0

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if now - self._last < self.min_interval:
            return
        self._draw(message)
        self._last = now

    def update(
        self,
        *,
        files: tuple[int, int] | None = None,
        records: int | None = None,
        pairs: int | None = None,
    ) -> None:
        """Report counts: ``files`` as (done, total), ``records`` read, ``pairs`` made."""
        parts = []
        if files is not None:
            parts.append(f"{files[0]}/{files[1]} files")
        if records is not None:
            parts.append(f"{records:,} records")
        if pairs is not None:
            parts.append(f"{pairs:,} pairs")
        if parts:
            self(", ".join(parts))

    def close(self) -> None:
        """Clear the status line, so what is printed next starts on a clean line."""
        if not self.enabled or not self._width:
            return
        self.stream.write("\r" + " " * self._width + "\r")
        self.stream.flush()
        self._width = 0

    def _draw(self, message: str) -> None:
        columns = _columns()
        text = message if len(message) < columns else message[: columns - 2] + "…"
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)


@contextmanager
def terminal(stream: TextIO | None = None) -> Iterator[Progress]:
    """A :class:`Progress` for the CLI; the status line is cleared when the block ends."""
    reporter = Progress(stream)
    try:
        yield reporter
    finally:
        reporter.close()


def _columns() -> int:
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80
    return columns if columns >= 20 else 80  # a pseudo-terminal may report 0
