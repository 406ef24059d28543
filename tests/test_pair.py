from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from shadowdiff.diff.outcome import finish_pairs
from shadowdiff.diff.status import status_diffs
from shadowdiff.pair import SideCounts, pair
from shadowdiff.testing.factories import texchange, tpair, ttable


def run_pairing(
    rows: list[dict[str, Any]],
) -> tuple[dict[str, SideCounts], dict[str, dict[str, Any]]]:
    con = duckdb.connect()
    table = ttable(rows)
    con.register("exchanges", table)
    counts = pair(con)
    con.execute("CREATE TEMP TABLE diffs AS " + status_diffs(con).sql_query())
    con.execute("CREATE TEMP TABLE notes (request_id VARCHAR, note VARCHAR)")
    result = finish_pairs(con).arrow()
    pairs: pa.Table = result.read_all() if isinstance(result, pa.RecordBatchReader) else result
    return counts, {r["request_id"]: r for r in pairs.to_pylist()}


def test_outcomes_and_latency_delta() -> None:
    rows = [
        *tpair("same"),
        *tpair("slower", duration_ms=35.0),
        *tpair("failing", status=503),
        texchange(request_id="lonely-primary"),
        texchange(request_id="lonely-mirror", side="mirror"),
    ]
    counts, pairs = run_pairing(rows)
    assert pairs["same"]["outcome"] == "match"
    assert pairs["same"]["n_diffs"] == 0
    assert pairs["slower"]["latency_delta_ms"] == 25.0
    assert pairs["failing"]["outcome"] == "diverged"
    assert pairs["failing"]["status_diverged"] is True
    assert (pairs["failing"]["primary_status"], pairs["failing"]["mirror_status"]) == (200, 503)
    assert pairs["failing"]["signature"] is not None
    assert pairs["lonely-primary"]["outcome"] == "primary_only"
    assert pairs["lonely-mirror"]["outcome"] == "mirror_only"
    assert pairs["lonely-mirror"]["n_diffs"] is None
    assert counts["primary"] == SideCounts(records=4, paired=3, orphaned=1, duplicates=0)
    assert counts["mirror"] == SideCounts(records=4, paired=3, orphaned=1, duplicates=0)


def test_duplicate_ids_are_counted_and_kept_out_of_pairing() -> None:
    rows = [
        *tpair("dup"),
        texchange(request_id="dup", location="test.log:9"),
        *tpair("ok"),
    ]
    counts, pairs = run_pairing(rows)
    assert set(pairs) == {"ok"}
    # Both primary records, and the mirror record whose partner is ambiguous.
    assert counts["primary"] == SideCounts(records=3, paired=1, orphaned=0, duplicates=2)
    assert counts["mirror"] == SideCounts(records=2, paired=1, orphaned=0, duplicates=1)


def test_requests_failing_the_same_way_share_a_signature() -> None:
    rows = [*tpair("a", status=500), *tpair("b", status=502), *tpair("c")]
    _, pairs = run_pairing(rows)
    assert pairs["a"]["signature"] == pairs["b"]["signature"]
    assert pairs["c"]["signature"] is None


def test_secondary_pairs_against_primary() -> None:
    rows = [
        *tpair("a"),
        texchange(request_id="a", side="secondary"),
        texchange(request_id="z", side="secondary"),
    ]
    counts, pairs = run_pairing(rows)
    assert set(pairs) == {"a"}
    assert counts["secondary"] == SideCounts(records=2, paired=1, orphaned=1, duplicates=0)


def test_missing_status_on_one_side_is_a_status_difference() -> None:
    _, pairs = run_pairing(tpair("a", status=None))
    assert pairs["a"]["outcome"] == "diverged"
