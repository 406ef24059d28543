from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from markupsafe import escape
from rundirs import ITEMS, XSS_ID, XSS_IMG, XSS_PATH, XSS_SCRIPT, diff, items_specs

from shadowdiff import report
from shadowdiff.cli import main
from shadowdiff.report import markdown

ROOT = Path(__file__).resolve().parents[2]
TOP_KEYS = [
    "format",
    "format_version",
    "run",
    "pairing",
    "endpoints",
    "signatures",
    "noise",
    "latency",
    "examples",
    "baseline",
]


def test_report_writes_three_files_into_the_run_directory_by_default(hostile_run: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(hostile_run)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    expected = [hostile_run / n for n in ("report.html", "report.md", "report.json")]
    assert result.output.splitlines() == [str(p) for p in expected]
    assert all(p.stat().st_size > 0 for p in expected)


def test_report_paths_can_be_chosen(hostile_run: Path, tmp_path: Path) -> None:
    html, md, js = tmp_path / "a/r.html", tmp_path / "b/r.md", tmp_path / "c/r.json"
    result = CliRunner().invoke(
        main,
        ["report", str(hostile_run), "--html", str(html), "--markdown", str(md), "--json", str(js)],
    )
    assert result.exit_code == 0, result.output
    assert html.exists() and md.exists() and js.exists()
    assert not (hostile_run / "report.html").exists()


def test_every_captured_value_is_escaped_in_the_html(hostile_run: Path) -> None:
    page = report.write(hostile_run).html.read_text(encoding="utf-8")
    # the payloads are there, as text
    assert str(escape(XSS_SCRIPT)) in page
    assert str(escape(XSS_IMG)) in page
    assert str(escape(XSS_PATH)) in page
    # and never as markup: the page has no script, no event handler, no foreign element at all
    assert "<script" not in page.lower()
    assert not re.search(r"<[^>]*\bon[a-z]+\s*=", page, re.IGNORECASE)
    assert "<img" not in page and "<svg onload" not in page


def test_the_html_is_self_contained(hostile_run: Path) -> None:
    page = report.write(hostile_run).html.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count("<svg") == 3  # a CDF per endpoint with paired latencies


def test_the_html_shows_each_section(hostile_run: Path) -> None:
    page = report.write(hostile_run).html.read_text(encoding="utf-8")
    for heading in (
        "Run summary",
        "Pairing quality",
        "Endpoints, by divergence rate",
        "Top difference patterns per endpoint",
        "Top failure signatures",
        "Noise",
        "Latency per endpoint",
        "Example diverged pairs",
    ):
        assert heading in page
    assert "ignored header" in page  # why the date header is noise
    assert "differs as often between primary and secondary" in page  # noise table evidence
    assert "insufficient data: 1 pair (at least 20 needed)" in page
    assert "mirror body is text, primary binary" in page  # pairs.note
    assert "binary, image/png, 216 bytes" in page  # a binary body: sizes, not bytes
    # the gzip body is shown decoded, and the differing field is marked
    assert re.search(r'<tr class="diff"><td>\$\.price</td>\s*<td>9\.5</td>\s*<td>10\.5</td>', page)
    assert re.search(r'<tr class="diff"><td>x-debug</td>', page)


def test_json_has_the_documented_stable_keys(hostile_run: Path) -> None:
    document = json.loads(report.write(hostile_run).json.read_text(encoding="utf-8"))
    assert list(document) == TOP_KEYS
    assert document["format"] == "shadowdiff-report" and document["format_version"] == 1
    run = document["run"]
    assert run["outcomes"] == {
        "match": 25,
        "noise_only": 5,
        "diverged": 12,
        "primary_only": 2,
        "mirror_only": 0,
    }
    assert run["paired"] == 42 and run["pairs"] == 44 and run["notes"] == 1
    assert run["window"]["seconds"] is not None
    assert document["pairing"]["orphans"] == {"primary_only": 2, "mirror_only": 0}
    assert document["pairing"]["rejects"] == 1
    assert document["pairing"]["reject_reasons"] == [
        {"reason": "not an access-log line", "count": 1}
    ]
    endpoints = document["endpoints"]
    assert [e["endpoint"] for e in endpoints] == [
        "GET /api/echo/{id}",
        "GET /static/logo.png",
        ITEMS,
    ]  # ranked by divergence rate: 100%, 100%, 25%
    items = endpoints[2]
    assert items["divergence_rate"] == 0.25 and items["primary_only"] == 2
    [price] = items["patterns"]
    assert price == {
        "part": "body",
        "pattern": "$.price",
        "kind": "changed",
        "diffs": 10,
        "pairs": 10,
        "example_request_ids": ["item-000", "item-001", "item-002"],
        "example": {"primary_value": "9.5", "mirror_value": "10.5"},
    }
    assert document["signatures"][0]["pairs"] == 10
    assert document["signatures"][0]["patterns"] == ["body $.price changed"]
    assert document["noise"]["reasons"] == [
        {
            "endpoint": ITEMS,
            "part": "header",
            "pattern": "date",
            "kind": "changed",
            "reason": "ignored header",
            "diffs": 5,
            "pairs": 5,
        }
    ]
    assert document["noise"]["verdicts"][0]["verdict"] == "noise"
    latency = {entry["endpoint"]: entry for entry in document["latency"]}
    slow = latency[ITEMS]
    assert slow["sufficient"] and slow["pairs"] == 40
    assert 1.7 < slow["ratio"]["p50"]["low"] <= slow["ratio"]["p50"]["high"] < 2.3
    assert slow["ratio"]["p99"]["estimate"] is None  # 40 pairs: too few for p99
    assert latency["GET /static/logo.png"]["note"].startswith("insufficient data")
    examples = {e["request_id"]: e for e in document["examples"]}
    assert XSS_ID in examples and examples["bin-1"]["note"]
    assert document["baseline"] is None


def test_markdown_is_short_with_the_headline_and_worst_endpoints(hostile_run: Path) -> None:
    text = report.write(hostile_run).markdown.read_text(encoding="utf-8")
    assert "**12 of 42 paired requests diverged (28.57%)**" in text
    assert "| GET /api/items/\\{id\\} |" not in text  # braces need no escaping
    assert f"| {ITEMS} | 10 | 40 | 25.00% | body $.price (changed) |" in text
    assert "### Slower on the mirror" in text
    assert len(text.splitlines()) < 40


def test_markdown_escapes_captured_text() -> None:
    assert markdown.escape("a|b <img src=x> *x* `c` [l](u)") == (
        "a\\|b \\<img src=x\\> \\*x\\* \\`c\\` \\[l\\](u)"
    )
    assert markdown.escape("two\nlines") == "two lines"


def test_baseline_comparison_in_all_three_formats(make_run: Callable[..., Path]) -> None:
    before = make_run(items_specs(slowdown=1.0))
    specs = items_specs(slowdown=2.0, diverged=20)
    for s in specs[:20]:  # price no longer differs; a new field does
        s.diffs = [diff("body", "$.stock", "added", None, 3)]
    after = make_run(specs)
    written = report.write(after, baseline=before)
    document = json.loads(written.json.read_text(encoding="utf-8"))
    b = document["baseline"]
    assert b["dir"] == str(before)
    assert [(p["pattern"], p["kind"], p["pairs"]) for p in b["new_patterns"]] == [
        ("$.stock", "added", 20)
    ]
    assert [(p["pattern"], p["pairs"]) for p in b["gone_patterns"]] == [("$.price", 10)]
    [items] = b["endpoints"]
    assert items["divergence_rate"] == 0.5 and items["baseline_divergence_rate"] == 0.25
    assert items["divergence_rate_change"] == 0.25
    p50 = items["latency"]["p50"]
    assert 1.8 < p50["ratio"] < 2.2 and 0.9 < p50["baseline_ratio"] < 1.1
    assert p50["ratio_change"] > 0.7
    page = written.html.read_text(encoding="utf-8")
    assert "Compared with the baseline run" in page and "$.stock" in page
    assert "+25.00 pp" in page
    text = written.markdown.read_text(encoding="utf-8")
    assert "1 new pattern(s), 1 gone." in text
    assert f"- new: {ITEMS}: body $.stock (added), 20 pair(s)" in text
    assert "+25.00 pp" in text


def test_the_cli_compares_with_a_baseline(make_run: Callable[..., Path]) -> None:
    before = make_run(items_specs())
    after = make_run(items_specs())
    result = CliRunner().invoke(main, ["report", str(after), "--baseline", str(before)])
    assert result.exit_code == 0, result.output
    document = json.loads((after / "report.json").read_text(encoding="utf-8"))
    assert document["baseline"]["new_patterns"] == []
    missing = CliRunner().invoke(main, ["report", str(after), "--baseline", str(after / "nope")])
    assert missing.exit_code == 2
    assert "not a shadowdiff run directory" in missing.output


def test_pairs_without_a_note_column_and_runs_without_diffs_are_fine(
    make_run: Callable[..., Path],
) -> None:
    run = make_run(items_specs(diverged=0, noise_only=0), note_column=False)
    document = report.build(run)
    assert document["run"]["notes"] is None
    assert document["examples"] == [] and document["signatures"] == []
    page = report.write(run).html.read_text(encoding="utf-8")
    assert "No diverged pairs." in page


def test_an_empty_run_still_reports(make_run: Callable[..., Path]) -> None:
    run = make_run([])
    written = report.write(run)
    document = json.loads(written.json.read_text(encoding="utf-8"))
    assert document["run"]["pairs"] == 0 and document["run"]["divergence_rate"] is None
    assert "No endpoint diverged." in written.markdown.read_text(encoding="utf-8")


def test_report_on_the_sample_data(sample_text_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "sample"
    shutil.copytree(sample_text_run, out)  # the report is written into the run directory
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "report.json").read_text(encoding="utf-8"))
    worst = document["endpoints"][0]
    assert worst["endpoint"] == "GET /api/orders/{id}" and worst["diverged"] == 8
    assert worst["patterns"][0]["example"] == {"primary_value": "200", "mirror_value": "500"}
    search = next(e for e in document["latency"] if e["endpoint"] == "GET /api/search")
    assert search["ratio"]["p50"]["low"] > 10 and search["mann_whitney_p"] < 0.001
