"""Noise with a secondary: Diffy's method, on columns, with a test.

The secondary is a second copy of the primary's version that received the same mirrored
requests. Whatever differs between primary and secondary is noise by construction, so for each
endpoint × part × pattern × kind this module counts, over the requests all three sides answered
(the same requests on both sides of the comparison, whatever share of them the secondary saw):

- ``raw``: pairs where primary and mirror differ at the pattern;
- ``baseline``: pairs where primary and secondary differ at it;
- ``total``: requests of the endpoint answered by all three sides.

A pattern is **real** when the mirror differs meaningfully more often: a one-sided Fisher exact
test (``alpha``) and Diffy's thresholds on the point estimates, relative
``|raw - baseline| / (raw + baseline) > relative`` and absolute ``|raw - baseline| / total >
absolute``. It is **noise** when the point estimates are below Diffy's thresholds (or the
secondary differs as often or more) and there were enough differing pairs for the test to have
found a real difference (``raw + baseline`` at least the smallest count that can reach
``alpha``), or, with fewer, when the mirror differs no more often than the secondary.

A low-volume endpoint (fewer than ``min_pairs`` pairs, the secondary answering most of them)
cannot reach any significance; it gets an exact small-sample rule over the same requests: a
pattern that differs between primary and mirror no more often than between primary and
secondary is **noise** (all of a handful against all of the same handful is the strongest
evidence of noise such a sample can give), one that differs on the mirror where the secondary
never does is **real** (2 of 7 pairs against none). Everything else is **insufficient data**: a
pattern more frequent on the mirror that the secondary also shows on such an endpoint, an
endpoint the secondary answered too little of, a pattern seen too rarely to test, or one that
looks more frequent on the mirror without being significantly so.

Counts cannot see a field that is random on both sides but whose distribution moved (both
differ from the primary in every pair). So a pattern the counts call noise also has its values
compared, the mirror's against the secondary's (:func:`~shadowdiff.noise.values.compare`): a
different population makes it real. And counts mislead on clocks: a timestamp with one-second
resolution differs whenever two instances straddle a second, which depends on each instance's
clock skew, not on its version. So a pattern the counts call real whose every value is a
timestamp within ``clock_tolerance_s`` of the primary's, in the primary's format, or a number
within ``track_relative`` of the primary's, both ways and not by one constant
(:func:`~shadowdiff.noise.values.row_wise`), is noise.

The primary × secondary differences come from the very code that diffs primary × mirror: a second
DuckDB connection sees the secondary as the mirror and runs pairing, status and message diffs.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff.diff.messages import message_diffs
from shadowdiff.diff.rules import Rules
from shadowdiff.diff.status import status_diffs
from shadowdiff.noise.thresholds import Thresholds
from shadowdiff.noise.values import Finding, compare, row_wise
from shadowdiff.noise.verdicts import Verdict, VerdictName, follows_body
from shadowdiff.noise.volatile import sample
from shadowdiff.pair import pair

AS_MIRROR = """
CREATE TEMP VIEW exchanges AS
SELECT * REPLACE (CASE side WHEN 'secondary' THEN 'mirror' ELSE side END AS side)
FROM exchanges_arrow WHERE side IN ('primary', 'secondary')
"""

COUNTS = """
WITH common AS (
    SELECT b.request_id FROM pairs_base b JOIN baseline_pairs s USING (request_id)
    WHERE b.orphan IS NULL),
raw AS (
    SELECT d.endpoint, d.part, d.pattern, d.kind,
           count(DISTINCT d.request_id) FILTER (WHERE c.request_id IS NOT NULL) AS raw,
           count(DISTINCT d.request_id) AS raw_all
    FROM diffs d LEFT JOIN common c ON c.request_id = d.request_id
    WHERE NOT d.noise GROUP BY ALL),
base AS (
    SELECT d.endpoint, d.part, d.pattern, d.kind,
           count(DISTINCT d.request_id) FILTER (WHERE c.request_id IS NOT NULL) AS baseline,
           count(DISTINCT d.request_id) AS baseline_all
    FROM baseline_diffs d LEFT JOIN common c ON c.request_id = d.request_id
    WHERE NOT d.noise GROUP BY ALL)
SELECT coalesce(r.endpoint, b.endpoint) AS endpoint, coalesce(r.part, b.part) AS part,
       coalesce(r.pattern, b.pattern) AS pattern, coalesce(r.kind, b.kind) AS kind,
       coalesce(r.raw, 0)::BIGINT, coalesce(r.raw_all, 0)::BIGINT,
       coalesce(b.baseline, 0)::BIGINT, coalesce(b.baseline_all, 0)::BIGINT
FROM raw r FULL OUTER JOIN base b
     ON r.endpoint IS NOT DISTINCT FROM b.endpoint AND r.part = b.part
        AND r.pattern = b.pattern AND r.kind = b.kind
