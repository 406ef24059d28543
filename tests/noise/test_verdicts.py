"""The ``noise`` table's rows: written in the contract's schema, read back with their part; and
how the verdicts reach the ``diffs`` rows (headers that follow the body, pair by pair)."""

from __future__ import annotations

import random

from noisecases import Run, rows

from shadowdiff import schema
from shadowdiff.noise.verdicts import NoiseRow, Verdict, part_of, table


def test_a_verdict_is_written_as_the_schema_and_reads_back_as_its_row() -> None:
    verdict = Verdict(
        "GET /a", "body", "$.ts", "changed", 50, 48, 60, 0.5, "noise", "alike", "baseline: …"
    )
    written = table([verdict])
    assert written.schema.equals(schema.NOISE)
    [record] = written.to_pylist()
    assert NoiseRow.from_record(record) == NoiseRow(
        "GET /a", "body", "$.ts", "changed", 50, 48, 60, 0.5, "noise", "alike"
    )


def test_the_part_of_a_stored_pattern() -> None:
    assert [part_of(p) for p in ("$.items[*].id", "$", "status", "x-cache")] == [
        "body",
        "body",
        "status",
        "header",
    ]


def test_headers_that_follow_the_body_are_noise_when_only_its_bytes_differ() -> None:
    run = Run()
    feed = "GET /api/feed/{id}"
    names = run.endpoint(feed, 100)
    rng = random.Random(1)

    def stamp(i: int) -> str:
        return f"2026-11-28T10:00:{i:02d}.{rng.randint(0, 999):03d}Z"

    clocks = [(stamp(i), stamp(i)) for i in range(50)]  # two clocks, within a second
    run.diffs += rows(feed, "$.served_at", clocks, ids=names[:50])
    run.diffs += rows(feed, "$.region", [("eu-west-1", "eu-central-1")] * 30, ids=names[50:80])
    run.diffs += rows(feed, "etag", [('"a"', '"b"')] * 100, ids=names, part="header")
    # Pairs 80-89: no body rows, but other bytes (a float written differently); 90-99: the
    # same bytes, so the etag changed on its own.
    run.bodies = {name: (b'{"total": 1.0}', b'{"total": 1}') for name in names[80:90]}
    run.bodies |= {name: (b'{"total": 1}', b'{"total": 1}') for name in names[90:]}
    found, judged = run.judge()
    flags = judged.noise("etag")
    assert {flags[r] for r in names[:50]} == {True}  # the body differs only in noise
    assert {flags[r] for r in names[50:80]} == {False}  # the body differs for real
    assert {flags[r] for r in names[80:90]} == {True}
    assert {flags[r] for r in names[90:]} == {False}
    assert "volatile: follows the body, which differs only in its bytes" in judged.reasons("etag")
    verdict = found[(feed, "etag")]
    assert verdict.verdict == "real" and "noise in 60 pairs" in verdict.evidence
    assert "real in 40 whose body differs for real" in verdict.evidence
