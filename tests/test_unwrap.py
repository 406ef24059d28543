"""Access logs in the wrappers Kubernetes nodes and log shippers put around them, and JSON that
is not one object per line: read as the lines inside, located at the original lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import shadowdiff
from shadowdiff.collect import registry, unwrap
from shadowdiff.collect.base import Input
from shadowdiff.collect.inputs import expand_groups
from shadowdiff.engine import collection

TEXT_LINE = (
    '[2026-11-28T10:00:0{s}.000Z] "GET /api/items/{i} HTTP/1.1" 200 - 0 12 5 4 "-" "curl/8" '
    '"r{i}" "app:8080" "10.0.0.2:8080"'
)


def records(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "start_time": "2026-11-28T10:00:00.000Z",
            "method": "GET",
            "path": f"/api/items/{i}",
            "response_code": 200,
            "duration": 5,
            "request_id": f"r{i}",
            "authority": "app:8080",
            **extra,
        }
        for i in range(n)
    ]


def read(path: Path) -> collection.Collected:
    plan = collection.plan(expand_groups([path], "primary"), None)
    with collection.Readers(plan) as readers:
        return collection.collect(plan, collection.Options(), readers, lambda _: None)


def ids(found: collection.Collected) -> list[str]:
    return found.exchanges.column("request_id").to_pylist()


def cri(when: str, tag: str, content: str) -> str:
    return f"{when} stdout {tag} {content}\n"


def test_cri_lines_are_read_with_partial_lines_joined(tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in records(4)]
    when = "2026-11-28T09:16:27.162345678Z"
    text = (
        cri(when, "F", lines[0]) + cri(when, "P", lines[1][:15]) + cri(when, "P", lines[1][15:30])
    )
    text += cri(when, "F", lines[1][30:]) + "\n" + cri(when, "F", lines[2])
    text += "not a cri line\n" + cri(when, "F", lines[3])
    path = tmp_path / "0.log"
    path.write_text(text)
    found = read(path)
    assert ids(found) == ["r0", "r1", "r2", "r3"]
    # The joined record starts on line 2; the blank line 5 is counted as blank.
    locations = found.exchanges.column("location").to_pylist()
    assert locations == [f"{path}:1", f"{path}:2", f"{path}:6", f"{path}:8"]
    (bad,) = found.rejects
    assert bad["location"] == f"{path}:7" and "not a CRI" in str(bad["reason"])
    (report,) = found.reports
    assert report.records == 5 and report.rejected == 1 and report.blank == 1
    assert "CRI" in str(report.note)


def test_cri_around_istio_text_lines(tmp_path: Path) -> None:
    when = "2026-11-28T09:16:27.162345678Z"
    path = tmp_path / "0.log"
    path.write_text("".join(cri(when, "F", TEXT_LINE.format(s=i, i=i)) for i in range(5)))
    assert registry.sniff(Input(path)).name == "envoy-text"
    found = read(path)
    assert ids(found) == [f"r{i}" for i in range(5)]
    assert found.exchanges.column("location").to_pylist()[4] == f"{path}:5"


def test_docker_json_file_lines_with_a_split_long_line(tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in records(3)]
    wrapped = [
        {"log": lines[0] + "\n", "stream": "stdout", "time": "2026-11-28T09:16:27.1Z"},
        {"log": lines[1][:10], "stream": "stdout", "time": "2026-11-28T09:16:28.1Z"},
        {"log": lines[1][10:] + "\n", "stream": "stdout", "time": "2026-11-28T09:16:28.2Z"},
        {"log": lines[2] + "\n", "stream": "stderr", "time": "2026-11-28T09:16:29.1Z"},
    ]
    path = tmp_path / "container-json.log"
    path.write_text("".join(json.dumps(w) + "\n" for w in wrapped))
    found = read(path)
    assert ids(found) == ["r0", "r1", "r2"]
    assert found.exchanges.column("location").to_pylist()[2] == f"{path}:4"


@pytest.mark.parametrize(("field", "stamp"), [("log", "@timestamp"), ("message", "timestamp")])
def test_shipper_exports_carry_the_line_in_a_field(tmp_path: Path, field: str, stamp: str) -> None:
    path = tmp_path / "export.ndjson"
    shipped = [
        {stamp: f"2026-11-28T09:16:2{i}Z", field: TEXT_LINE.format(s=i, i=i), "kubernetes": {}}
        for i in range(4)
    ]
    path.write_text("".join(json.dumps(s) + "\n" for s in shipped))
    found = read(path)
    assert ids(found) == [f"r{i}" for i in range(4)]


def test_the_wrapper_time_stands_in_for_a_missing_start_time(tmp_path: Path) -> None:
    lines = [json.dumps({k: v for k, v in r.items() if k != "start_time"}) for r in records(2)]
    path = tmp_path / "0.log"
    path.write_text(
        cri("2026-11-28T09:16:27.162345678Z", "F", lines[0])
        + cri("2026-11-28T09:16:28.000000001+00:00", "F", lines[1])
    )
    times = read(path).exchanges.column("start_time").to_pylist()
    assert [t.isoformat() for t in times] == [
        "2026-11-28T09:16:27.162345+00:00",
        "2026-11-28T09:16:28+00:00",
    ]


def test_pretty_printed_documents_one_after_another(tmp_path: Path) -> None:
    path = tmp_path / "jq.json"
    docs = records(6)
    parts = [json.dumps(d, indent=2) for d in docs]
    parts[3] = '{\n  "start_time": "2026-11-28T10:00:00.000Z",\n  "broken": tru\n}'
    path.write_text("\n".join(parts) + "\n")
    found = read(path)
    assert ids(found) == ["r0", "r1", "r2", "r4", "r5"]
    starts = [1 + sum(p.count("\n") + 1 for p in parts[:i]) for i in range(6)]
    locations = found.exchanges.column("location").to_pylist()
    assert locations == [f"{path}:{starts[i]}" for i in (0, 1, 2, 4, 5)]
    (bad,) = found.rejects
    assert bad["location"] == f"{path}:{starts[3]}" and "not JSON" in str(bad["reason"])
    assert found.reports[0].records == 6


def test_one_json_array_of_records_tab_indented(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(records(5), indent="\t"))
    found = read(path)
    assert ids(found) == [f"r{i}" for i in range(5)]
    assert found.reports[0].records == 5 and found.rejects == []


def test_a_cut_array_keeps_its_whole_items_and_rejects_the_cut(tmp_path: Path) -> None:
    text = json.dumps(records(5), indent=1)
    path = tmp_path / "export.json"
    path.write_text(text[: text.index('"r3"') + 2])
    found = read(path)
    assert ids(found) == ["r0", "r1", "r2"]
    (cut,) = found.rejects
    assert "cut short" in str(cut["reason"])


def test_large_documents_across_read_chunks(tmp_path: Path) -> None:
    """Documents that straddle the reader's chunks, with bodies of many KB."""
    docs = records(300, note="x" * 40_000)
    path = tmp_path / "big.json"
    path.write_text("\n".join(json.dumps(d, indent=2) for d in docs))
    found = read(path)
    assert ids(found) == [f"r{i}" for i in range(300)]


def test_a_plain_log_is_not_unwrapped(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("".join(json.dumps(r) + "\n" for r in records(3, message="hello")))
    assert unwrap.detect(path.read_bytes()) is None
    assert read(path).reports[0].note is None


def test_wrapped_logs_pair_end_to_end(tmp_path: Path) -> None:
    when = "2026-11-28T09:16:27.162345678Z"
    primary = tmp_path / "primary.log"
    primary.write_text("".join(cri(when, "F", json.dumps(r)) for r in records(20)))
    mirror = tmp_path / "mirror.json"
    mirror.write_text(json.dumps(records(20), indent=2))
    result = shadowdiff.run(primary=[str(primary)], mirror=[str(mirror)], out=tmp_path / "o")
    assert result.manifest["conservation"]["primary"]["paired"] == 20
    assert result.manifest["conservation"]["mirror"]["paired"] == 20
