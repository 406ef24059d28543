"""``--suggest-rules``: only patterns that are noise and real nowhere, as a valid rules file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner

from shadowdiff.cli import main
from shadowdiff.diff.rules import Rules
from shadowdiff.noise.suggest import ignore_block
from shadowdiff.noise.summary import Summary
from shadowdiff.noise.verdicts import NoiseRow, VerdictName, part_of


def row(
    endpoint: str, pattern: str, verdict: VerdictName, kind: str = "changed", evidence: str = "x"
) -> NoiseRow:
    return NoiseRow(
        endpoint, part_of(pattern), pattern, kind, 40, None, 50, None, verdict, evidence
    )


def test_noise_everywhere_is_suggested_and_real_anywhere_is_not() -> None:
    block = ignore_block(
        [
            row("GET /a", "$.served_at", "noise"),
            row("GET /b", "$.served_at", "noise"),
            row("GET /c", "$.served_at", "insufficient data"),
            row("GET /a", "$.status", "noise"),
            row("GET /b", "$.status", "real"),
            row("GET /a", "x-trace", "noise"),
            row("GET /a", "content-length", "noise"),
            row("GET /a", "status", "noise"),
            row("GET /a", "$.rare", "insufficient data"),
            row("GET /a", "$.ignored", "noise", evidence="rule: ignore $.ignored (a rule …)"),
        ]
    )
    parsed = tomllib.loads(block)
    Rules.from_mapping(parsed)
    assert parsed["ignore"] == {"headers": ["x-trace"], "body": ["$.served_at"]}
    assert "insufficient data on GET /c" in block  # the rule would cover it too: said
    assert "# not suggested: $.status: noise on GET /a, but real on GET /b" in block
    assert "a rule cannot ignore it" in block  # status
    assert "$.rare" not in block and "$.ignored" not in block and "content-length" not in block


def test_a_pattern_noise_for_one_kind_and_real_for_another_is_not_suggested() -> None:
    block = ignore_block(
        [row("GET /a", "$.x", "noise"), row("GET /a", "$.x", "real", kind="removed")]
    )
    assert tomllib.loads(block) == {"ignore": {}}
    assert "nothing to suggest" in block


def test_the_text_groups_by_endpoint_and_prints_thresholds() -> None:
    summary = Summary((row("GET /a", "$.x", "noise", evidence="timestamps, two clocks"),), False)
    text = summary.text()
    assert "from the values (no secondary)" in text
    assert "GET /a" in text and "timestamps, two clocks" in text
    assert "value_alpha = 0.0001" in text
    assert summary.counts == {"noise": 1, "real": 0, "insufficient data": 0}


def test_noise_command_on_a_directory_that_is_no_run(tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["noise", str(tmp_path)])
    assert done.exit_code == 2
    assert "not a shadowdiff run directory" in done.output
