"""Turning what a user typed (files, directories, globs, URLs) into a sorted list of input files."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from shadowdiff.collect import remote
from shadowdiff.collect.base import Input
from shadowdiff.errors import InputError

SKIPPED_NAMES = (".DS_Store",)


def expand(patterns: Iterable[str | Path], side: str | None) -> list[Input]:
    """Every file named by ``patterns``: a file as is, a directory recursively (hidden files
    skipped), a glob by its matches. A pattern that names nothing is an error."""
    return [source for group in expand_groups(patterns, side) for source in group]


def expand_groups(
    patterns: Iterable[str | Path],
    side: str | None,
    fetch_into: Path | None = None,
    say: Callable[[str], None] = lambda _message: None,
) -> list[list[Input]]:
    """The files of each of ``patterns``, a list per pattern (see ``expand``): the files of one
    directory or glob are one group, read alike. A URL's objects are fetched into
    ``fetch_into`` (:mod:`~shadowdiff.collect.remote`)."""
    found: list[list[Input]] = []
    for pattern in patterns:
        text = remote.local_path(str(pattern))
        if remote.is_url(text):
            if fetch_into is None:
                raise InputError(f"{text}: inputs by URL are read by `shadowdiff run` only.")
            found.append(remote.fetch(text, side, fetch_into, say))
            continue
        if glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise InputError(f"{text}: the pattern matches no file.")
        else:
            path = Path(text)
            if path.is_dir():
                files = _walk(path)
                if not files:
                    raise InputError(f"{text}: the directory holds no file.")
            elif path.exists():
                files = [path]
            else:
                raise InputError(f"{text}: no such file or directory.")
        found.append([Input(p, side) for p in files])
    return found


def _walk(top: Path) -> list[Path]:
    """The files under ``top``, recursively, in path order; hidden files and directories are
    skipped. ``os.scandir`` knows each entry's type without a ``stat`` per file: a tap
    directory holds a file per request, hundreds of thousands of them."""
    found: list[tuple[tuple[str, ...], Path]] = []
    pending: list[tuple[Path, tuple[str, ...]]] = [(top, ())]
    while pending:
        folder, parts = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), (*parts, entry.name)))
                elif entry.is_file():
                    found.append(((*parts, entry.name), Path(entry.path)))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]
