"""A run directory built beside ``--out`` and put in its place only when complete.

A run writes every table into a fresh working directory, ``.NAME.run-<token>`` next to ``NAME``
(the same filesystem, so the swap is a rename). When the manifest is written, the working
directory and the previous run trade places in one atomic step (``renameat2`` with
``RENAME_EXCHANGE`` on Linux; elsewhere two renames, with the previous run kept under
``.NAME.old-<token>`` for the moment between them), and the previous run is removed. A run killed
at any moment therefore leaves the previous run readable and whole.

A run holds an exclusive ``flock`` on ``.NAME.lock`` from start to end; the file names the holder
(pid, start time). The kernel releases the lock when the process dies, so a killed run's lock is
simply taken over, and the run that takes it removes what the killed run left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import glob
import os
import secrets
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO

from shadowdiff.errors import ConfigError, ShadowdiffError
from shadowdiff.store import MANIFEST

RENAME_EXCHANGE = 2  # linux/fs.h

# The descriptors of the run locks this process holds. A forked child (a run's reading worker)
# inherits them, and a flock lasts while any copy is open: a worker still exiting after its run
# ended would keep the run directory locked, and a run right after would be refused. So a
# forked child lets go of its copies at once (``_let_go_in_child``).
_HELD_LOCKS: set[int] = set()


def _let_go_in_child() -> None:
    """In a forked child: each held lock's descriptor made a copy of /dev/null instead (not
    closed: the number stays taken, so the parent's file object, copied here too, never
    closes another file's descriptor)."""
    if not _HELD_LOCKS:
        return
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        for fd in _HELD_LOCKS:
            os.dup2(null, fd)
    finally:
        os.close(null)
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_let_go_in_child)


class RunLocked(ShadowdiffError):
    """Another run is writing the same run directory."""


class RunDir:
    """The working directory of one run into ``out``. Use as a context manager: leaving it
    without ``commit`` (an error) removes the working directory and keeps the previous run."""

    def __init__(self, out: Path) -> None:
        self.out = out = Path(os.path.abspath(out))  # "." has no name to put beside it
        self.lock_path = out.parent / f".{out.name}.lock"
        self._lock: IO[str] | None = None
        self.work = out.parent / f".{out.name}.run-{secrets.token_hex(6)}"
        self.committed = False

    def __enter__(self) -> RunDir:
        _check_replaceable(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _acquire(self.lock_path, self.out)
        self._remove_leftovers()
        self.work.mkdir()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if not self.committed:
                shutil.rmtree(self.work, ignore_errors=True)
        finally:
            if self._lock is not None:
                _HELD_LOCKS.discard(self._lock.fileno())
                self._lock.close()  # releases the flock
                self._lock = None

    def commit(self) -> None:
        """Put the working directory in place of ``out`` (the previous run, if any, goes)."""
        if not self.out.exists():
            os.rename(self.work, self.out)
        elif _exchange(self.work, self.out):
            shutil.rmtree(self.work, ignore_errors=True)  # now the previous run
        else:
            old = self.out.parent / f".{self.out.name}.old-{secrets.token_hex(6)}"
            os.rename(self.out, old)
            os.rename(self.work, self.out)
            shutil.rmtree(old, ignore_errors=True)
        self.committed = True

    def _remove_leftovers(self) -> None:
        """Working directories of runs that were killed (none can be running: the lock is
        ours), and a previous run parked by a swap that was cut short."""
        parked: list[Path] = []
        for path in self.out.parent.glob(f".{glob.escape(self.out.name)}.*-*"):
            kind = path.name[len(self.out.name) + 2 :].split("-", 1)[0]
            if kind == "run":
                shutil.rmtree(path, ignore_errors=True)
            elif kind == "old":
                parked.append(path)
        for path in parked:
            if not self.out.exists():
                os.rename(path, self.out)  # killed between the two renames: put it back
            else:
                shutil.rmtree(path, ignore_errors=True)


def _check_replaceable(out: Path) -> None:
    """``out`` is absent, empty or a run directory: a run replaces it whole, so a directory of
    anything else (a home directory given as --out by mistake) is refused, never emptied."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory. Pass another --out.")
    names = sorted(p.name for p in out.iterdir())
    if not names or MANIFEST in names or all(_ours(name) for name in names):
        return
    shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    raise ConfigError(
        f"{out}: not a shadowdiff run directory (it holds {shown}), and a run replaces its "
        "--out whole. Pass a new or empty directory."
    )


def _ours(name: str) -> bool:
    """A file a run (of this version or an older one, interrupted) leaves in its directory."""
    return name.endswith((".parquet", ".tmp")) or name.startswith("report.") or name == "junit.xml"


def _acquire(lock_path: Path, out: Path) -> IO[str]:
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            handle.close()
            raise
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunLocked(
            f"{out}: another shadowdiff run is writing this run directory ({holder}). "
            "Wait for it to finish, or pass another --out."
        ) from e
    handle.seek(0)
    handle.truncate()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    handle.write(f"pid {os.getpid()}, started {started}\n")
    handle.flush()
    _HELD_LOCKS.add(handle.fileno())
    return handle


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically; False where the system cannot (then nothing moved)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    if libc is None or not hasattr(libc, "renameat2"):
        return False
    at_cwd = -100  # AT_FDCWD
    result = libc.renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False  # this filesystem or kernel has no exchange
    raise OSError(code, os.strerror(code), str(b))


def _libc() -> ctypes.CDLL | None:
    with contextlib.suppress(OSError):
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return None
