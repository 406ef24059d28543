"""Templated text: the same template with per-request slot values is noise; a changed template,
or a slot that changes systematically, is real, pair by pair; the evidence names the slots."""

from __future__ import annotations

import random
import uuid
from typing import Any

from noisecases import Run, rows, sample_of

from shadowdiff.noise.sample import shown_template, with_templates
from shadowdiff.noise.thresholds import DEFAULT
from shadowdiff.noise.values import Finding, compare

N = 400
API = "GET /api/invoices/{id}"


def pairs(make: Any, n: int = N, seed: int = 1) -> list[tuple[Any, Any]]:
    rng = random.Random(seed)
    return [make(i, rng) for i in range(n)]


def judged(
    values: list[tuple[Any, Any]], secondary: list[tuple[Any, Any]] | None = None
) -> Finding:
    return compare(sample_of(values), None if secondary is None else sample_of(secondary), DEFAULT)


def receipt(i: int, rng: random.Random) -> tuple[str, str]:
    return f"receipt {rng.randint(1000, 9999)} issued", f"receipt {rng.randint(1000, 9999)} issued"


def test_slots_and_templates_are_found_alike_in_every_string() -> None:
    sample = with_templates(
        sample_of([("request 6f0c2d3e-1b5a-4c8e-9d7f-0a1b2c3d4e5f took 41 ms at 10:00:01.5", "x")])
    )
    assert sample.p_template == ["request {} took {} ms at {}"]
    assert sample.p_slots == [["6f0c2d3e-1b5a-4c8e-9d7f-0a1b2c3d4e5f", "41", "10:00:01.5"]]
    shown = shown_template(sample.p_template[0], sample.p_slots[0])
    assert shown == "request {uuid} took {n} ms at {time}"
    hex_and_date = with_templates(sample_of([("worker 0a1b2c3d on 2026-11-28T10:00:00Z", "y")]))
    assert hex_and_date.p_template == ["worker {} on {}"]


def test_the_same_template_with_a_random_number_per_request_is_noise() -> None:
    finding = judged(pairs(receipt))
    assert finding.opinion == "same", finding.evidence
    assert finding.check is not None and finding.check.kind == "template"
    assert "'receipt {n} issued' on both sides in 400 of 400 pairs" in finding.evidence
    assert "slot 1 ({n}) varies like noise" in finding.evidence


def test_a_uuid_and_a_duration_in_one_text_are_both_slots() -> None:
    def handled(i: int, rng: random.Random) -> tuple[str, str]:
        def one() -> str:
            return (
                f"request {uuid.UUID(int=rng.getrandbits(128))} handled in {rng.randint(2, 250)} ms"
            )

        return one(), one()

    finding = judged(pairs(handled))
    assert finding.opinion == "same", finding.evidence
    assert "slot 1 ({uuid}) varies like noise" in finding.evidence
    assert "slot 2 ({n}) varies like noise" in finding.evidence


def test_a_changed_template_is_different() -> None:
    finding = judged(
        pairs(
            lambda i, r: (
                f"invoice {r.randint(10, 99_999)} paid",
                f"invoice {r.randint(10, 99)} pending",
            )
        )
    )
    assert finding.opinion == "different"
    assert "the template changes in 400 of 400 pairs" in finding.evidence


def test_a_slot_that_changes_systematically_is_different() -> None:
    finding = judged(
        pairs(lambda i, r: (f"you have {i} open tickets", f"you have {i + 1} open tickets"))
    )
    assert finding.opinion == "different"
    assert "slot 1 ({n}) changes systematically" in finding.evidence


def test_a_random_slot_that_differs_rarely_is_not_volatile_without_a_secondary() -> None:
    # Each request's duration differs in 20% of the pairs only: random-looking, not volatile.
    def handled(i: int, rng: random.Random) -> tuple[str, str]:
        took = rng.randint(2, 250)
        other = rng.randint(2, 250) if i % 5 == 0 else took
        return (
            f"request {rng.getrandbits(64):016x} took {took}",
            f"request {rng.getrandbits(64):016x} took {other}",
        )

    finding = judged(pairs(handled))
    assert finding.opinion == "same"  # the hex id varies in every pair
    assert "slot 2 ({n}) looks random but differs in only 20%" in finding.evidence


def test_with_a_secondary_a_slot_varies_like_the_secondarys_or_it_is_not_noise() -> None:
    both = judged(pairs(receipt), pairs(receipt, seed=2))
    assert both.opinion == "same", both.evidence
    # The secondary answers the same receipt number as the primary but for 5 requests.
    alone = judged(pairs(receipt), pairs(receipt, n=5, seed=2))
    assert alone.opinion == "different"
    assert "in only 5 primary/secondary pairs: not noise" in alone.evidence


def note_run(voided: int, next_invoice: int) -> tuple[Run, list[str]]:
    """Every pair's note differs in a random receipt number; the first ``voided`` change the
    template, the next ``next_invoice`` name the next invoice: both real, pair by pair."""
    run = Run()
    names = run.endpoint(API, N)
    rng = random.Random(7)
    values = []
    for i in range(N):
        state = "voided" if i < voided else "issued"
        invoice = i + 1 if voided <= i < voided + next_invoice else i
        values.append(
            (
                f"receipt {rng.randint(1000, 9999)} issued for invoice {i}",
                f"receipt {rng.randint(1000, 9999)} {state} for invoice {invoice}",
            )
        )
    run.diffs += rows(API, "$.note", values, ids=names)
    return run, names


def test_in_a_noise_pattern_the_pairs_with_another_template_or_slot_stay_real() -> None:
    run, names = note_run(voided=40, next_invoice=40)
    found, judged_rows = run.judge()
    verdict = found[(API, "$.note")]
    assert verdict.verdict == "noise", verdict.evidence
    assert "slot 2 ({n}) changes systematically in 40 pairs" in verdict.evidence
    assert "the template changes in 40 of 400 pairs" in verdict.evidence
    assert "80 pairs whose values break that shape stay real" in verdict.evidence
    flags = judged_rows.noise("$.note")
    assert {flags[r] for r in names[:80]} == {False}
    assert {flags[r] for r in names[80:]} == {True}
    assert judged_rows.reasons("$.note") == {None, "volatile: templated text"}


def test_a_template_changed_in_most_pairs_is_real_in_all() -> None:
    run, names = note_run(voided=300, next_invoice=0)
    found, judged_rows = run.judge()
    assert found[(API, "$.note")].verdict == "real"
    assert set(judged_rows.noise("$.note").values()) == {False}
