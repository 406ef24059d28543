"""Fixtures shared across the test suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import shadowdiff

ROOT = Path(__file__).resolve().parents[1]
# The benchmarks' corpus generators (benchmarks/noise.py) are test data too.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def sample_text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run over the bundled sample window's Istio text logs (read only: make a copy to change
    it). 8 of 55 orders pairs answer 500 on the mirror; search is ~26 ms slower at p50."""
    out = tmp_path_factory.mktemp("sample") / "run"
    shadowdiff.run(
        primary=[str(ROOT / "sample_data/envoy/primary/istio_text.log")],
        mirror=[str(ROOT / "sample_data/envoy/mirror/istio_text.log")],
        out=out,
    )
    return out
