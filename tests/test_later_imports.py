"""The noise stage's statistics (``scipy.stats``, about a second of CPU to import) are imported
ahead of it only for a run that has differences to test: not while the reading workers keep
every core busy, and never for a run whose differences are all statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

import shadowdiff
from shadowdiff.engine import local

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "envoy"


@pytest.fixture
def imports(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    started: list[tuple[str, ...]] = []
    monkeypatch.setattr(local, "_import_in_background", lambda *names: started.append(names))
    return started


def test_a_run_with_status_differences_only_imports_nothing_ahead(
    tmp_path: Path, imports: list[tuple[str, ...]]
) -> None:
    from tests.test_engine import json_line

    ids = [f"id-{i}" for i in range(50)]
    (tmp_path / "p.log").write_text("".join(json_line(i) + "\n" for i in ids))
    mirror = [json_line(i, 500 if i.endswith("3") else 200) for i in ids]
    (tmp_path / "m.log").write_text("".join(line + "\n" for line in mirror))
    result = shadowdiff.run(
        out=tmp_path / "run", primary=[tmp_path / "p.log"], mirror=[tmp_path / "m.log"]
    )
    assert result.manifest["outcomes"]["diverged"] == 5
    assert imports == []


def test_a_run_with_body_differences_imports_the_statistics_before_the_noise_stage(
    tmp_path: Path, imports: list[tuple[str, ...]]
) -> None:
    result = shadowdiff.run(
        out=tmp_path / "run",
        primary=[SAMPLE / "taps" / "primary"],
        mirror=[SAMPLE / "taps" / "mirror"],
    )
    con = shadowdiff.open(result.out)
    [(bodies,)] = con.sql("SELECT count(*) FROM diffs WHERE part = 'body'").fetchall()
    assert bodies > 0
    assert imports == [local.LATER_IMPORTS]
