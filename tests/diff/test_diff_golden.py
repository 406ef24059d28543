"""Golden pairs: ``fixtures/<case>.primary.http`` and ``<case>.mirror.http`` (headers, a blank
line, the body as raw bytes), an optional ``<case>.rules.toml``, and the expected result in
``<case>.expected.json``.

Adding a case is adding its files. To write (or rewrite) the expected files from the engine's
current output, run ``SHADOWDIFF_UPDATE_GOLDEN=1 pytest tests/diff/test_diff_golden.py`` and
review the diff before committing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

from shadowdiff.diff.engine import diff_pair
from shadowdiff.diff.model import Message
from shadowdiff.diff.rules import Rules

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(p.name.removesuffix(".primary.http") for p in FIXTURES.glob("*.primary.http"))
UPDATE = os.environ.get("SHADOWDIFF_UPDATE_GOLDEN") == "1"


def read_message(path: Path) -> Message:
    """An HTTP response as a file: optional status line, headers, blank line, body bytes."""
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    status = None
    headers = []
    for line in head.decode().splitlines():
        if line.startswith("HTTP/"):
            status = int(line.split()[1])
        elif line.strip():
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return Message(status=status, headers=tuple(headers), body=body)


def run_case(name: str) -> dict[str, Any]:
    rules_file = FIXTURES / f"{name}.rules.toml"
    rules = Rules()
    if rules_file.exists():
        rules = Rules.from_mapping(tomllib.loads(rules_file.read_text()), origin=str(rules_file))
    result = diff_pair(
        read_message(FIXTURES / f"{name}.primary.http"),
        read_message(FIXTURES / f"{name}.mirror.http"),
        rules,
    )
    return {"note": result.note, "diffs": [dataclasses.asdict(d) for d in result.diffs]}


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    expected_file = FIXTURES / f"{name}.expected.json"
    got = run_case(name)
    if UPDATE:
        expected_file.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert expected_file.exists(), f"no {expected_file.name}: run with SHADOWDIFF_UPDATE_GOLDEN=1"
    assert got == json.loads(expected_file.read_text())


def test_every_kind_has_a_golden_case() -> None:
    kinds = set()
    for name in CASES:
        expected = json.loads((FIXTURES / f"{name}.expected.json").read_text())
        kinds |= {d["kind"] for d in expected["diffs"]}
    assert kinds == {"changed", "added", "removed", "type_changed", "order", "binary"}
