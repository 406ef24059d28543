"""Low-volume endpoints: evidence pooled across endpoints by part, pattern and kind.

An endpoint requested a handful of times (fewer than ``min_pairs`` pairs) cannot show that a
field is volatile: its values are too few to test. But services stamp the same fields on every
endpoint (a ``served_at``, a ``trace_id``, a nonce header), so what the bigger endpoints showed
about a pattern carries over: a pattern × kind still ``insufficient data`` on a low-volume
endpoint becomes **noise** when it is noise on at least one other endpoint where it was judged
and real on none. The rows then pass the donor's per-row check (the noise verdict with the most
differing pairs: a timestamp in its format, an id of its shape, …), so a value that breaks it
stays real; without a secondary, a donor whose finding needs a volatile field (random values,
not a clock) also needs the small endpoint's pattern to differ in ``volatile_rate`` of its
pairs. A pattern seen nowhere else stays ``insufficient data``: a field that changes in 2 of 7
requests and exists only there is left in front of the user.

Statuses are never pooled (a status belongs to its endpoint), nor the headers that follow the
body (their verdict is their pair's body's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import duckdb

from shadowdiff.noise.thresholds import Thresholds
from shadowdiff.noise.verdicts import Mode, Verdict, follows_body

ENDPOINT_PAIRS = """
SELECT endpoint, count(*)::BIGINT FROM pairs_base WHERE orphan IS NULL GROUP BY ALL
"""

PatternKey = tuple[str, str, str]  # part, pattern, kind


def pool(
    con: duckdb.DuckDBPyConnection, verdicts: Sequence[Verdict], mode: Mode, t: Thresholds
) -> list[Verdict]:
    """``verdicts`` with the ``insufficient data`` ones of low-volume endpoints settled by the
    other endpoints' verdicts where they allow it (see the module docstring)."""
    pairs = {endpoint: int(n) for endpoint, n in con.sql(ENDPOINT_PAIRS).fetchall()}
    judged: dict[PatternKey, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        if v.verdict in ("noise", "real") and not v.by_rule and _poolable(v):
            judged[(v.part, v.pattern, v.kind)].append(v)
    out = []
    for v in verdicts:
        small = pairs.get(v.endpoint, 0) < t.min_pairs
        if v.verdict == "insufficient data" and small and _poolable(v):
            others = [
                d for d in judged.get((v.part, v.pattern, v.kind), []) if d.endpoint != v.endpoint
            ]
            out.append(_pooled(v, others, mode, t))
        else:
            out.append(v)
    return out


def _poolable(v: Verdict) -> bool:
    return v.part != "status" and not follows_body(v.part, v.pattern)


def _pooled(v: Verdict, others: list[Verdict], mode: Mode, t: Thresholds) -> Verdict:
    noise = [d for d in others if d.verdict == "noise"]
    real = [d for d in others if d.verdict == "real"]
    if not noise:
        return v
    if real:
        return replace(
            v,
            evidence=f"{v.evidence}; not pooled: noise on {_names(noise)}, but real on "
            f"{_names(real)}",
        )
    donor = max(noise, key=lambda d: (d.raw_count, d.endpoint or ""))
    rate = v.raw_count / max(v.total, 1)
    if mode == "volatile" and not donor.row_wise and rate < t.volatile_rate:
        return replace(
            v,
            evidence=f"{v.evidence}; not pooled: noise on {_names(noise)}, where it differs "
            f"in ≥ {t.volatile_rate:.0%} of pairs (volatile_rate), but here in {rate:.0%}",
        )
    what = f" ({donor.reason.split(': ', 1)[-1]})" if mode == "volatile" and donor.reason else ""
    return replace(
        v,
        verdict="noise",
        evidence=(
            f"{v.evidence}; pooled: noise on every other endpoint where it was judged "
            f"({_names(noise)}), e.g. on {donor.endpoint}: {donor.evidence}"
        ),
        reason=f"{mode}: noise on {len(noise)} other endpoint{'s' if len(noise) > 1 else ''}{what}",
        check=donor.check,
        row_wise=donor.row_wise,
    )


def _names(verdicts: Sequence[Verdict]) -> str:
    endpoints = sorted({v.endpoint or "(no endpoint)" for v in verdicts})
    if len(endpoints) <= 3:
        return ", ".join(endpoints)
    return f"{', '.join(endpoints[:3])} and {len(endpoints) - 3} more"
