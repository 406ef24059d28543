"""Noise against a secondary: the counts decide with a Fisher test and Diffy's thresholds, the
values catch what counts cannot see, and thin data says ``insufficient data``."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from noisecases import MISSING, Run, rows

from shadowdiff.noise.baseline import fisher, smallest_testable
from shadowdiff.noise.thresholds import DEFAULT

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
API = "GET /api/items/{id}"


def run_with(
    n: int,
    mirror: dict[str, list[tuple[object, object]]],
    secondary: dict[str, list[tuple[object, object]]],
    answered: int | None = None,
) -> tuple[Run, list[str]]:
    """``n`` requests; per pattern, the first len(values) of them differ with those values."""
    run = Run()
    names = run.endpoint(API, n, secondary=n if answered is None else answered)
    for pattern, values in mirror.items():
        run.diffs += rows(API, pattern, values, ids=names[: len(values)])
    for pattern, values in secondary.items():
        run.secondary_diffs += rows(API, pattern, values, ids=names[: len(values)])
    return run, names


def test_fisher_and_the_smallest_testable_count() -> None:
    assert fisher(0, 0, 100) == 1.0
    assert fisher(7, 0, 1000) < 0.01 < fisher(6, 0, 1000)
    assert smallest_testable(1000, 0.01) == 7
    assert smallest_testable(20, 0.01) == 7  # C(20, 7) / C(40, 7) = 0.004
    assert smallest_testable(3, 0.01) == 4  # never: even 3 of 3 is p = 0.05


def test_a_field_that_differs_as_often_on_the_secondary_is_noise() -> None:
    rng = random.Random(1)
    values = [(rng.random(), rng.random()) for _ in range(500)]
    run, _ = run_with(500, {"$.jitter": values}, {"$.jitter": values[:490]})
    found, judged = run.judge()
    verdict = found[(API, "$.jitter")]
    assert (verdict.raw_count, verdict.baseline_count, verdict.total) == (500, 490, 500)
    # Significant (p < 0.01), but 2% apart: below Diffy's relative threshold, so noise.
    assert verdict.verdict == "noise" and verdict.p_value is not None and verdict.p_value < 0.01
    assert "relative 1%" in verdict.evidence and "values alike" in verdict.evidence
    assert judged.reasons("$.jitter") == {
        "baseline: differs as often between primary and secondary (500 vs 490 of 500)"
    }


def test_a_rare_real_difference_never_seen_on_the_secondary_is_real() -> None:
    run, _ = run_with(1500, {"$.limit": [(20, 25)] * 15}, {})
    found, judged = run.judge()
    verdict = found[(API, "$.limit")]
    assert verdict.verdict == "real" and verdict.p_value is not None and verdict.p_value < 1e-4
    assert set(judged.noise("$.limit").values()) == {False}


@pytest.mark.parametrize(
    ("raw", "base", "said"),
    [
        (3, 0, "a verdict needs ≥ 7"),  # seen too rarely for any test
        (1, 0, "a verdict needs ≥ 7"),  # seen once
        (7, 1, "not significantly"),  # more often on the mirror, but p = 0.035
    ],
)
def test_thin_evidence_is_insufficient_data_and_stays_real(raw: int, base: int, said: str) -> None:
    run, _ = run_with(1000, {"$.flag": [(False, True)] * raw}, {"$.flag": [(False, True)] * base})
    found, judged = run.judge()
    verdict = found[(API, "$.flag")]
    assert verdict.verdict == "insufficient data" and said in verdict.evidence
    assert set(judged.noise("$.flag").values()) == {False}


def test_a_secondary_with_far_fewer_records_gives_insufficient_data() -> None:
    rng = random.Random(2)
    values = [(rng.random(), rng.random()) for _ in range(1000)]
    run, _ = run_with(1000, {"$.jitter": values}, {"$.jitter": values[:12]}, answered=12)
    found, _ = run.judge()
    verdict = found[(API, "$.jitter")]
    assert verdict.verdict == "insufficient data" and verdict.total == 12
    assert "≥ 20 (min_pairs)" in verdict.evidence
    assert "the secondary answered only 12 of the 1000 requests" in verdict.evidence


def test_a_shifted_distribution_is_real_though_it_differs_as_often() -> None:
    rng = random.Random(3)
    primary = [rng.gauss(100, 15) for _ in range(600)]
    mirror = [(p, rng.gauss(115, 15)) for p in primary]
    secondary = [(p, rng.gauss(100, 15)) for p in primary]
    run, _ = run_with(600, {"$.score": mirror}, {"$.score": secondary})
    found, judged = run.judge()
    verdict = found[(API, "$.score")]
    assert verdict.verdict == "real" and "not the secondary's" in verdict.evidence
    assert set(judged.noise("$.score").values()) == {False}


def test_a_clock_that_crosses_seconds_more_often_on_the_mirror_is_noise() -> None:
    # One-second HTTP dates; the mirror's clock is 300 ms ahead, the secondary's 100 ms.
    def at(i: int, skew: float) -> str:
        return format_datetime(T0 + timedelta(milliseconds=i * 37, seconds=skew), usegmt=True)

    n = 1000
    mirror = [(at(i, 0), at(i, 0.3)) for i in range(n) if at(i, 0) != at(i, 0.3)]
    secondary = [(at(i, 0), at(i, 0.1)) for i in range(n) if at(i, 0) != at(i, 0.1)]
    run = Run()
    names = run.endpoint(API, n, secondary=n)
    differ_m = [names[i] for i in range(n) if at(i, 0) != at(i, 0.3)]
    differ_s = [names[i] for i in range(n) if at(i, 0) != at(i, 0.1)]
    run.diffs += rows(API, "$.generated", mirror, ids=differ_m)
    run.secondary_diffs += rows(API, "$.generated", secondary, ids=differ_s)
    found, judged = run.judge()
    verdict = found[(API, "$.generated")]
    assert verdict.raw_count > 2 * (verdict.baseline_count or 0)  # the counts alone say real
    assert verdict.verdict == "noise" and "clock reading" in verdict.evidence
    assert judged.reasons("$.generated") == {"baseline: timestamps of two clocks (±5 s)"}


def test_a_header_added_only_on_the_mirror_is_real() -> None:
    run, _ = run_with(400, {"x-api-version": [(MISSING, "2")] * 400}, {})
    run.diffs = [{**r, "part": "header", "kind": "added"} for r in run.diffs]
    found, _ = run.judge()
    assert found[(API, "x-api-version")].verdict == "real"


def test_a_pattern_seen_only_on_the_secondary_is_listed_as_noise() -> None:
    rng = random.Random(4)
    values = [(rng.random(), rng.random()) for _ in range(300)]
    run, _ = run_with(300, {}, {"$.jitter": values})
    found, _ = run.judge()
    verdict = found[(API, "$.jitter")]
    assert (verdict.raw_count, verdict.baseline_count, verdict.verdict) == (0, 300, "noise")


def test_thresholds_can_be_tightened() -> None:
    run, _ = run_with(1000, {"$.limit": [(20, 25)] * 8}, {})
    found, _ = run.judge()
    assert found[(API, "$.limit")].verdict == "real"
    found, _ = run.judge(DEFAULT.__class__(alpha=0.001))
    assert found[(API, "$.limit")].verdict == "insufficient data"


# --- low-volume endpoints: the exact small-sample rule ---------------------------------------


def small_run(n: int, mirror: int, secondary: int, pattern: str = "$.x") -> Run:
    """An endpoint of ``n`` requests (all answered by the secondary) whose pattern differs in
    the first ``mirror`` primary/mirror and ``secondary`` primary/secondary pairs."""
    run = Run()
    names = run.endpoint(API, n, secondary=n)
    run.diffs += rows(API, pattern, [("a", "b")] * mirror, ids=names[:mirror])
    run.secondary_diffs += rows(API, pattern, [("a", "c")] * secondary, ids=names[:secondary])
    return run


@pytest.mark.parametrize(
    ("n", "mirror", "secondary", "verdict", "said"),
    [
        (6, 6, 6, "noise", "no more often on the mirror than on the secondary"),
        (1, 1, 1, "noise", "no more often on the mirror"),  # the health check, once
        (7, 2, 3, "noise", "no more often on the mirror"),
        (7, 2, 0, "real", "on the mirror, and never between primary and secondary"),
        (7, 3, 1, "insufficient data", "more often on the mirror than on the secondary, too few"),
    ],
)
def test_a_low_volume_endpoint_gets_the_exact_small_sample_rule(
    n: int, mirror: int, secondary: int, verdict: str, said: str
) -> None:
    found, judged = small_run(n, mirror, secondary).judge()
    got = found[(API, "$.x")]
    assert got.verdict == verdict and said in got.evidence, got.evidence
    assert f"of the same {n} requests (a low-volume endpoint" in got.evidence
    assert set(judged.noise("$.x").values()) == {verdict == "noise"}


def test_too_few_differences_to_test_but_no_more_on_the_mirror_are_noise() -> None:
    run, _ = run_with(1000, {"$.flag": [(False, True)] * 2}, {"$.flag": [(False, True)] * 3})
    found, _ = run.judge()
    verdict = found[(API, "$.flag")]
    assert verdict.verdict == "noise" and "too few differing pairs for a test" in verdict.evidence


def float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def test_floats_that_only_the_mirror_rounds_through_float32_are_noise() -> None:
    # The counts say real (the secondary never differs); the values are the primary's, nearly.
    primary = [0.25 + i * 0.0137 for i in range(500)]
    jittered = [(p, float32(p)) for p in primary if float32(p) != p]
    run, _ = run_with(500, {"$.weight": jittered}, {})
    found, judged = run.judge()
    verdict = found[(API, "$.weight")]
    assert verdict.verdict == "noise", verdict.evidence
    assert "but every value is the primary's, nearly" in verdict.evidence
    assert judged.reasons("$.weight") == {"baseline: numbers within a relative 1e-06"}


def test_a_number_off_by_one_only_on_the_mirror_stays_real() -> None:
    run, _ = run_with(500, {"$.sequence": [(5_000_000 + i, 5_000_001 + i) for i in range(500)]}, {})
    found, _ = run.judge()
    assert found[(API, "$.sequence")].verdict == "real"
