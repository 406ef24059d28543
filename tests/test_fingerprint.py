"""Pairing without a request id: by method, path and body, in time order within a skew."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import shadowdiff
from shadowdiff import fingerprint
from shadowdiff.cli import main
from shadowdiff.testing.factories import texchange, ttable

T0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def ids_of(rows: list[dict[str, Any]], skew_ms: float = 1000) -> list[str]:
    table = ttable(rows)
    return fingerprint.assign(table, table.column("side"), skew_ms).to_pylist()


def row(side: str, ms: float, path: str = "/api/a", body: bytes | None = None, rid: Any = None):
    return texchange(side=side, start_time=at(ms), path=path, request_body=body, request_id=rid)


def test_copies_within_the_skew_pair_in_time_order() -> None:
    rows = [
        row("primary", 0),
        row("primary", 5000),
        row("mirror", 12),
        row("mirror", 5008),
    ]
    ids = ids_of(rows)
    assert ids[0] == ids[2] and ids[1] == ids[3] and ids[0] != ids[1]
    assert all(i.startswith("fp-") for i in ids)


def test_the_primary_request_id_names_the_pair_where_it_has_one() -> None:
    ids = ids_of([row("primary", 0, rid="abc-1"), row("mirror", 3, rid=None)])
    assert ids == ["abc-1", "abc-1"]


def test_bodies_and_queries_tell_requests_apart() -> None:
    rows = [
        row("primary", 0, body=b'{"q": 1}'),
        row("primary", 1, body=b'{"q": 2}'),
        row("primary", 2, path="/api/a?page=2"),
        row("mirror", 3, path="/api/a?page=2"),
        row("mirror", 4, body=b'{"q": 2}'),
        row("mirror", 5, body=b'{"q": 1}'),
    ]
    ids = ids_of(rows)
    assert ids[0] == ids[5] and ids[1] == ids[4] and ids[2] == ids[3]
    assert len(set(ids)) == 3


def test_an_ambiguous_cluster_is_never_guessed_into_pairs() -> None:
    """Two identical calls within the skew, one mirrored copy: which one did it answer?"""
    rows = [row("primary", 0), row("primary", 10), row("mirror", 20), row("primary", 9000)]
    ids = ids_of(rows)
    assert len(set(ids[:3])) == 3  # three orphans
    assert "ambiguous" in ids[2]
    assert ids[3] not in ids[:3]


def test_a_secondary_takes_its_primary_id() -> None:
    rows = [row("primary", 0), row("mirror", 5), row("secondary", 7)]
    ids = ids_of(rows)
    assert ids[0] == ids[1] == ids[2]


def test_the_ids_are_stable_from_run_to_run() -> None:
    rows = [row("primary", 0), row("mirror", 5)]
    assert ids_of(rows) == ids_of(list(reversed(rows)))[::-1]


# --- end to end ---------------------------------------------------------------------------------


def log(path: Path, entries: list[tuple[float, str, int]]) -> Path:
    """A JSON access log without request ids: (ms after T0, path, status) per line."""
    lines = [
        json.dumps(
            {
                "start_time": at(ms).isoformat().replace("+00:00", "Z"),
                "method": "GET",
                "path": p,
                "response_code": status,
                "duration": 5,
                "authority": "app:8080",
            }
        )
        for ms, p, status in entries
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def window(tmp_path: Path) -> tuple[Path, Path]:
    primary = [(i * 2000.0, f"/api/items/{i % 5}", 200) for i in range(20)]
    primary += [(100_000, "/api/dup", 200), (100_050, "/api/dup", 200)]  # ambiguous
    mirror = [(ms + 7, p, 500 if p == "/api/items/3" else s) for ms, p, s in primary[:-1]]
    return log(tmp_path / "p.log", primary), log(tmp_path / "m.log", mirror)


def test_a_window_without_request_ids_pairs_by_fingerprint(
    window: tuple[Path, Path], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[pairing]\nby = "fingerprint"\nmax_skew_ms = 500\n')
    result = shadowdiff.run(
        primary=[str(window[0])], mirror=[str(window[1])], rules=str(rules), out=tmp_path / "o"
    )
    conservation = result.manifest["conservation"]
    assert conservation["primary"] == {
        "read": 22, "paired": 20, "orphaned": 2, "duplicates": 0, "rejected": 0
    }  # fmt: skip
    assert conservation["mirror"]["paired"] == 20 and conservation["mirror"]["orphaned"] == 1
    con = shadowdiff.open(tmp_path / "o")
    diverged = con.sql("SELECT path FROM pairs WHERE outcome = 'diverged'").fetchall()
    assert diverged == [("/api/items/3",)] * 4


def test_without_fingerprints_the_same_window_is_rejected_for_missing_ids(
    window: tuple[Path, Path], tmp_path: Path
) -> None:
    result = shadowdiff.run(primary=[str(window[0])], mirror=[str(window[1])], out=tmp_path / "o")
    assert result.manifest["conservation"]["primary"]["rejected"] == 22


def test_pair_by_on_the_command_line(window: tuple[Path, Path], tmp_path: Path) -> None:
    argv = ["run", "--primary", str(window[0]), "--mirror", str(window[1])]
    argv += ["--pair-by", "fingerprint", "--out", str(tmp_path / "o"), "-q"]
    done = CliRunner().invoke(main, argv)
    assert done.exit_code == 0, done.output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["conservation"]["primary"]["paired"] == 20
    assert manifest["config"]["pair_by"] == "fingerprint"


def test_a_bad_pairing_setting_is_a_clear_error(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[pairing]\nby = "magic"\n')
    with pytest.raises(shadowdiff.errors.ConfigError, match="by must be one of"):
        shadowdiff.run(primary=["x"], mirror=["y"], rules=str(rules), out=tmp_path / "o")
