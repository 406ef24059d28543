"""The noise tests: factories in ``noisecases``; the generated corpus with known truth is the
noise benchmark's (``benchmarks/noise.py``), importable from the repository root."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
