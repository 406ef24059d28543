"""The local engine end to end on small corpora with bad input mixed in: every record is
accounted for, and whole-file problems are clear errors with exit code 2."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import shadowdiff
from shadowdiff.cli import main

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "envoy"


def json_line(request_id: str, status: int = 200, authority: str = "app:8080") -> str:
    return json.dumps(
        {
            "start_time": "2026-11-28T10:00:00.000Z",
            "method": "GET",
            "path": f"/api/items/{abs(hash(request_id)) % 1000}",
            "response_code": status,
            "duration": 12,
            "request_id": request_id,
            "authority": authority,
        }
    )


def write_corpus(root: Path) -> tuple[list[Path], list[Path]]:
    """Primary and mirror files with every kind of bad input the issue lists."""
    p, m = root / "primary", root / "mirror"
    p.mkdir()
    m.mkdir()
    ids = [f"id-{i}" for i in range(20)]
    good_p = [json_line(i) for i in ids]
    good_m = [json_line(i, 500 if i == "id-3" else 200, "app-shadow:8080") for i in ids[:18]]
    (p / "a.log").write_text(
        "\n".join(good_p[:10] + ["garbage line", '{"truncated": '] + good_p[10:15]) + "\n"
    )
    (p / "b.log.gz").write_bytes(gzip.compress(("\n".join(good_p[15:]) + "\n").encode()))
    (p / "empty.log").write_bytes(b"")
    (m / "a.log").write_bytes(
        ("\n".join(good_m[:9]) + "\n").encode()
        + b'{"request_id": "\xff\xfe"}\n'
        + ("\n".join(good_m[9:] + [json_line("id-0")])).encode()  # a duplicate id
        + b"\n"
        + b'{"request_id": "cut-sh'  # truncated last line, no newline
    )
    return [p], [m]


def test_conservation_holds_with_bad_lines_mixed_in(tmp_path: Path) -> None:
    primary, mirror = write_corpus(tmp_path)
    result = shadowdiff.run(
        primary=[str(x) for x in primary], mirror=[str(x) for x in mirror], out=tmp_path / "out"
    )
    figures = result.manifest["conservation"]
    assert figures["primary"] == {
        "read": 23,  # 20 good + 2 bad lines + the empty file
        "paired": 17,  # 20 ids, minus 2 the mirror lacks, minus the duplicated id-0
        "orphaned": 2,
        "duplicates": 1,
        "rejected": 3,
    }
    assert figures["mirror"] == {
        "read": 21,  # 18 good + 1 duplicate + 1 not UTF-8 + 1 truncated
        "paired": 17,
        "orphaned": 0,
        "duplicates": 2,
        "rejected": 2,
    }
    con = shadowdiff.open(result.out)
    reasons = dict(con.sql("SELECT location, reason FROM rejects").fetchall())
    a = primary[0] / "a.log"
    assert set(reasons) == {
        f"{a}:11",
        f"{a}:12",
        f"{primary[0] / 'empty.log'}:0",
        f"{mirror[0] / 'a.log'}:10",
        f"{mirror[0] / 'a.log'}:21",
    }
    assert "UTF-8" in reasons[f"{mirror[0] / 'a.log'}:10"]
    assert "truncated" in reasons[f"{mirror[0] / 'a.log'}:21"]
    outcomes = dict(con.sql("SELECT outcome, count(*) FROM pairs GROUP BY 1").fetchall())
    assert outcomes == {"match": 16, "diverged": 1, "primary_only": 2}


def test_manifest_counts_every_outcome_in_order(tmp_path: Path) -> None:
    primary, mirror = write_corpus(tmp_path)
    result = shadowdiff.run(
        primary=[str(x) for x in primary], mirror=[str(x) for x in mirror], out=tmp_path / "out"
    )
    outcomes = result.manifest["outcomes"]
    assert list(outcomes.items()) == [
        ("match", 16),
        ("noise_only", 0),
        ("diverged", 1),
        ("primary_only", 2),
        ("mirror_only", 0),
    ]
    assert result.manifest["pairs"] == sum(outcomes.values())


def test_missing_input_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", "--primary", str(tmp_path / "nope.log"), "--mirror", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.log'}: no such file or directory" in result.output
    assert "Traceback" not in result.output


def test_unknown_format_is_exit_2_naming_the_formats_tried(tmp_path: Path) -> None:
    odd = tmp_path / "odd.bin"
    odd.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(main, ["run", "--primary", str(odd), "--mirror", str(odd)])
    assert result.exit_code == 2
    assert str(odd) in result.output
    assert "envoy-json" in result.output and "envoy-text" in result.output


def test_unknown_source_name_suggests_one(tmp_path: Path) -> None:
    log = SAMPLE / "primary" / "istio_json.log"
    result = CliRunner().invoke(
        main, ["run", "--primary", str(log), "--mirror", str(log), "--source", "envoy-jsn"]
    )
    assert result.exit_code == 2
    assert "Did you mean 'envoy-json'?" in result.output


def test_sql_command_formats_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "run"
    shadowdiff.run(
        primary=[str(SAMPLE / "primary" / "istio_json.log")],
        mirror=[str(SAMPLE / "mirror" / "istio_json.log")],
        out=out,
    )
    runner = CliRunner()
    query = "SELECT outcome, count(*) AS n FROM pairs GROUP BY 1 ORDER BY 1"
    table = runner.invoke(main, ["sql", str(out), query])
    assert table.exit_code == 0
    assert table.output.splitlines()[0].split() == ["outcome", "n"]
    as_json = json.loads(runner.invoke(main, ["sql", str(out), query, "--format", "json"]).output)
    assert {row["outcome"] for row in as_json} == {"match", "diverged"}
    bad = runner.invoke(main, ["sql", str(out), "SELECT nope FROM pairs"])
    assert bad.exit_code == 2
    assert "The query failed" in bad.output
    not_a_run = runner.invoke(main, ["sql", str(tmp_path), "SELECT 1"])
    assert not_a_run.exit_code == 2
    assert "not a shadowdiff run directory" in not_a_run.output


def test_same_result_for_the_text_and_json_logs_of_one_window(tmp_path: Path) -> None:
    def outcome_by_id(log: str) -> dict[str, str]:
        out = tmp_path / log
        shadowdiff.run(
            primary=[str(SAMPLE / "primary" / log)], mirror=[str(SAMPLE / "mirror" / log)], out=out
        )
        return dict(shadowdiff.open(out).sql("SELECT request_id, outcome FROM pairs").fetchall())

    assert outcome_by_id("istio_text.log") == outcome_by_id("istio_json.log")


@pytest.mark.parametrize("side_flag", ["--primary", "--mirror"])
def test_empty_file_alone_is_a_reject_not_a_crash(tmp_path: Path, side_flag: str) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    other = SAMPLE / "primary" / "istio_json.log"
    args = ["run", side_flag, str(empty), "--out", str(tmp_path / "o")]
    args += ["--mirror" if side_flag == "--primary" else "--primary", str(other)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "empty file" in result.output


@pytest.mark.parametrize("kind", ["json", "text"])
def test_a_line_longer_than_the_reader_takes_is_rejected_not_lost(
    tmp_path: Path, kind: str
) -> None:
    """DuckDB drops a line longer than its buffer without a reject row: it is found by length,
    rejected, and the lines after it keep their numbers."""
    huge = '{"path": "/big", "x": "' + "a" * (40 * 2**20) + '"}'
    if kind == "json":
        good = [json_line(f"id-{i}") for i in range(30)]
    else:
        good = [
            f'[2026-11-28T10:00:00.000Z] "GET /api/items/{i} HTTP/1.1" 200 - via_upstream - "-" '
            f'0 10 12 11 "-" "curl/8" "id-{i}" "app:8080" "127.0.0.1:9080" inbound|8080|| '
            "127.0.0.6:40000 10.0.0.5:8080 10.0.0.1:50000 - default"
            for i in range(30)
        ]
    log = tmp_path / "p.log"
    log.write_text("\n".join([*good[:10], huge, *good[10:]]) + "\n")
    result = shadowdiff.run(primary=[str(log)], mirror=[str(log)], out=tmp_path / "out")
    books = result.manifest["conservation"]["primary"]
    assert books["read"] == 31 and books["rejected"] == 1 and books["paired"] == 30
    con = shadowdiff.open(tmp_path / "out")
    reasons = con.sql("SELECT DISTINCT location, reason FROM rejects").fetchall()
    assert reasons == [(f"{log}:11", "line of 40 MB exceeds the line limit")]
    where = con.sql("SELECT DISTINCT location FROM exchanges WHERE request_id = 'id-10'")
    assert where.fetchall() == [(f"{log}:12",)]


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (json.dumps({"name": "app", "version": 2}, indent=2) + "\n", "pretty-printed JSON"),
        (json.dumps([{"name": "a"}, {"name": "b"}], indent=1), "a JSON array"),
    ],
)
def test_json_that_holds_no_access_log_is_refused_saying_what_it_is(
    tmp_path: Path, text: str, hint: str
) -> None:
    path = tmp_path / "access.json"
    path.write_text(text)
    done = CliRunner().invoke(
        main, ["run", "--primary", str(path), "--mirror", str(path), "--out", str(tmp_path / "o")]
    )
    assert done.exit_code == 2
    assert hint in done.output and "not access-log entries" in done.output
