"""shadowdiff on real Envoy tap output from the mirroring lab: every planted difference is found
at the right pattern and kind, and with a rules file that ignores the volatile fields no pair
outside the planted ones is diverged."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

import shadowdiff
from shadowdiff.testing import backends, lab

pytestmark = pytest.mark.integration

# A planted body or header difference changes the body's length too.
CONSEQUENCES = {("header", "content-length", "changed")}


def rules_file(tmp_path: Path) -> Path:
    body = sorted({v.path for v in backends.VOLATILE if v.part == "body"})
    path = tmp_path / "rules.toml"
    path.write_text(f"[ignore]\nbody = {body!r}\n".replace("'", '"'))
    return path


def planted(finished: lab.Finished) -> dict[str, set[tuple[str, str, str]]]:
    """request id → the (part, pattern, kind) the lab planted for it (latency aside)."""
    found: dict[str, set[tuple[str, str, str]]] = {}
    for sent in finished.record.sent:
        found[sent.request_id] = {
            (p.part, p.path or "status", p.kind)
            for p in backends.planted_for(sent.request)
            if p.part != "latency"
        }
    return found


@pytest.fixture(scope="module")
def tap_run(lab_run: lab.Finished, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("taps")
    out = tmp / "run"
    shadowdiff.run(
        primary=[str(lab_run.primary.taps_dir)],
        mirror=[str(lab_run.mirror.taps_dir)],
        rules=rules_file(tmp),
        out=out,
    )
    return out


def test_every_planted_difference_is_found_at_its_pattern_and_kind(
    lab_run: lab.Finished, tap_run: Path
) -> None:
    con = shadowdiff.open(tap_run)
    real: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for request_id, part, pattern, kind in con.sql(
        "SELECT request_id, part, pattern, kind FROM diffs WHERE NOT noise"
    ).fetchall():
        real[request_id].add((part, pattern, kind))
    expected = planted(lab_run)
    assert any(expected.values())
    for request_id, plants in expected.items():
        assert plants <= real[request_id], request_id


def test_only_planted_pairs_diverge_once_volatile_fields_are_ignored(
    lab_run: lab.Finished, tap_run: Path
) -> None:
    con = shadowdiff.open(tap_run)
    outcomes = dict(con.sql("SELECT request_id, outcome FROM pairs").fetchall())
    assert set(outcomes) == set(lab_run.record.ids)
    expected = planted(lab_run)
    for request_id, outcome in outcomes.items():
        assert outcome == ("diverged" if expected[request_id] else "match"), request_id
    # The status-500 responses have a different body altogether; elsewhere a pair holds
    # nothing beyond what was planted (and the length that follows from it).
    failing = {r for r, plants in expected.items() if ("status", "status", "changed") in plants}
    for request_id, part, pattern, kind in con.sql(
        "SELECT request_id, part, pattern, kind FROM diffs WHERE NOT noise"
    ).fetchall():
        if request_id not in failing:
            assert (part, pattern, kind) in expected[request_id] | CONSEQUENCES, request_id


def test_volatile_fields_stay_visible_as_noise(tap_run: Path) -> None:
    con = shadowdiff.open(tap_run)
    noise = dict(
        con.sql(
            "SELECT pattern, any_value(noise_reason) FROM diffs WHERE noise GROUP BY 1"
        ).fetchall()
    )
    assert noise == {
        "$.served_at": "rule: ignore $.served_at",
        "$.trace_id": "rule: ignore $.trace_id",
        "$.generated_at": "rule: ignore $.generated_at",
    }


def test_gzip_report_and_health_are_not_differences(tap_run: Path) -> None:
    con = shadowdiff.open(tap_run)
    rows = con.sql(
        "SELECT endpoint, part, pattern FROM diffs WHERE NOT noise "
        "AND endpoint IN ('GET /api/report', 'GET /api/health') AND part <> 'header'"
    ).fetchall()
    assert rows == []
    notes = con.sql("SELECT count(*) FROM pairs WHERE note IS NOT NULL").fetchall()
    assert notes == [(0,)]
