"""The value comparison: random values of one population are ``same``; a constant new value, a
transform, a shift, a new shape or format are ``different``; what cannot be tested is
``unknown``."""

from __future__ import annotations

import random
import struct
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from noisecases import sample_of

from shadowdiff.noise.thresholds import DEFAULT
from shadowdiff.noise.values import Finding, clock, compare, row_wise

N = 400
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def pairs(make: Any, n: int = N, seed: int = 1) -> list[tuple[Any, Any]]:
    rng = random.Random(seed)
    return [make(i, rng) for i in range(n)]


def judged(
    values: list[tuple[Any, Any]], secondary: list[tuple[Any, Any]] | None = None
) -> Finding:
    return compare(sample_of(values), None if secondary is None else sample_of(secondary), DEFAULT)


def at(i: int, rng: random.Random, skew_s: float = 0.0) -> datetime:
    return T0 + timedelta(milliseconds=i * 7 + rng.uniform(0, 3), seconds=skew_s)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


# --- timestamps --------------------------------------------------------------------------------


def test_two_clocks_reading_iso_timestamps_are_the_same_population() -> None:
    finding = judged(pairs(lambda i, r: (iso(at(i, r)), iso(at(i, r)))))
    assert finding.opinion == "same" and finding.clock and finding.label == "timestamps"
    assert finding.check is not None and finding.check.kind == "time"
    assert "±5 s" in finding.evidence


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda m: m + timedelta(hours=1), "apart"),  # a time zone bug
        (lambda m: m.replace(tzinfo=None), "format differs"),  # the offset dropped
    ],
)
def test_a_shifted_or_reformatted_timestamp_is_different(change: Any, said: str) -> None:
    finding = judged(pairs(lambda i, r: (iso(at(i, r)), iso(change(at(i, r))))))
    assert finding.opinion == "different" and said in finding.evidence


def test_z_for_plus_zero_is_a_format_change() -> None:
    finding = judged(pairs(lambda i, r: (iso(at(i, r)), iso(at(i, r)).replace("+00:00", "Z"))))
    assert finding.opinion == "different" and "format" in finding.evidence


def test_http_dates_and_epoch_milliseconds_are_clocks() -> None:
    http = judged(
        pairs(
            lambda i, r: (
                format_datetime(at(i, r), usegmt=True),
                format_datetime(at(i, r, 1), usegmt=True),
            )
        )
    )
    assert http.opinion == "same" and http.clock
    epoch = judged(
        pairs(
            lambda i, r: (int(at(i, r).timestamp() * 1000), int(at(i, r, 0.3).timestamp() * 1000))
        )
    )
    assert epoch.opinion == "same" and epoch.label == "epoch timestamps"
    assert epoch.check is not None and epoch.check.unit_s == 1e-3


def test_epoch_seconds_an_hour_apart_are_different() -> None:
    finding = judged(
        pairs(lambda i, r: (int(at(i, r).timestamp()), int(at(i, r).timestamp()) + 3600))
    )
    assert finding.opinion == "different" and "shift" in finding.evidence


def test_clock_is_none_for_values_that_are_not_timestamps() -> None:
    assert clock(sample_of(pairs(lambda i, r: (r.random(), r.random()))), DEFAULT) is None
    assert clock(sample_of(pairs(lambda i, r: (iso(at(i, r)), iso(at(i, r))))), DEFAULT) is not None


# --- ids and tokens --------------------------------------------------------------------------


def uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hex16(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


def token(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(rng.choice(alphabet) for _ in range(22))


@pytest.mark.parametrize(
    ("make", "label"),
    [(uuid4, "uuids"), (hex16, "random hex"), (token, "random tokens")],
)
def test_random_ids_of_one_shape_are_the_same_population(make: Any, label: str) -> None:
    finding = judged(pairs(lambda i, r: (make(r), make(r))))
    assert finding.opinion == "same" and finding.label == label
    assert finding.check is not None and finding.check.kind == "regex"


def test_short_hex_that_is_sometimes_all_digits_keeps_its_shape() -> None:
    # 8 hex digits are all decimal digits in 2% of values: still the same shape.
    finding = judged(pairs(lambda i, r: (f"{r.getrandbits(32):08x}", f"{r.getrandbits(32):08x}")))
    assert finding.opinion == "same" and finding.label == "random hex"


@pytest.mark.parametrize(
    ("primary", "mirror", "said"),
    [
        (uuid4, lambda r: uuid4(r).upper(), "are not"),  # another shape
        (hex16, lambda r: hex16(r) + hex16(r), "are not"),  # longer
        (hex16, lambda r: "0000000000000000", "repeat"),  # constant
    ],
    ids=["uppercase", "longer", "constant"],
)
def test_a_new_shape_or_a_repeating_id_is_different(primary: Any, mirror: Any, said: str) -> None:
    finding = judged(pairs(lambda i, r: (primary(r), mirror(r))))
    assert finding.opinion == "different" and said in finding.evidence, finding.evidence


# --- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda i, r: (r.randint(0, 10**6), r.randint(0, 10**6)),
        lambda i, r: (round(r.random(), 6), round(r.random(), 6)),
        lambda i, r: (int(r.lognormvariate(3, 0.5)), int(r.lognormvariate(3, 0.5))),
        lambda i, r: (r.randint(0, 9), r.randint(0, 9)),  # few values, many ties
    ],
    ids=["ints", "floats", "lognormal", "digits"],
)
def test_random_numbers_of_one_distribution_are_the_same_population(make: Any) -> None:
    values = [(a, b) for a, b in pairs(make) if a != b]  # diffs hold differing values only
    finding = judged(values)
    assert finding.opinion == "same", finding.evidence
    assert finding.p_value is not None and finding.p_value >= DEFAULT.value_alpha


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda i, r: (r.gauss(100, 15), r.gauss(115, 15)), "KS"),  # shifted
        (lambda i, r: (r.gauss(100, 15), r.gauss(100, 40)), "KS"),  # wider
        (lambda i, r: ((c := r.randint(100, 10**5)), c / 100), "KS"),  # units
        (lambda i, r: ((c := r.randint(0, 10**6)), c + 1), "sign"),  # off by one
        (lambda i, r: ((c := round(r.uniform(1, 1000), 2)), float(round(c))), "Spearman"),
        (lambda i, r: (r.randint(0, 10**6), 42), "one value"),  # a constant
    ],
    ids=["shift", "spread", "units", "plus-one", "rounded", "constant"],
)
def test_a_shift_a_transform_or_a_constant_is_different(make: Any, said: str) -> None:
    finding = judged(pairs(make))
    assert finding.opinion == "different" and said in finding.evidence, finding.evidence


def test_numbers_in_header_strings_are_numbers() -> None:
    finding = judged(pairs(lambda i, r: (str(r.randint(0, 500)), str(r.randint(0, 500)))))
    assert finding.label == "random numbers in strings" and finding.opinion == "same"


# --- few distinct values --------------------------------------------------------------------------


def test_a_random_choice_among_few_values_is_the_same_population() -> None:
    shards = ["a", "b", "c", "d", "e"]
    values = [(a, b) for a, b in pairs(lambda i, r: (r.choice(shards), r.choice(shards))) if a != b]
    assert judged(values).opinion == "same"


def test_a_constant_new_value_is_different() -> None:
    finding = judged([("open", "active")] * N)
    assert finding.opinion == "different" and "chi-square" in finding.evidence


def test_a_deterministic_mapping_is_different_even_with_the_same_counts() -> None:
    # a ↔ b swapped: both sides hold as many a as b, but the mirror is a function of the primary.
    finding = judged(pairs(lambda i, r: ("a", "b") if i % 2 else ("b", "a")))
    assert finding.opinion == "different" and "function of the primary" in finding.evidence


def test_booleans_are_told_apart_only_with_a_secondary() -> None:
    flipped = pairs(lambda i, r: (i % 2 == 0, i % 2 == 1))
    assert judged(flipped).opinion == "unknown"  # real without a secondary
    random_flags = pairs(lambda i, r: (i % 2 == 0, r.random() < 0.5))
    assert judged(flipped, random_flags).opinion == "same"
    assert judged(flipped, [(True, True)] * N).opinion == "different"


