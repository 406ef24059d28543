"""The numbers that decide a noise verdict: one definition, used by the detectors, set by the
``[noise]`` section of a pipeline or rules file, printed by ``shadowdiff noise`` and quoted in the
evidence of ``insufficient data`` verdicts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from shadowdiff.errors import ConfigError
from shadowdiff.settings import check_keys

# What values a threshold may take: a probability or share in (0, 1) or (0, 1], a count of at
# least 1, or a positive number.
Range = Literal["probability", "share", "count", "positive"]
_RANGES: dict[str, tuple[str, Any]] = {
    "probability": ("a number between 0 and 1 (both excluded)", lambda v: 0 < v < 1),
    "share": ("a number above 0 and at most 1", lambda v: 0 < v <= 1),
    "count": ("a whole number of at least 1", lambda v: v >= 1),
    "positive": ("a number above 0", lambda v: v > 0),
}


def _setting(default: float, help: str, range: Range) -> Any:  # noqa: A002 - the words are the point
    """A dataclass field that carries its help text (printed by ``shadowdiff noise``) and the
    values it may take (checked when a file sets it)."""
    return field(default=default, metadata={"help": help, "range": range})


@dataclass(frozen=True)
class Thresholds:
    """Every threshold of the noise stage, with its default and what it decides."""

    alpha: float = _setting(
        0.01,
        "significance level of the one-sided Fisher exact test: does the pattern differ more "
        "often between primary and mirror than between primary and secondary?",
        "probability",
    )
    relative: float = _setting(
        0.20,
        "Diffy's relative threshold: real needs |raw - baseline| / (raw + baseline) above it",
        "share",
    )
    absolute: float = _setting(
        0.0003, "Diffy's absolute threshold: real needs |raw - baseline| / total above it", "share"
    )
    min_pairs: int = _setting(
        20,
        "pairs an endpoint needs (with a secondary: requests answered by all three sides) "
        "before its patterns are judged on their own; below it, a low-volume endpoint's "
        "patterns get the exact small-sample rule (with a secondary) or the verdict of the "
        "other endpoints",
        "count",
    )
    min_rows: int = _setting(
        30, "pairs a pattern must differ in before its values are judged (volatile or not)", "count"
    )
    volatile_rate: float = _setting(
        0.8,
        "without a secondary: share of the endpoint's pairs (of the same primary statuses) a "
        "volatile field differs in (timestamps excepted)",
        "share",
    )
    value_alpha: float = _setting(
        1e-4,
        "significance level of the value tests (KS, sign, Spearman, chi-square), split "
        "between the tests run on a pattern; small because a volatile field wrongly called real "
        "turns every pair of its endpoint diverged",
        "probability",
    )
    conform: float = _setting(
        0.95,
        "share of the pairs whose values must keep the reference's shape (timestamp format and "
        "clock, id/token shape) for a pattern to be noise; the pairs that break it stay real",
        "share",
    )
    distinct: float = _setting(
        0.9, "distinct values / values, on each side, for random ids and tokens", "share"
    )
    track_relative: float = _setting(
        1e-6,
        "largest relative error |mirror - primary| / larger magnitude of numbers that track "
        "the primary (floating-point noise wider than [tolerance] float_relative): a pattern "
        "within it in ≥ conform of pairs, in both directions and not by one constant shift or "
        "factor, is noise; its pairs outside it stay real",
        "probability",
    )
    clock_tolerance_s: float = _setting(
        5.0,
        "largest |mirror - primary| of two servers' clocks for the same request, in seconds",
        "positive",
    )
    sample: int = _setting(
        5000, "rows per pattern given to the value tests (a fixed sample)", "count"
    )

    def lines(self) -> list[str]:
        """``name = value: what it decides``, one line per threshold."""
        return [
            f"{f.name} = {_shown(getattr(self, f.name))}: {f.metadata['help']}"
            for f in fields(self)
        ]

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str) -> Thresholds:
        """The defaults with the ``[noise]`` settings of ``origin`` applied. Raises
        ``ConfigError`` naming the setting for an unknown name or a value out of range."""
        known = {f.name: f for f in fields(cls)}
        check_keys(data, list(known), "[noise]", origin)
        changes: dict[str, Any] = {}
        for name, value in data.items():
            setting = known[name]
            what, allowed = _RANGES[setting.metadata["range"]]
            whole = setting.metadata["range"] == "count"
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or (whole and not float(value).is_integer()) or not allowed(value):
                raise ConfigError(
                    f"{origin}: [noise] {name} = {value!r}: must be {what} "
                    f"(default {setting.default:g}: {setting.metadata['help']})."
                )
            changes[name] = int(value) if whole else float(value)
        return replace(cls(), **changes)


def _shown(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


DEFAULT = Thresholds()
