"""Mirroring windows as they really are: sampled mirroring, logs that start and stop at other
moments, runs bounded in time, and writes that reach the mirror."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import shadowdiff
from shadowdiff import api
from shadowdiff.report.summary import summary

T0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)


def line(i: int, ms: float, method: str = "GET", path: str | None = None, status: int = 200):
    return json.dumps(
        {
            "start_time": (T0 + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z"),
            "method": method,
            "path": path or f"/api/items/{i}",
            "response_code": status,
            "duration": 5,
            "request_id": f"r{i}",
            "authority": "app:8080",
        }
    )


def write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run(tmp_path: Path, primary: list[str], mirror: list[str], rules: str = "", **kw):
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(rules)
    return shadowdiff.run(
        primary=[write(tmp_path / "p.log", primary)],
        mirror=[write(tmp_path / "m.log", mirror)],
        rules=str(rules_file),
        out=tmp_path / "out",
        **kw,
    )


def sampled(n: int = 200, every: int = 5) -> tuple[list[str], list[str]]:
    """Every ``every``-th request is not mirrored (80% mirroring for 5)."""
    primary = [line(i, i * 100.0) for i in range(n)]
    mirror = [line(i, i * 100.0 + 3) for i in range(n) if i % every != every // 2]
    return primary, mirror


def test_sampled_mirroring_is_expected_not_failed(tmp_path: Path) -> None:
    primary, mirror = sampled()
    result = run(tmp_path, primary, mirror, "[pairing]\nmirror_percent = 80\nmax_skew_ms = 50\n")
    section = result.manifest["mirroring"]
    assert section["observed_percent"] == 80.0
    assert section["primary_only"] == 40 and section["expected_primary_only"] == 40
    verdict = api.check(tmp_path / "out", max_orphan_rate=0.01)
    assert verdict.exit_code == 0, verdict.lines()
    assert "80% configured" in summary(tmp_path / "out")


def test_without_mirror_percent_the_estimate_is_printed_and_orphans_count(tmp_path: Path) -> None:
    primary, mirror = sampled()
    run(tmp_path, primary, mirror, "[pairing]\nmax_skew_ms = 50\n")
    assert api.check(tmp_path / "out", max_orphan_rate=0.01).exit_code == 1
    assert "80.0% of the primary's requests have a mirrored copy" in summary(tmp_path / "out")


def test_more_orphans_than_the_sampling_explains_still_fail(tmp_path: Path) -> None:
    primary, mirror = sampled(every=2)  # half mirrored, though 80% is configured
    run(tmp_path, primary, mirror, "[pairing]\nmirror_percent = 80\nmax_skew_ms = 50\n")
    result = api.check(tmp_path / "out", max_orphan_rate=0.05)
    assert result.exit_code == 1
    assert "beyond the" in "\n".join(result.lines())


def test_mirror_only_orphans_count_whatever_the_percentage(tmp_path: Path) -> None:
    primary = [line(i, i * 100.0) for i in range(100)]
    mirror = [line(i, i * 100.0 + 3) for i in range(100)] + [line(1000 + i, 5000) for i in range(5)]
    run(tmp_path, primary, mirror, "[pairing]\nmirror_percent = 50\n")
    assert api.check(tmp_path / "out", max_orphan_rate=0.01).exit_code == 1


def test_orphans_at_the_edges_of_the_other_log_are_counted_apart(tmp_path: Path) -> None:
    """The mirror's log starts 300 ms late and ends 300 ms early."""
    primary = [line(i, i * 100.0) for i in range(100)]
    mirror = [line(i, i * 100.0 + 3) for i in range(3, 97)]
    result = run(tmp_path, primary, mirror, "[pairing]\nmax_skew_ms = 500\n")
    section = result.manifest["mirroring"]
    assert section["edge_orphans"] == {"primary_only": 6, "mirror_only": 0}
    assert api.check(tmp_path / "out", max_orphan_rate=0.0).exit_code == 0
    notes = shadowdiff.open(tmp_path / "out").sql(
        "SELECT count(*) FROM pairs WHERE note LIKE 'near the edge of the mirror%'"
    )
    assert notes.fetchall() == [(6,)]


