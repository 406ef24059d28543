"""Low-volume endpoints borrow the verdict of the others, by part, pattern and kind: noise on
every other endpoint is noise on the small one (its rows still pass the donor's check); real
anywhere, seen nowhere else, or rarer than a volatile field is left insufficient."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from noisecases import Run, rows

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
FEED, ADMIN = "GET /api/feed/{id}", "GET /api/admin/{id}"


def clock(i: int, rng: random.Random) -> str:
    return (T0 + timedelta(milliseconds=i * 5 + rng.uniform(0, 3))).isoformat()


def run_with_feed(n: int = 1000) -> tuple[Run, list[str], list[str], random.Random]:
    """A big endpoint whose timestamps and random numbers differ in every pair, and a small one
    of 6 pairs; the small one's rows are for the caller to add."""
    run = Run()
    feed = run.endpoint(FEED, n)
    admin = run.endpoint(ADMIN, 6)
    rng = random.Random(4)
    run.diffs += rows(
        FEED, "$.served_at", [(clock(i, rng), clock(i, rng)) for i in range(n)], ids=feed
    )
    run.diffs += rows(FEED, "$.sample", [(rng.random(), rng.random()) for _ in feed], ids=feed)
    return run, feed, admin, rng


def test_a_field_noise_on_every_other_endpoint_is_noise_on_a_small_one() -> None:
    run, _, admin, rng = run_with_feed()
    run.diffs += rows(
        ADMIN, "$.served_at", [(clock(i, rng), clock(i, rng)) for i in range(6)], ids=admin
    )
    run.diffs += rows(ADMIN, "$.sample", [(rng.random(), rng.random()) for _ in admin], ids=admin)
    found, judged = run.judge()
    for pattern, label in (("$.served_at", "timestamps"), ("$.sample", "random numbers")):
        verdict = found[(ADMIN, pattern)]
        assert verdict.verdict == "noise", verdict.evidence
        assert (
            f"pooled: noise on every other endpoint where it was judged ({FEED})"
            in verdict.evidence
        )
        assert judged.reasons(pattern) == {
            f"volatile: noise on 1 other endpoint ({label})",
            f"volatile: {label}",
        }


def test_a_small_endpoint_s_value_that_breaks_the_donor_s_shape_stays_real() -> None:
    run, _, admin, rng = run_with_feed()
    values = [(clock(i, rng), clock(i, rng)) for i in range(5)] + [(clock(5, rng), "soon")]
    run.diffs += rows(ADMIN, "$.served_at", values, ids=admin)
    found, judged = run.judge()
    assert found[(ADMIN, "$.served_at")].verdict == "noise"
    flags = judged.noise("$.served_at")
    assert [flags[r] for r in admin] == [True] * 5 + [False]


def test_what_is_real_elsewhere_or_nowhere_else_is_not_pooled() -> None:
    run, feed, admin, rng = run_with_feed()
    moved = feed[3::10]
    run.diffs += rows(FEED, "$.region", [("eu-west-1", "eu-central-1")] * len(moved), ids=moved)
    geo = run.endpoint("GET /api/geo/{id}", 500)  # there, a random pick among ten regions
    regions = [f"eu-{k}" for k in range(10)]
    picks = [(rng.choice(regions), rng.choice(regions)) for _ in geo]
    differ = [(name, pick) for name, pick in zip(geo, picks, strict=True) if pick[0] != pick[1]]
    run.diffs += rows(
        "GET /api/geo/{id}", "$.region", [p for _, p in differ], ids=[n for n, _ in differ]
    )
    run.diffs += rows(ADMIN, "$.region", [("eu-west-1", "eu-central-1")] * 6, ids=admin)
    run.diffs += rows(ADMIN, "$.format", [("csv", "tsv")] * 2, ids=admin[:2])  # 2 of 6
    found, judged = run.judge()
    assert found[("GET /api/geo/{id}", "$.region")].verdict == "noise"
    region = found[(ADMIN, "$.region")]
    assert region.verdict == "insufficient data"
    assert f"not pooled: noise on GET /api/geo/{{id}}, but real on {FEED}" in region.evidence
    assert found[(ADMIN, "$.format")].verdict == "insufficient data"
    assert set(judged.noise("$.format").values()) == {False}


def test_a_random_field_that_differs_rarely_on_the_small_endpoint_is_not_pooled() -> None:
    run, _, admin, rng = run_with_feed()
    run.diffs += rows(ADMIN, "$.sample", [(1.0, 2.0)] * 2, ids=admin[:2])  # 2 of 6 pairs
    found, _ = run.judge()
    verdict = found[(ADMIN, "$.sample")]
    assert verdict.verdict == "insufficient data"
    assert "not pooled" in verdict.evidence and "here in 33%" in verdict.evidence


def test_a_big_endpoint_s_rare_difference_is_never_pooled() -> None:
    # 1% of a big endpoint's pairs: too few to judge, and never called noise by other endpoints.
    run, feed, _, rng = run_with_feed()
    other = run.endpoint("GET /api/other/{id}", 1000)
    run.diffs += rows(
        "GET /api/other/{id}",
        "$.sample",
        [(rng.random(), rng.random()) for _ in other[:10]],
        ids=other[:10],
    )
    found, _ = run.judge()
    assert found[("GET /api/other/{id}", "$.sample")].verdict == "insufficient data"


def test_with_a_secondary_what_the_small_sample_rule_leaves_open_is_pooled() -> None:
    run = Run()
    feed = run.endpoint(FEED, 500, secondary=500)
    admin = run.endpoint(ADMIN, 6, secondary=6)
    rng = random.Random(8)
    values = [(rng.random(), rng.random()) for _ in feed]
    run.diffs += rows(FEED, "$.sample", values, ids=feed)
    run.secondary_diffs += rows(FEED, "$.sample", values, ids=feed)
    run.diffs += rows(ADMIN, "$.sample", [(0.1, 0.2)] * 6, ids=admin)  # 6 of 6
    run.secondary_diffs += rows(ADMIN, "$.sample", [(0.1, 0.3)] * 5, ids=admin[:5])  # 5 of 6
    found, _ = run.judge()
    verdict = found[(ADMIN, "$.sample")]
    assert verdict.verdict == "noise"
    assert "more often on the mirror than on the secondary, too few requests" in verdict.evidence
    assert "pooled: noise on every other endpoint" in verdict.evidence
