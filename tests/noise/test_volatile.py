"""Noise without a secondary: volatile patterns are noise, everything systematic is real, and
what is too rare to judge says so (and stays real)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from noisecases import MISSING, Run, rows

from shadowdiff.noise.thresholds import DEFAULT

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
FEED = "GET /api/feed/{id}"


def clock(i: int, rng: random.Random) -> str:
    return (T0 + timedelta(milliseconds=i * 5 + rng.uniform(0, 3))).isoformat()


def uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def feed(n: int = 1000, seed: int = 3) -> tuple[Run, list[str], random.Random]:
    """An endpoint whose every pair differs in a timestamp and a UUID."""
    run = Run()
    names = run.endpoint(FEED, n)
    rng = random.Random(seed)
    run.diffs += rows(
        FEED, "$.served_at", [(clock(i, rng), clock(i, rng)) for i in range(n)], ids=names
    )
    run.diffs += rows(FEED, "$.uuid", [(uuid4(rng), uuid4(rng)) for _ in range(n)], ids=names)
    return run, names, rng


def test_timestamps_and_uuids_in_every_pair_are_volatile() -> None:
    run, names, _ = feed()
    found, judged = run.judge()
    assert found[(FEED, "$.served_at")].verdict == "noise"
    assert found[(FEED, "$.uuid")].verdict == "noise"
    assert found[(FEED, "$.uuid")].baseline_count is None  # no secondary
    assert set(judged.noise("$.served_at").values()) == {True}
    assert judged.reasons("$.uuid") == {"volatile: uuids"}


def test_a_real_change_at_one_percent_is_not_called_noise() -> None:
    run, names, _ = feed()
    cut = names[::100]  # 10 of 1000 pairs: the limit changes, a constant new value
    run.diffs += rows(FEED, "$.limit", [(20, 25)] * len(cut), ids=cut)
    found, judged = run.judge()
    verdict = found[(FEED, "$.limit")]
    assert verdict.verdict == "insufficient data"
    assert "≥ 30" in verdict.evidence and "min_rows" in verdict.evidence  # the threshold, printed
    assert set(judged.noise("$.limit").values()) == {False}


def test_a_real_change_at_ten_percent_is_real() -> None:
    run, names, _ = feed()
    moved = names[3::10]
    run.diffs += rows(FEED, "$.region", [("eu-west-1", "eu-central-1")] * len(moved), ids=moved)
    found, _ = run.judge()
    verdict = found[(FEED, "$.region")]
    assert verdict.verdict == "real" and "10%" in verdict.evidence


def test_random_looking_values_that_differ_rarely_are_not_volatile() -> None:
    # A token that the mirror regenerates for 20% of requests: random-looking, but not volatile.
    run, names, rng = feed()
    some = names[:200]
    run.diffs += rows(FEED, "$.session", [(uuid4(rng), uuid4(rng)) for _ in some], ids=some)
    found, _ = run.judge()
    assert found[(FEED, "$.session")].verdict == "real"
    assert "volatile_rate" in found[(FEED, "$.session")].evidence


def test_structural_differences_and_statuses_are_real() -> None:
    run, names, _ = feed()
    run.diffs += rows(FEED, "$.tier", [(MISSING, "gold")] * len(names), ids=names, kind="added")
    run.diffs += rows(FEED, "status", [(200, 500)] * 40, ids=names[:40], part="status")
    found, _ = run.judge()
    assert found[(FEED, "$.tier")].verdict == "real"
    assert "structural" in found[(FEED, "$.tier")].evidence
    assert found[(FEED, "status")].verdict == "real"


def test_an_endpoint_with_a_handful_of_pairs_is_insufficient_data() -> None:
    run = Run()
    endpoint = "GET /api/admin/{id}"
    names = run.endpoint(endpoint, 6)
    rng = random.Random(1)
    run.diffs += rows(
        endpoint, "$.served_at", [(clock(i, rng), clock(i, rng)) for i in range(6)], ids=names
    )
    found, judged = run.judge()
    verdict = found[(endpoint, "$.served_at")]
    assert verdict.verdict == "insufficient data" and "it has 6" in verdict.evidence
    assert set(judged.noise("$.served_at").values()) == {False}


def test_a_clock_with_second_resolution_is_noise_however_rarely_it_differs() -> None:
    run, names, rng = feed()
    # Two servers 50 ms apart: a one-second clock differs in about 5% of pairs, by one second.
    some = names[:60]
    values = [
        ((T0 + timedelta(seconds=i)).isoformat(), (T0 + timedelta(seconds=i + 1)).isoformat())
        for i in range(len(some))
    ]
    run.diffs += rows(FEED, "$.generated", values, ids=some)
    found, _ = run.judge()
    assert found[(FEED, "$.generated")].verdict == "noise"


def test_a_pair_whose_value_breaks_the_shape_stays_real() -> None:
    run, names, rng = feed()
    broken = names[:12]  # the mirror answers an empty id in 1.2% of pairs
    run.diffs = [
        {**row, "mirror_value": '""'}
        if row["pattern"] == "$.uuid" and row["request_id"] in broken
        else row
        for row in run.diffs
    ]
    found, judged = run.judge()
    verdict = found[(FEED, "$.uuid")]
    assert (
        verdict.verdict == "noise" and "12 pairs whose values break that shape" in verdict.evidence
    )
    flags = judged.noise("$.uuid")
    assert {flags[r] for r in broken} == {False}
    assert sum(flags.values()) == len(names) - len(broken)


def test_headers_that_follow_the_body_take_its_verdict_per_pair() -> None:
    run, names, _ = feed()
    moved = names[3::10]
    run.diffs += rows(FEED, "$.region", [("eu-west-1", "eu-central-1")] * len(moved), ids=moved)
    lengths = [(str(100 + i % 7), str(101 + i % 7)) for i in range(len(names))]
    run.diffs += rows(FEED, "content-length", lengths, ids=names, part="header")
    found, judged = run.judge()
    flags = judged.noise("content-length")
    assert {flags[r] for r in moved} == {False}  # the body differs for real
    assert sum(flags.values()) == len(names) - len(moved)
    assert judged.reasons("content-length") == {
        None,
        "volatile: follows the body, which differs only in noise",
    }
    assert found[(FEED, "content-length")].verdict == "real"


def test_rule_rows_stay_as_they_are_and_are_listed() -> None:
    run, names, _ = feed()
    run.diffs += rows(
        FEED, "$.took_ms", [(1, 2)] * 5, ids=names[:5], reason="rule: ignore $.took_ms"
    )
    found, judged = run.judge()
    assert judged.reasons("$.took_ms") == {"rule: ignore $.took_ms"}
    assert found[(FEED, "$.took_ms")].verdict == "noise"
    assert found[(FEED, "$.took_ms")].evidence.startswith("rule: ignore $.took_ms")


def test_the_rate_counts_only_pairs_with_the_pattern_s_statuses() -> None:
    # A field only 200 responses carry: the endpoint's 404s do not dilute its rate.
    run = Run()
    endpoint = "GET /api/users/{id}"
    ok = run.endpoint(endpoint, 300)
    run.endpoint(endpoint + "-404", 0)
    for i in range(300):
        run.pairs.append(
            {
                "request_id": f"missing-{i}",
                "endpoint": endpoint,
                "method": "GET",
                "path": f"/missing/{i}",
                "orphan": None,
                "primary_status": 404,
                "mirror_status": 404,
            }
        )
    rng = random.Random(2)
    run.diffs += rows(
        endpoint,
        "$.trace",
        [(f"{rng.getrandbits(64):016x}", f"{rng.getrandbits(64):016x}") for _ in ok],
        ids=ok,
    )
    found, _ = run.judge()
    verdict = found[(endpoint, "$.trace")]
    assert verdict.total == 300 and verdict.verdict == "noise"


def test_thresholds_are_listed_with_their_meaning() -> None:
    lines = DEFAULT.lines()
    assert any(line.startswith("alpha = 0.01: ") for line in lines)
    assert any(line.startswith("min_rows = 30: ") for line in lines)


def test_a_random_looking_field_stable_on_the_primary_is_real() -> None:
    # Each product's stock level is the same on every primary answer; the mirror answers random
    # numbers of the same distribution: alike as populations, but only one side is volatile.
    run = Run()
    names = run.endpoint(FEED, 300, distinct_paths=100)
    rng = random.Random(9)
    stock = {i: rng.randint(0, 1000) for i in range(100)}
    values = [(stock[i % 100], rng.randint(0, 1000)) for i in range(300)]
    run.diffs += rows(FEED, "$.stock", values, ids=names)
    found, _ = run.judge()
    verdict = found[(FEED, "$.stock")]
    assert verdict.verdict == "real" and "stable on the primary" in verdict.evidence
