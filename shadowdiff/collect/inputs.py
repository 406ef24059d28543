"""Turning what a user typed (files, directories, globs) into a sorted list of input files."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from shadowdiff.collect.base import Input
from shadowdiff.errors import InputError

SKIPPED_NAMES = (".DS_Store",)


def expand(patterns: Iterable[str | Path], side: str | None) -> list[Input]:
    """Every file named by ``patterns``: a file as is, a directory recursively (hidden files
    skipped), a glob by its matches. A pattern that names nothing is an error."""
    found: list[Input] = []
    for pattern in patterns:
        text = str(pattern)
        if glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise InputError(f"{text}: the pattern matches no file.")
        else:
            path = Path(text)
            if path.is_dir():
                files = sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                    and p.name not in SKIPPED_NAMES
                )
                if not files:
                    raise InputError(f"{text}: the directory holds no file.")
            elif path.exists():
                files = [path]
            else:
                raise InputError(f"{text}: no such file or directory.")
        found.extend(Input(p, side) for p in files)
    return found
