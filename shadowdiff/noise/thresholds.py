"""The numbers that decide a noise verdict: one definition, used by the detectors, printed by
``shadowdiff noise`` and quoted in the evidence of ``insufficient data`` verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _setting(default: float, help: str) -> Any:  # noqa: A002 - the word is the point
    """A dataclass field that carries its help text (printed by ``shadowdiff noise``)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Thresholds:
    """Every threshold of the noise stage, with its default and what it decides."""

    alpha: float = _setting(
        0.01,
        "significance level of the one-sided Fisher exact test: does the pattern differ more "
        "often between primary and mirror than between primary and secondary?",
    )
    relative: float = _setting(
        0.20, "Diffy's relative threshold: real needs |raw - baseline| / (raw + baseline) above it"
    )
    absolute: float = _setting(
        0.0003, "Diffy's absolute threshold: real needs |raw - baseline| / total above it"
    )
    min_pairs: int = _setting(
        20,
        "pairs an endpoint needs (with a secondary: requests answered by all three sides) "
        "before any of its patterns is judged",
    )
    min_rows: int = _setting(
        30, "pairs a pattern must differ in before its values are judged (volatile or not)"
    )
    volatile_rate: float = _setting(
        0.8,
        "without a secondary: share of the endpoint's pairs (of the same primary statuses) a "
        "volatile field differs in (timestamps excepted)",
    )
    value_alpha: float = _setting(
        1e-4,
        "significance level of the value tests (KS, sign, Spearman, chi-square), split "
        "between the tests run on a pattern; small because a volatile field wrongly called real "
        "turns every pair of its endpoint diverged",
    )
    conform: float = _setting(
        0.95,
        "share of the pairs whose values must keep the reference's shape (timestamp format and "
        "clock, id/token shape) for a pattern to be noise; the pairs that break it stay real",
    )
    distinct: float = _setting(
        0.9, "distinct values / values, on each side, for random ids and tokens"
    )
    clock_tolerance_s: float = _setting(
        5.0, "largest |mirror - primary| of two servers' clocks for the same request, in seconds"
    )
    sample: int = _setting(5000, "rows per pattern given to the value tests (a fixed sample)")

    def lines(self) -> list[str]:
        """``name = value: what it decides``, one line per threshold."""
        return [f"{f.name} = {getattr(self, f.name):g}: {f.metadata['help']}" for f in fields(self)]


DEFAULT = Thresholds()