def test_free_text_cannot_be_judged() -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    finding = judged(
        pairs(lambda i, r: (" ".join(r.sample(words, 3)), " ".join(r.sample(words, 3))))
    )
    assert finding.opinion == "unknown" and "free text" in finding.evidence


def test_arrays_and_mixed_types_cannot_be_judged() -> None:
    assert judged([([1], [2])] * 50).opinion == "unknown"
    assert judged([(1, "a"), ("a", 1)] * 50).opinion == "unknown"


# --- against a secondary ---------------------------------------------------------------------


def test_with_a_secondary_the_mirror_is_compared_with_the_secondary() -> None:
    primary = [random.Random(5).gauss(100, 15) for _ in range(N)]
    rng = random.Random(6)
    secondary = [(p, rng.gauss(100, 15)) for p in primary]
    same = [(p, rng.gauss(100, 15)) for p in primary]
    shifted = [(p, rng.gauss(115, 15)) for p in primary]
    assert judged(same, secondary).opinion == "same"
    finding = judged(shifted, secondary)
    assert finding.opinion == "different" and "sign" in finding.evidence  # paired by request


def test_an_empty_sample_is_unknown() -> None:
    assert judged([]).opinion == "unknown"


# --- numbers that track the primary ----------------------------------------------------------


def float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def weights(i: int, rng: random.Random) -> tuple[float, float]:
    """A weight that goes through float32 on one side: a relative error of ~1e-8, either way."""
    weight = 0.25 + i * 0.0137
    return (weight, float32(weight)) if rng.random() < 0.5 else (float32(weight), weight)


def test_numbers_within_a_tiny_relative_error_of_the_primary_are_float_noise() -> None:
    values = [(a, b) for a, b in pairs(weights) if a != b]
    finding = judged(values)
    assert finding.opinion == "same" and finding.row_wise, finding.evidence
    assert finding.check is not None and finding.check.kind == "relative"
    assert finding.check.tolerance_s == DEFAULT.track_relative
    assert "track the primary's within a relative" in finding.evidence
    assert row_wise(sample_of(values), DEFAULT) == finding


def test_float_noise_on_a_value_the_primary_repeats_is_still_noise() -> None:
    # The same ten products, requested again and again: stable on the primary, but the float32
    # round trip still varies between responses.
    values = [(a, b) for a, b in pairs(lambda i, r: weights(i % 10, r), n=N) if a != b]
    targets = [f"GET /products/{i % 10}" for i in range(len(values))]
    assert compare(sample_of(values, targets=targets), None, DEFAULT).opinion == "same"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda i, r: ((c := 5_000_000.5 + 13 * i), c + 1), "primary + 1 in every pair"),
        (lambda i, r: ((c := 1 + i * 0.37), c * (1 + 1e-7)), "primary × 1.0000001"),
        (lambda i, r: ((c := 1 + i * 0.37), c * (1 + r.uniform(1e-8, 5e-8))), "a bias"),
    ],
    ids=["off-by-one", "factor", "bias"],
)
def test_a_tiny_but_systematic_change_is_different(make: Any, said: str) -> None:
    finding = judged(pairs(make))
    assert finding.opinion == "different" and said in finding.evidence, finding.evidence


def test_integers_that_differ_a_little_are_no_float_noise() -> None:
    # A balance in cents, off by a cent either way: integers carry no representation noise.
    finding = judged(pairs(lambda i, r: ((c := 10**8 + 7919 * i), c + r.choice((-1, 1)))))
    assert finding.opinion == "different" and "track" not in finding.evidence
    integers = pairs(lambda i, r: ((c := 10**8 + 7919 * i), c + r.choice((-1, 1))))
    assert row_wise(sample_of(integers), DEFAULT) is None


def test_numbers_further_apart_than_track_relative_are_tested_as_populations() -> None:
    finding = judged(pairs(lambda i, r: ((c := 1 + i * 0.37), c * (1 + r.uniform(-1e-3, 1e-3)))))
    assert finding.opinion == "different" and "Spearman" in finding.evidence
    assert row_wise(sample_of(pairs(lambda i, r: (i, i + 0.5))), DEFAULT) is None