ORDER BY ALL
"""

ENDPOINTS = """
SELECT b.endpoint, count(*)::BIGINT AS mirror_pairs,
       count(s.request_id)::BIGINT AS common,
       (SELECT count(*) FROM baseline_pairs x
        WHERE x.endpoint IS NOT DISTINCT FROM b.endpoint)::BIGINT AS secondary_pairs
FROM pairs_base b LEFT JOIN baseline_pairs s USING (request_id)
WHERE b.orphan IS NULL GROUP BY ALL
"""


def has_secondary(exchanges: pa.Table) -> bool:
    """Whether the run has a secondary side at all (then its verdicts rest on it)."""
    return bool(pc.any(pc.equal(exchanges.column("side"), "secondary")).as_py())


def prepare(
    con: duckdb.DuckDBPyConnection, exchanges: pa.Table, compared: bool, rules: Rules
) -> None:
    """Diff every primary × secondary pair the way primary × mirror pairs are diffed, into the
    tables ``baseline_diffs`` (``schema.DIFFS`` rows) and ``baseline_pairs`` (request_id,
    endpoint, primary_status, secondary_status) of ``con``; ``compared``: whether the run's
    exchanges hold anything the message diff compares."""
    side = duckdb.connect()
    try:
        side.register("exchanges_arrow", exchanges)
        side.execute(AS_MIRROR)
        pair(side)
        message_diffs(side, compared, rules)
        diffs = _arrow(
            side.sql(f"{status_diffs(side).sql_query()} UNION ALL SELECT * FROM message_diffs")
        )
        pairs = _arrow(
            side.sql(
                "SELECT request_id, endpoint, primary_status, mirror_status AS secondary_status "
                "FROM pairs_base WHERE orphan IS NULL"
            )
        )
    finally:
        side.close()
    for name, table in (("baseline_diffs", diffs), ("baseline_pairs", pairs)):
        con.register(f"{name}_arrow", table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
        con.unregister(f"{name}_arrow")


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    return relation.to_arrow_table()


def judge(con: duckdb.DuckDBPyConnection, t: Thresholds) -> list[Verdict]:
    """A verdict for every pattern seen between primary and mirror or primary and secondary."""
    coverage = {
        endpoint: (int(mirror), int(common), int(secondary))
        for endpoint, mirror, common, secondary in con.sql(ENDPOINTS).fetchall()
    }
    counts = con.sql(COUNTS).fetchall()
    decided = [(row, _counted(row, coverage.get(row[0], (0, 0, 0)), t)) for row in counts]
    # Values: of the patterns the counts call noise, the mirror's against the secondary's; of
    # those they call real, whether they are clock readings or float noise.
    values = [
        (row, name)
        for row, (name, *_rest) in decided
        if name in ("noise", "real")
        and row[3] == "changed"
        and row[1] != "status"
        and not follows_body(row[1], row[2])
        and row[5] >= t.min_rows
    ]
    mirror = sample(con, "diffs", [row[:4] for row, _ in values], t.sample)
    secondary = sample(
        con,
        "baseline_diffs",
        [row[:4] for row, name in values if name == "noise" and row[7] >= t.min_rows],
        t.sample,
    )
    verdicts = []
    for row, (name, evidence, p_value) in decided:
        endpoint, part, pattern, kind, raw, _raw_all, baseline, _baseline_all = row
        key = (endpoint, part, pattern, kind)
        total = coverage.get(endpoint, (0, 0, 0))[1]
        finding = None
        if name == "noise" and key in mirror and key in secondary:
            finding = compare(mirror[key], secondary[key], t)
            name, evidence = _with_values(evidence, finding)
        elif name == "real" and key in mirror:
            readings = row_wise(mirror[key], t)
            if readings is not None and readings.opinion == "same":
                finding = readings
                name = "noise"
                what = "a clock reading" if readings.clock else "the primary's, nearly"
                evidence = f"{evidence}; but every value is {what}: {readings.evidence}"
        reason = None
        if name == "noise" and finding is not None and finding.clock and raw > baseline:
            reason = f"baseline: {finding.label} of two clocks (±{t.clock_tolerance_s:g} s)"
        elif name == "noise" and finding is not None and finding.row_wise and raw > baseline:
            reason = f"baseline: {finding.label}"
        elif name == "noise":
            reason = (
                f"baseline: differs as often between primary and secondary "
                f"({raw} vs {baseline} of {total})"
            )
        verdicts.append(
            Verdict(
                endpoint,
                part,
                pattern,
                kind,
                int(raw),
                int(baseline),
                total,
                p_value,
                name,
                evidence,
                reason,
                finding.check if finding is not None and name == "noise" else None,
                finding is not None and finding.row_wise,
            )
        )
    return verdicts


def _counted(
    row: tuple[object, ...], coverage: tuple[int, int, int], t: Thresholds
) -> tuple[VerdictName, str, float | None]:
    """The verdict the counts give, its evidence and the Fisher p-value."""
    _endpoint, part, pattern, _kind, raw, raw_all, baseline, baseline_all = row
    r, b = int(raw), int(baseline)  # type: ignore[call-overload]
    mirror_pairs, total, secondary_pairs = coverage
    if follows_body(str(part), str(pattern)):
        return "real", "follows the body", None  # settled per pair once the body is judged
    cover = ""
    if secondary_pairs < mirror_pairs / 2:
        cover = (
            f"; the secondary answered only {secondary_pairs} of the {mirror_pairs} requests the "
            "mirror answered"
        )
    if total < t.min_pairs and mirror_pairs < t.min_pairs and total and not cover:
        return _small_sample(r, b, total, t)
    if total < t.min_pairs:
        return (
            "insufficient data",
            f"differs in {raw_all} primary/mirror and {baseline_all} primary/secondary pairs, but "
            f"only {total} requests of this endpoint reached all three sides: a verdict needs "
            f"≥ {t.min_pairs} (min_pairs){cover}",
            None,
        )
    p_value = fisher(r, b, total)
    relative = abs(r - b) / (r + b) if r + b else 0.0
    absolute = abs(r - b) / total
    counted = (
        f"mirror {r}/{total} vs secondary {b}/{total} requests (Fisher one-sided "
        f"p={p_value:.2g}; relative {relative:.0%}, absolute {absolute:.2%})"
    )
    meaningful = r > b and relative > t.relative and absolute > t.absolute
    if meaningful and p_value < t.alpha:
        return (
            "real",
            f"{counted}: more often on the mirror (p < {t.alpha:g}, relative > "
            f"{t.relative:.0%}, absolute > {t.absolute:.2%}){cover}",
            p_value,
        )
    needed = smallest_testable(total, t.alpha)
    if r + b < needed and b > 0 and r <= b:
        return (
            "noise",
            f"{counted}: too few differing pairs for a test, but no more often on the mirror "
            "than on the secondary",
            p_value,
        )
    if r + b < needed:
        return (
            "insufficient data",
            f"{counted}: {r + b} differing pairs cannot reach p < {t.alpha:g} with {total} "
            f"requests; a verdict needs ≥ {needed}{cover}",
            p_value,
        )
    if meaningful:
        return (
            "insufficient data",
            f"{counted}: more often on the mirror, but not significantly (p ≥ {t.alpha:g}){cover}",
            p_value,
        )
    return (
        "noise",
        f"{counted}: differs as often between primary and secondary (relative ≤ "
        f"{t.relative:.0%} or absolute ≤ {t.absolute:.2%}, or more often on the secondary)",
        p_value,
    )


def _small_sample(
    raw: int, baseline: int, total: int, t: Thresholds
) -> tuple[VerdictName, str, float | None]:
    """The exact rule of a low-volume endpoint (see the module docstring): its verdict,
    evidence and (no) p-value."""
    seen = (
        f"differs in {raw} primary/mirror and {baseline} primary/secondary pairs of the same "
        f"{total} requests (a low-volume endpoint: fewer than {t.min_pairs} pairs, min_pairs)"
    )
    if baseline > 0 and raw <= baseline:
        return (
            "noise",
            f"{seen}: no more often on the mirror than on the secondary (exact small-sample rule)",
            None,
        )
    if baseline == 0 and raw > 0:
        return (
            "real",
            f"{seen}: on the mirror, and never between primary and secondary (exact "
            "small-sample rule)",
            None,
        )
    return (
        "insufficient data",
        f"{seen}: more often on the mirror than on the secondary, too few requests to tell",
        None,
    )


def _with_values(evidence: str, finding: Finding) -> tuple[VerdictName, str]:
    if finding.opinion == "different":
        return (
            "real",
            f"{evidence}; but the mirror's values are not the secondary's: {finding.evidence}",
        )
    if finding.opinion == "same":
        return "noise", f"{evidence}; values alike: {finding.evidence}"
    return "noise", f"{evidence}; values not compared: {finding.evidence}"


def fisher(raw: int, baseline: int, total: int) -> float:
    """One-sided Fisher exact p-value: does the mirror differ more often than the secondary,
    ``raw`` and ``baseline`` of ``total`` requests each?"""
    if raw + baseline == 0:
        return 1.0
    from scipy import stats  # type: ignore[import-untyped]  # slow to import

    result = stats.fisher_exact(
        [[raw, total - raw], [baseline, total - baseline]], alternative="greater"
    )
    return float(result.pvalue)


def smallest_testable(total: int, alpha: float) -> int:
    """The fewest differing pairs that can reach ``p < alpha`` at all: every one of them on the
    mirror (the Fisher p-value of k of k is C(total, k) / C(2 total, k))."""
    p, k = 1.0, 0
    while p >= alpha and k < total:
        p *= (total - k) / (2 * total - k)
        k += 1
    return k if p < alpha else total + 1
