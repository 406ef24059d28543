"""The mirroring lab's traffic recorded as other tools record it — HAR exports of each side,
a GoReplay file of requests with the original and replayed responses, and HAR files without
request ids — finds the planted differences as the taps do."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

import shadowdiff
from shadowdiff.testing import backends, exports, lab

pytestmark = pytest.mark.integration


def rules_file(tmp_path: Path, extra: str = "") -> Path:
    body = sorted({v.path for v in backends.VOLATILE if v.part == "body"})
    path = tmp_path / "rules.toml"
    path.write_text(extra + f"[ignore]\nbody = {body!r}\n".replace("'", '"'))
    return path


def planted(finished: lab.Finished) -> dict[str, set[tuple[str, str, str]]]:
    return {
        sent.request_id: {
            (p.part, p.path or "status", p.kind)
            for p in backends.planted_for(sent.request)
            if p.part != "latency"
        }
        for sent in finished.record.sent
    }


def findings(out: Path) -> dict[str, set[tuple[str, str, str]]]:
    found: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for request_id, part, pattern, kind in (
        shadowdiff.open(out)
        .sql("SELECT request_id, part, pattern, kind FROM diffs WHERE NOT noise")
        .fetchall()
    ):
        found[request_id].add((part, pattern, kind))
    return found


def assert_planted_found(out: Path, expected: dict[str, set[tuple[str, str, str]]]) -> None:
    found = findings(out)
    assert any(expected.values())
    for request_id, plants in expected.items():
        assert plants <= found[request_id], request_id


def test_har_exports_of_both_sides(lab_run: lab.Finished, tmp_path: Path) -> None:
    primary = exports.har(lab_run.primary.taps_dir, tmp_path / "primary.har")
    mirror = exports.har(lab_run.mirror.taps_dir, tmp_path / "mirror.har")
    out = tmp_path / "run"
    result = shadowdiff.run(
        primary=[str(primary)], mirror=[str(mirror)], rules=rules_file(tmp_path), out=out
    )
    assert {i["source"] for i in result.manifest["inputs"]} == {"har"}
    assert result.manifest["conservation"]["primary"]["paired"] == len(lab_run.record.ids)
    assert_planted_found(out, planted(lab_run))


def test_a_goreplay_file_with_original_and_replayed_responses(
    lab_run: lab.Finished, tmp_path: Path
) -> None:
    recording = exports.gor(
        lab_run.primary.taps_dir, lab_run.mirror.taps_dir, tmp_path / "window.gor"
    )
    out = tmp_path / "run"
    result = shadowdiff.run(inputs=[str(recording)], rules=rules_file(tmp_path), out=out)
    assert {i["source"] for i in result.manifest["inputs"]} == {"goreplay"}
    assert result.manifest["conservation"]["primary"]["paired"] == len(lab_run.record.ids)
    assert_planted_found(out, planted(lab_run))


def test_har_files_without_request_ids_pair_by_fingerprint(
    lab_run: lab.Finished, tmp_path: Path
) -> None:
    primary = exports.har(lab_run.primary.taps_dir, tmp_path / "p.har", request_ids=False)
    mirror = exports.har(lab_run.mirror.taps_dir, tmp_path / "m.har", request_ids=False)
    out = tmp_path / "run"
    rules = rules_file(tmp_path, '[pairing]\nby = "fingerprint"\nmax_skew_ms = 200\n')
    result = shadowdiff.run(primary=[str(primary)], mirror=[str(mirror)], rules=rules, out=out)
    conservation = result.manifest["conservation"]
    assert conservation["primary"]["rejected"] == 0
    # Pairs are named by fingerprint now: compare, per request line, what was planted with
    # what was found.
    expected: dict[tuple[str, str], set[tuple[str, str, str]]] = defaultdict(set)
    for sent in lab_run.record.sent:
        expected[(sent.method, sent.target)] |= planted(lab_run)[sent.request_id]
    con = shadowdiff.open(out)
    found: dict[tuple[str, str], set[tuple[str, str, str]]] = defaultdict(set)
    for method, path, part, pattern, kind in con.sql(
        "SELECT p.method, p.path, d.part, d.pattern, d.kind FROM diffs d "
        "JOIN pairs p USING (request_id) WHERE NOT d.noise"
    ).fetchall():
        found[(method, path)].add((part, pattern, kind))
    paired = {
        (method, path)
        for method, path in con.sql(
            "SELECT method, path FROM pairs WHERE outcome NOT IN ('primary_only', 'mirror_only')"
        ).fetchall()
    }
    # Identical requests sent within the skew of each other are ambiguous, never guessed.
    assert conservation["primary"]["paired"] >= 0.9 * len(lab_run.record.ids), conservation
    assert any(expected[r] for r in paired)
    for request in paired:
        assert expected[request] <= found[request], request
