"""Every file of the regression corpus (``corpus/<parser>/NNN-<what>.<ext>``) through the
property its parser's fuzz test checks, strictly (a known bug is not bounded here, it fails).

A file named ``NNN-bug-…`` holds an input of a bug found by fuzzing and not fixed yet: it is
listed in ``KNOWN_BUGS`` and expected to fail (strict xfail), so the fix shows as an XPASS, and
then the entry goes. To add a case, drop the (minimised) failing input in the folder of its
parser with the next number: ``FUZZ_SAVE=DIR`` keeps the ones a fuzz run finds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_fuzz_config
import test_fuzz_envoy_format
import test_fuzz_envoy_json
import test_fuzz_envoy_tap
import test_fuzz_envoy_text
from fuzzkit import CORPUS

CHECKS: dict[str, Callable[[Path, Path], None]] = {
    "envoy_text": test_fuzz_envoy_text.check_file,
    "envoy_json": test_fuzz_envoy_json.check_file,
    "envoy_tap": test_fuzz_envoy_tap.check_file,
    "envoy_format": test_fuzz_envoy_format.check_file,
    "config": test_fuzz_config.check_file,
}
KNOWN_BUGS: dict[str, str] = {}
FILES = sorted(p for p in CORPUS.glob("*/*") if p.is_file() and not p.name.startswith("."))


def _param(path: Path) -> Any:
    name = f"{path.parent.name}/{path.name}"
    bug = KNOWN_BUGS.get(name)
    marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
    return pytest.param(path, marks=marks, id=name)


def test_the_corpus_is_whole() -> None:
    assert {p.parent.name for p in FILES} == set(CHECKS)
    names = {f"{p.parent.name}/{p.name}" for p in FILES}
    assert set(KNOWN_BUGS) <= names, set(KNOWN_BUGS) - names
    assert {n for n in names if "-bug-" in n} == set(KNOWN_BUGS)
    for parser in CHECKS:
        numbers = [p.name.split("-", 1)[0] for p in FILES if p.parent.name == parser]
        assert numbers == [f"{n:03d}" for n in range(1, len(numbers) + 1)], parser


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_every_corpus_file_keeps_its_parser_property(path: Path, tmp_path: Path) -> None:
    CHECKS[path.parent.name](path, tmp_path)
