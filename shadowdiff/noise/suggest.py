"""``shadowdiff noise DIR --suggest-rules``: an ``[ignore]`` block to paste into a rules file.

Ignore rules hold for every endpoint, so a pattern is suggested only when it is noise on some
endpoint and real on none (an endpoint with insufficient data is named in the comment: the rule
would cover it too), and not already ignored by a rule. Status differences
cannot be ignored by a rule, and headers that follow the body (``content-length``, …) stop being
compared once the body's noise is ignored, so neither is suggested. The block is valid TOML; each
entry carries its evidence as a comment, and the patterns left out are listed with the reason.

>>> row = NoiseRow("GET /a", "body", "$.ts", "changed", 50, None, 50, None, "noise", "timestamps")
>>> print(ignore_block([row]).splitlines()[2:5])
['[ignore]', 'body = [', '    "$.ts",  # noise on GET /a (50 pairs)']
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from shadowdiff.noise.verdicts import NoiseRow, follows_body


def ignore_block(rows: Sequence[NoiseRow]) -> str:
    """The ``[ignore]`` block for the noise patterns of ``rows`` (see the module docstring)."""
    by_pattern: dict[tuple[str, str], list[NoiseRow]] = defaultdict(list)
    for row in rows:
        if row.raw_count > 0:  # seen between primary and mirror
            by_pattern[(row.part, row.pattern)].append(row)
    chosen: dict[str, list[str]] = {"headers": [], "body": []}
    left_out: list[str] = []
    for (part, pattern), found in sorted(by_pattern.items()):
        noise = [r for r in found if r.verdict == "noise"]
        if not noise or any(r.by_rule for r in found):
            continue
        if part == "status":
            left_out.append(f"status: noise on {_where(noise)}, but a rule cannot ignore it")
            continue
        if follows_body(part, pattern):
            continue  # no longer compared once the body's noise is ignored
        real = [r for r in found if r.verdict == "real"]
        if real:
            left_out.append(f"{pattern}: noise on {_where(noise)}, but real on {_where(real)}")
            continue
        pairs = sum(r.raw_count for r in noise)
        comment = f"noise on {_where(noise)} ({pairs} pairs)"
        unsure = [r for r in found if r.verdict == "insufficient data"]
        if unsure:  # the rule would cover them too: say so
            comment += f"; insufficient data on {_where(unsure)}"
        chosen["headers" if part == "header" else "body"].append(
            f"    {json.dumps(pattern)},  # {comment}"
        )
    lines = [
        "# Suggested by `shadowdiff noise --suggest-rules`: patterns judged noise, and real on no",
        "# endpoint. An ignore rule holds on every endpoint: check them before pasting.",
        "[ignore]",
    ]
    for key in ("headers", "body"):
        if chosen[key]:
            lines += [f"{key} = [", *chosen[key], "]"]
    if not chosen["headers"] and not chosen["body"]:
        lines.append("# nothing to suggest: no pattern is noise and real nowhere")
    for note in left_out:
        lines.append(f"# not suggested: {note}")
    return "\n".join(lines)


def _where(rows: Sequence[NoiseRow]) -> str:
    endpoints = sorted({r.endpoint or "(no endpoint)" for r in rows})
    if len(endpoints) <= 2:
        return " and ".join(endpoints)
    return f"{len(endpoints)} endpoints"
