"""shadowdiff on real Envoy access logs from the mirroring lab: the planted status and latency
differences are found, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import shadowdiff
from shadowdiff import store
from shadowdiff.cli import main
from shadowdiff.testing import backends, lab

pytestmark = pytest.mark.integration

STATUS_PLANTS = [p for p in backends.PLANTED if p.part == "status"]


def expected_status_changes(finished: lab.Finished) -> dict[str, tuple[int, int]]:
    changes = {}
    for sent in finished.record.sent:
        for plant in STATUS_PLANTS:
            if plant.matches(sent.request):
                changes[sent.request_id] = (plant.primary, plant.mirror)
    return changes


def run_on(finished: lab.Finished, log: str, tmp_path: Path, mixed: bool) -> Path:
    primary = getattr(finished.primary, log)
    mirror = getattr(finished.mirror, log)
    out = tmp_path / f"{log}-{'mixed' if mixed else 'flags'}"
    if mixed:  # sides from the -shadow suffix Envoy appended to the mirrored authority
        shadowdiff.run(inputs=[str(primary), str(mirror)], out=out)
    else:
        shadowdiff.run(primary=[str(primary)], mirror=[str(mirror)], out=out)
    return out


@pytest.mark.parametrize("log", ["text_log", "json_log"])
@pytest.mark.parametrize("mixed", [False, True], ids=["by-flag", "by-shadow-suffix"])
def test_planted_status_and_latency_differences_and_nothing_else(
    lab_run: lab.Finished, tmp_path: Path, log: str, mixed: bool
) -> None:
    out = run_on(lab_run, log, tmp_path, mixed)
    con = shadowdiff.open(out)
    n = len(lab_run.record.sent)

    manifest = store.read_manifest(out)
    for side in ("primary", "mirror"):
        figures = manifest["conservation"][side]
        assert figures == {"read": n, "paired": n, "orphaned": 0, "duplicates": 0, "rejected": 0}
    assert manifest["rejects"] == 0

    pairs = {
        r[0]: r[1:]
        for r in con.sql(
            "SELECT request_id, outcome, primary_status, mirror_status FROM pairs"
        ).fetchall()
    }
    assert set(pairs) == set(lab_run.record.ids)
    expected = expected_status_changes(lab_run)
    assert expected, "the traffic plan should hit the planted status change"
    diverged = {rid: (p, m) for rid, (outcome, p, m) in pairs.items() if outcome == "diverged"}
    assert diverged == expected
    assert {o for rid, (o, *_) in pairs.items() if rid not in expected} == {"match"}

    diffs = con.sql("SELECT DISTINCT endpoint, part, pattern, kind FROM diffs").fetchall()
    assert diffs == [("GET /api/orders/{id}", "status", "status", "changed")]

    latency = {
        (endpoint, side): p50
        for endpoint, side, p50 in con.sql("SELECT endpoint, side, p50 FROM latency").fetchall()
    }
    for endpoint in {e for e, _ in latency}:
        shift = latency[(endpoint, "mirror")] - latency[(endpoint, "primary")]
        if endpoint == "GET /api/search":
            assert shift >= backends.SEARCH_EXTRA_DELAY_S * 1000 * 0.6, latency
        else:
            assert abs(shift) < 10, (endpoint, latency)


def test_cli_run_then_sql(lab_run: lab.Finished, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "run",
            "--primary",
            str(lab_run.primary.text_log),
            "--mirror",
            str(lab_run.mirror.text_log),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"run written to {out}/" in result.output
    assert "GET /api/orders/{id}" in result.output
    query = "SELECT count(*) AS n FROM pairs WHERE outcome = 'diverged'"
    result = runner.invoke(main, ["sql", str(out), query, "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["n", str(len(expected_status_changes(lab_run)))]
