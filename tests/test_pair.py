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
    pairs: pa.Table = finish_pairs(con).to_arrow_table()
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


def test_duplicates_on_one_side_keep_the_id_out_on_every_side() -> None:
    rows = [
        *tpair("dup-mirror"),
        texchange(request_id="dup-mirror", side="mirror", location="test.log:7"),
        *tpair("dup-secondary"),
        texchange(request_id="dup-secondary", side="secondary"),
        texchange(request_id="dup-secondary", side="secondary", location="test.log:8"),
        *tpair("ok"),
        texchange(request_id="ok", side="secondary"),
        texchange(request_id="only-primary"),
        texchange(request_id="only-mirror", side="mirror", path="/api/users/2", status=404),
        texchange(request_id="only-secondary", side="secondary"),
    ]
    con = duckdb.connect()
    con.register("exchanges", ttable(rows))
    counts = pair(con)
    assert counts["primary"] == SideCounts(records=4, paired=1, orphaned=1, duplicates=2)
    assert counts["mirror"] == SideCounts(records=5, paired=1, orphaned=1, duplicates=3)
    assert counts["secondary"] == SideCounts(records=4, paired=1, orphaned=1, duplicates=2)
    base = con.sql(
        "SELECT request_id, orphan, path, primary_status, mirror_status FROM pairs_base ORDER BY 1"
    ).fetchall()
    assert base == [
        ("ok", None, "/api/users/1", 200, 200),
        ("only-mirror", "mirror_only", "/api/users/2", None, 404),
        ("only-primary", "primary_only", "/api/users/1", 200, None),
    ]
    unique = con.sql("SELECT DISTINCT request_id FROM unique_exchanges ORDER BY 1").fetchall()
    assert unique == [("ok",), ("only-mirror",), ("only-primary",), ("only-secondary",)]


def test_no_duplicates_and_no_secondary() -> None:
    counts, pairs = run_pairing([*tpair("a"), *tpair("b"), texchange(request_id="c")])
    assert counts["primary"] == SideCounts(records=3, paired=2, orphaned=1, duplicates=0)
    assert counts["mirror"] == SideCounts(records=2, paired=2, orphaned=0, duplicates=0)
    assert counts["secondary"] == SideCounts(records=0, paired=0, orphaned=0, duplicates=0)
    assert pairs["c"]["outcome"] == "primary_only"


def test_duplicates_among_orphans_only_are_found() -> None:
    # The join's counts add up here (no id repeats a partner's record): only the orphans'
    # repeated id tells.
    rows = [*tpair("ok"), texchange(request_id="twice"), texchange(request_id="twice")]
    counts, pairs = run_pairing(rows)
    assert set(pairs) == {"ok"}
    assert counts["primary"] == SideCounts(records=3, paired=1, orphaned=0, duplicates=2)
    assert counts["mirror"] == SideCounts(records=1, paired=1, orphaned=0, duplicates=0)


def test_an_id_repeated_on_both_sides_is_paired_without_it() -> None:
    # 3 × 3 join rows for one id: more rows than records, so the join is built again.
    repeated = [row for _ in range(3) for row in tpair("many")]
    counts, pairs = run_pairing([*repeated, *tpair("ok"), texchange(request_id="alone")])
    assert set(pairs) == {"ok", "alone"}
    assert counts["primary"] == SideCounts(records=5, paired=1, orphaned=1, duplicates=3)
    assert counts["mirror"] == SideCounts(records=4, paired=1, orphaned=0, duplicates=3)
