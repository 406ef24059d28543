"""Fixtures for the report tests; the run directories come from ``rundirs``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rundirs import ITEMS, PairSpec, hostile_specs, write_run


@pytest.fixture
def hostile_run(tmp_path: Path) -> Path:
    return write_run(
        tmp_path / "run",
        hostile_specs(),
        rejects=1,
        noise_rows=[
            {
                "endpoint": ITEMS,
                "pattern": "date",
                "kind": "changed",
                "raw_count": 5,
                "baseline_count": 5,
                "total": 40,
                "p_value": 0.9,
                "verdict": "noise",
                "evidence": "differs as often between primary and secondary",
            }
        ],
    )


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    made = [0]

    def make(specs: list[PairSpec], **options: Any) -> Path:
        made[0] += 1
        return write_run(tmp_path / f"run{made[0]}", specs, **options)

    return make
