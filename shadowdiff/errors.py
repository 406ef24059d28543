"""The errors shadowdiff raises on purpose. Each carries a message that says what failed, where,
and what to try next; the CLI prints it without a traceback and exits with ``exit_code``."""

from __future__ import annotations

import errno
import os


class ShadowdiffError(Exception):
    """Base of every expected failure."""

    exit_code = 2


class InputError(ShadowdiffError):
    """An input (file, directory, glob) cannot be used as a whole."""


class ConfigError(ShadowdiffError):
    """A flag, rules file or pipeline file is wrong."""


class OutputError(ShadowdiffError):
    """The results cannot be written (the disk is full, a file size limit)."""


# errno values that mean "no room to write": the disk or a quota is full, or a file would pass
# the process's file size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the write fails).
NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_NO_ROOM_TEXT = ("no space left on device", "file too large", "disk quota exceeded")


def no_room(error: BaseException) -> str | None:
    """Why ``error`` is a write that found no room, as the system says it; else ``None``. For
    an ``OSError`` by its errno; for others (DuckDB's I/O errors), by their text."""
    if isinstance(error, OSError) and error.errno in NO_ROOM:
        return os.strerror(error.errno)
    text = str(error).lower()
    return next((t for t in _NO_ROOM_TEXT if t in text), None)


class ConservationError(ShadowdiffError):
    """Records read do not add up to paired + orphaned + duplicates + rejected: a bug, never
    silently ignored."""

    exit_code = 3
