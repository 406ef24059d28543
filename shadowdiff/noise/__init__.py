"""Noise detection: which differences are real changes and which differ for reasons that have
nothing to do with the new version (clocks, generated ids, random samples).

The stage runs after the diff stage, on the DuckDB tables ``pairs_base`` and ``diffs``, and
before the pairs' outcomes are derived (:func:`~shadowdiff.diff.outcome.finish_pairs` reads
``diffs.noise``). :func:`detect` judges every endpoint × pattern × kind:

- with a ``secondary`` side, against the differences between primary and secondary
  (:mod:`~shadowdiff.noise.baseline`, ``noise_reason`` ``baseline: …``);
- without one, from the values themselves (:mod:`~shadowdiff.noise.volatile`,
  ``volatile: …``);
- and in both modes, a low-volume endpoint's patterns that its own pairs cannot settle borrow
  the verdict of the other endpoints (:mod:`~shadowdiff.noise.pooled`).

It sets ``noise``/``noise_reason`` of every ``diffs`` row (rows a rule already made noise stay
``rule: …``) and returns the ``noise`` table: counts, p-value, verdict (``noise``, ``real``,
``insufficient data``) and the evidence in words. The thresholds are
:class:`~shadowdiff.noise.thresholds.Thresholds`.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from shadowdiff.diff.messages import captured
from shadowdiff.diff.rules import DEFAULT as DEFAULT_RULES
from shadowdiff.diff.rules import Rules
from shadowdiff.noise import baseline, pooled, verdicts, volatile
from shadowdiff.noise.thresholds import DEFAULT, Thresholds
from shadowdiff.noise.values import MACROS
from shadowdiff.noise.verdicts import Mode

__all__ = ["DEFAULT", "Thresholds", "detect", "judge"]


def detect(
    con: duckdb.DuckDBPyConnection,
    exchanges: pa.Table,
    rules: Rules = DEFAULT_RULES,
    thresholds: Thresholds = DEFAULT,
) -> pa.Table:
    """Judge the differences in ``con``'s ``diffs`` table (updated in place) and return the
    ``noise`` table. ``exchanges`` is the normalized exchanges table, which holds the secondary
    side if there is one; ``rules`` are the run's rules, used to diff the secondary."""
    secondary = baseline.has_secondary(exchanges)
    if secondary:
        baseline.prepare(con, exchanges, captured(exchanges, rules), rules)
    return judge(con, secondary, thresholds, exchanges)


def judge(
    con: duckdb.DuckDBPyConnection,
    secondary: bool,
    thresholds: Thresholds = DEFAULT,
    exchanges: pa.Table | str | None = None,
) -> pa.Table:
    """:func:`detect` once the baseline's tables are in ``con`` (``baseline_diffs`` and
    ``baseline_pairs``, with a ``secondary`` side): a run diffs its buckets' secondaries as it
    diffs their mirrors. ``exchanges``: the exchanges with their bodies, as a table or the name
    of a view of ``con``."""
    con.execute(MACROS)
    mode: Mode = "baseline" if secondary else "volatile"
    listed = verdicts.rule_verdicts(con)
    judged = baseline.judge(con, thresholds) if secondary else volatile.judge(con, thresholds)
    judged = pooled.pool(con, judged, mode, thresholds)
    verdicts.apply(con, judged, mode, exchanges)
    return verdicts.table([*listed, *verdicts.settle(con, judged, mode)])