def test_an_orphan_in_the_middle_is_not_an_edge_orphan(tmp_path: Path) -> None:
    primary = [line(i, i * 100.0) for i in range(100)]
    mirror = [line(i, i * 100.0 + 3) for i in range(100) if i != 50]
    result = run(tmp_path, primary, mirror)
    assert result.manifest["mirroring"]["edge_orphans"] == {"primary_only": 0, "mirror_only": 0}
    assert api.check(tmp_path / "out", max_orphan_rate=0.0).exit_code == 1


def test_since_and_until_bound_the_run_and_the_books_say_so(tmp_path: Path) -> None:
    primary = [line(i, i * 1000.0) for i in range(60)]
    mirror = [line(i, i * 1000.0 + 3) for i in range(60)]
    since, until = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)
    result = run(tmp_path, primary, mirror, since=since.isoformat(), until=until.isoformat())
    conservation = result.manifest["conservation"]
    assert conservation["primary"]["paired"] == 10
    assert conservation["primary"]["outside_window"] == 50
    assert conservation["mirror"]["paired"] == 10
    # The mirror keeps its own records within the window widened by the skew (1 s): those of
    # 9.003 s and 20.003 s, orphans at the edges of the bounded primary.
    assert conservation["mirror"]["outside_window"] == 48
    assert conservation["mirror"]["orphaned"] == 2
    section = result.manifest["mirroring"]
    assert section["outside_window"] == {"mirror": 48, "primary": 50}
    assert section["edge_orphans"] == {"primary_only": 0, "mirror_only": 2}


def test_window_from_the_pipeline_file(tmp_path: Path) -> None:
    primary = [line(i, i * 1000.0) for i in range(30)]
    mirror = [line(i, i * 1000.0 + 3) for i in range(30)]
    rules = '[window]\nsince = "2026-11-28T10:00:05Z"\nuntil = 2026-11-28T10:00:15Z\n'
    result = run(tmp_path, primary, mirror, rules)
    assert result.manifest["conservation"]["primary"]["paired"] == 10


def test_mirrored_writes_are_listed_and_can_gate(tmp_path: Path) -> None:
    primary = [line(i, i * 100.0, "POST", "/api/orders") for i in range(10)]
    primary += [line(100 + i, 5000 + i, "GET", "/api/cart/add") for i in range(4)]
    primary += [line(200 + i, 6000 + i) for i in range(20)]
    mirror = [
        line(i, i * 100.0 + 3, "POST", "/api/orders", 201 if i < 7 else 409) for i in range(10)
    ]
    mirror += [line(100 + i, 5003 + i, "GET", "/api/cart/add") for i in range(4)]
    mirror += [line(200 + i, 6003 + i) for i in range(20)]
    result = run(tmp_path, primary, mirror, '[safety]\nwrites = ["GET /api/cart/add"]\n')
    writes = {w["endpoint"]: w for w in result.manifest["mirroring"]["mirrored_writes"]}
    assert writes["POST /api/orders"]["mirrored"] == 10
    assert writes["POST /api/orders"]["answered_2xx"] == 7
    assert writes["POST /api/orders"]["answered_4xx"] == 3
    assert writes["GET /api/cart/add"]["mirrored"] == 4
    assert "Mirrored writes: 14 non-idempotent requests" in summary(tmp_path / "out")
    assert api.check(tmp_path / "out", max_mirrored_writes=20).exit_code == 0
    gate = api.check(tmp_path / "out", max_mirrored_writes=0)
    assert gate.exit_code == 1 and "11 answered 2xx" in "\n".join(gate.lines())
    report = api.report(tmp_path / "out")
    assert "Mirrored writes" in report.html.read_text()
