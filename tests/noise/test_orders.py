"""Arrays that differ only in order: a set the primary itself returns in varying orders, or
whose permutations are varied, is noise; a consistent reorder, or an array whose primary order
is stable, is real."""

from __future__ import annotations

import random
from typing import Any

from noisecases import Run, rows, sample_of

from shadowdiff.noise import orders
from shadowdiff.noise.thresholds import DEFAULT
from shadowdiff.noise.values import Finding

N = 200
LABELS = ["paid", "eu", "priority", "b2b", "net30"]
STEPS = ["open", "triage", "fix", "verify", "close"]
API = "GET /api/invoices/{id}"


def shuffled(items: list[Any], rng: random.Random) -> list[Any]:
    """Another order than ``items``' (an ``order`` row always has one)."""
    while True:
        found = rng.sample(items, len(items))
        if found != items:
            return found


def judged(make: Any, n: int = N) -> Finding:
    rng = random.Random(3)
    return orders.judge(sample_of([make(i, rng) for i in range(n)]), DEFAULT)


def unique(i: int) -> list[str]:
    """Four elements no other array holds: nothing recurs to compare the primary with."""
    return [f"{i}-{k}" for k in "abcd"]


def test_a_set_the_primary_itself_shuffles_is_noise_however_rarely_it_differs() -> None:
    def labels(i: int, rng: random.Random) -> tuple[list[str], list[str]]:
        primary = rng.sample(LABELS[: 3 + i % 3], 3 + i % 3)
        return primary, shuffled(primary, rng)

    finding = judged(labels)
    assert finding.opinion == "same" and finding.row_wise
    assert "the primary itself returns these elements in varying orders" in finding.evidence


def test_an_order_the_primary_keeps_is_real_when_the_mirror_shuffles_it() -> None:
    finding = judged(lambda i, rng: (STEPS, shuffled(STEPS, rng)))
    assert finding.opinion == "different" and "the primary keeps one order" in finding.evidence


def test_one_consistent_permutation_is_real() -> None:
    finding = judged(lambda i, rng: (unique(i), unique(i)[::-1]))
    assert finding.opinion == "different"
    assert "one permutation" in finding.evidence and "(reversed)" in finding.evidence


def test_a_mirror_that_sorts_by_another_field_is_real() -> None:
    def items(i: int, rng: random.Random) -> tuple[list[Any], list[Any]]:
        primary = [{"sku": f"{i}-{k}", "name": rng.random()} for k in range(5)]
        return primary, sorted(primary, key=lambda x: x["name"])

    finding = judged(items)
    assert finding.opinion == "different"
    assert "the primary's arrays are sorted by field 'sku', ascending" in finding.evidence
    assert "the mirror's by field 'name', ascending (in 100%)" in finding.evidence


def test_a_mirror_that_stops_sorting_is_real() -> None:
    def scores(i: int, rng: random.Random) -> tuple[list[float], list[float]]:
        primary = sorted((rng.random() for _ in range(5)), reverse=True)
        return primary, shuffled(primary, rng)

    finding = judged(scores)
    assert finding.opinion == "different"
    assert "sorted by the values, descending (in 100%), the mirror's by no key" in finding.evidence


def test_varied_permutations_of_arrays_that_never_recur_are_a_random_order() -> None:
    def random_order(i: int, rng: random.Random) -> tuple[list[str], list[str]]:
        primary = rng.sample(unique(i), 4)
        return primary, shuffled(primary, rng)

    finding = judged(random_order)
    assert finding.opinion == "same" and not finding.row_wise  # the rate still has to hold
    assert "a set returned in random order" in finding.evidence


def test_in_a_run_random_order_is_noise_and_a_rare_reorder_is_real() -> None:
    run = Run()
    names = run.endpoint(API, 500)
    rng = random.Random(5)
    labels = [rng.sample(LABELS, 4) for _ in names]
    run.diffs += rows(
        API, "$.labels", [(p, shuffled(p, rng)) for p in labels], ids=names, kind="order"
    )
    reversed_ = names[:50]  # 10%: v2 reverses arrays the primary keeps in one order
    run.diffs += rows(
        API, "$.approvers", [(STEPS, STEPS[::-1])] * len(reversed_), ids=reversed_, kind="order"
    )
    random_rare = names[100:150]  # 10%: a random order of arrays that never recur
    run.diffs += rows(
        API,
        "$.lines",
        [(unique(i), shuffled(unique(i), rng)) for i in range(len(random_rare))],
        ids=random_rare,
        kind="order",
    )
    found, judged_rows = run.judge()
    assert found[(API, "$.labels")].verdict == "noise"
    assert judged_rows.reasons("$.labels") == {"volatile: sets in random order"}
    assert found[(API, "$.approvers")].verdict == "real"
    lines = found[(API, "$.lines")]
    assert lines.verdict == "real" and "volatile_rate" in lines.evidence
