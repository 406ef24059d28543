"""The ``noise`` table's rows: written in the contract's schema, read back with their part."""

from __future__ import annotations

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
