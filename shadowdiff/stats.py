"""Latency statistics per endpoint, over paired requests (both sides answered the same request).

For each endpoint:

- **paired deltas**: ``mirror − primary`` for the same request (``pairs.latency_delta_ms``),
  summarised by their p50/p90/p99 and mean;
- **quantile ratios** ``mirror / primary`` for p50, p90 and p99, each with a percentile
  bootstrap confidence interval (95 % by default). The bootstrap resamples *pairs*, so both sides
  of a request stay together; it is seeded (per endpoint, from ``seed`` and the endpoint name, so
  a figure does not change when other endpoints come or go) and vectorised with numpy;
- a **Mann-Whitney U** two-sided p-value: do the two sides' latencies come from one distribution?

Endpoints with fewer than ``MIN_PAIRS`` (20) pairs get no ratio, interval or p-value: their
``note`` says "insufficient data" and the figures are ``None``. Quantiles of both sides are still
given, as description. A tail quantile needs more: its ratio is only estimated when at least
``MIN_TAIL_PAIRS`` (5) pairs lie beyond it, so p90 needs 50 pairs and p99 needs 500; below that the
bootstrap interval of a tail quantile is mostly the spread of a few extreme requests, and that
quantile's ratio says "insufficient data" too.

Access logs record whole milliseconds, so many quantiles are 0 or 1 ms. A ratio of two such
values says more about rounding than about speed (0 → 1 ms would be "infinitely slower"), so
quantiles below ``LATENCY_FLOOR_MS`` (1 ms) count as 1 ms in every ratio, the point estimate and
each bootstrap resample alike.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> primary = rng.lognormal(3, 0.4, 500)
>>> s = compare(primary, primary * 2)
>>> round(s.ratio("p50").estimate, 2), s.mann_whitney_p < 0.001
(2.0, True)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

MIN_PAIRS = 20
MIN_TAIL_PAIRS = 5
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
QUANTILE_NAMES = tuple(name for name, _ in QUANTILES)
LATENCY_FLOOR_MS = 1.0
RESAMPLES = 2000
CONFIDENCE = 0.95
# The pair bootstrap works on (resamples × pairs) matrices in chunks of at most this many cells,
# so memory stays bounded for endpoints with many pairs.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Ratio:
    """``mirror / primary`` for one quantile: the point estimate and its confidence interval;
    all ``None`` (and ``note`` set) when there are too few pairs for this quantile."""

    quantile: str  # "p50", "p90", "p99"
    estimate: float | None
    low: float | None
    high: float | None
    note: str | None = None

    @property
    def sufficient(self) -> bool:
        return self.estimate is not None


@dataclass(frozen=True)
class LatencyStats:
    """Latency statistics of one endpoint. With ``sufficient`` false (fewer than ``MIN_PAIRS``
    pairs) ``ratios`` and ``deltas`` are empty, ``mann_whitney_p`` is ``None`` and ``note`` says
    so."""

    endpoint: str | None
    n: int
    sufficient: bool
    primary: dict[str, float | None]  # quantile name → ms
    mirror: dict[str, float | None]
    deltas: dict[str, float]  # "p50", "p90", "p99", "mean" of mirror − primary, ms
    ratios: tuple[Ratio, ...]
    mann_whitney_p: float | None
    confidence: float = CONFIDENCE
    note: str | None = None

    def ratio(self, quantile: str) -> Ratio:
        """The ratio for ``quantile`` ("p50", "p90", "p99"); ``KeyError`` when there is none."""
        for r in self.ratios:
            if r.quantile == quantile:
                return r
        raise KeyError(quantile)


def required_pairs(level: float, min_pairs: int = MIN_PAIRS) -> int:
    """Pairs needed for a ratio at quantile ``level``: ``MIN_PAIRS``, and ``MIN_TAIL_PAIRS`` beyond
    the quantile (p50: 20, p90: 50, p99: 500)."""
    return max(min_pairs, math.ceil(round(MIN_TAIL_PAIRS / (1.0 - level), 6)))


def insufficient_note(n: int, needed: int) -> str:
    return f"insufficient data: {n} pair{'s' if n != 1 else ''} (at least {needed} needed)"


def compare(
    primary: Sequence[float] | np.ndarray,
    mirror: Sequence[float] | np.ndarray,
    *,
    endpoint: str | None = None,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    min_pairs: int = MIN_PAIRS,
    floor_ms: float = LATENCY_FLOOR_MS,
) -> LatencyStats:
    """Statistics of paired latencies: ``primary[i]`` and ``mirror[i]`` are the same request."""
    p = np.asarray(primary, dtype=np.float64)
    m = np.asarray(mirror, dtype=np.float64)
    if p.shape != m.shape or p.ndim != 1:
        raise ValueError("primary and mirror must be 1-d and of the same length (paired)")
    keep = ~(np.isnan(p) | np.isnan(m))
    p, m = p[keep], m[keep]
    n = int(p.size)
    levels = [q for _, q in QUANTILES]
    primary_q: dict[str, float | None] = dict.fromkeys(QUANTILE_NAMES)
    mirror_q: dict[str, float | None] = dict.fromkeys(QUANTILE_NAMES)
    if n:
        primary_q.update(zip(QUANTILE_NAMES, np.quantile(p, levels).tolist(), strict=True))
        mirror_q.update(zip(QUANTILE_NAMES, np.quantile(m, levels).tolist(), strict=True))
    if n < min_pairs:
        return LatencyStats(
            endpoint=endpoint,
            n=n,
            sufficient=False,
            primary=primary_q,
            mirror=mirror_q,
            deltas={},
            ratios=(),
            mann_whitney_p=None,
            confidence=confidence,
            note=insufficient_note(n, min_pairs),
        )
    delta = m - p
    deltas = dict(zip(QUANTILE_NAMES, np.quantile(delta, levels).tolist(), strict=True))
    deltas["mean"] = float(delta.mean())
    boot = bootstrap_ratios(
        p, m, levels, resamples=resamples, rng=_rng(seed, endpoint), floor_ms=floor_ms
    )
    alpha = (1.0 - confidence) / 2.0
    bounds = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    ratios: list[Ratio] = []
    for i, (name, level) in enumerate(QUANTILES):
        needed = required_pairs(level, min_pairs)
        if n < needed:
            ratios.append(Ratio(name, None, None, None, insufficient_note(n, needed)))
            continue
        estimate = _ratio(mirror_q[name], primary_q[name], floor_ms)
        ratios.append(Ratio(name, estimate, float(bounds[0, i]), float(bounds[1, i])))
    return LatencyStats(
        endpoint=endpoint,
        n=n,
        sufficient=True,
        primary=primary_q,
        mirror=mirror_q,
        deltas=deltas,
        ratios=tuple(ratios),
        mann_whitney_p=mann_whitney(p, m),
        confidence=confidence,
    )


def bootstrap_ratios(
    primary: np.ndarray,
    mirror: np.ndarray,
    levels: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    rng: np.random.Generator | None = None,
    floor_ms: float = LATENCY_FLOOR_MS,
) -> np.ndarray:
    """``resamples × len(levels)`` bootstrap replicates of ``quantile(mirror) / quantile(primary)``
    over pairs drawn with replacement (one draw for both sides of a request).

    Access logs give whole milliseconds, so pairs repeat: when there are few distinct
    ``(primary, mirror)`` values, a resample is drawn as multinomial counts over those values
    (the same distribution as drawing pairs, in ``resamples × distinct`` work instead of
    ``resamples × pairs``); otherwise pairs are drawn by index."""
    generator = rng if rng is not None else np.random.default_rng(0)
    n = primary.size
    cells, counts = np.unique(np.column_stack([primary, mirror]), axis=0, return_counts=True)
    if cells.shape[0] * 4 <= n:
        qp, qm = _bootstrap_cells(cells, counts, levels, resamples, generator)
    else:
        qp, qm = _bootstrap_pairs(primary, mirror, levels, resamples, generator)
    return np.maximum(qm, floor_ms) / np.maximum(qp, floor_ms)


def _bootstrap_pairs(
    primary: np.ndarray,
    mirror: np.ndarray,
    levels: Sequence[float],
    resamples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    n = primary.size
    qp = np.empty((resamples, len(levels)))
    qm = np.empty((resamples, len(levels)))
    chunk = max(1, min(resamples, _CHUNK_CELLS // max(n, 1)))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        index = rng.integers(0, n, size=(stop - start, n))
        qp[start:stop] = np.quantile(primary[index], levels, axis=1).T
        qm[start:stop] = np.quantile(mirror[index], levels, axis=1).T
    return qp, qm


def _bootstrap_cells(
    cells: np.ndarray,
    counts: np.ndarray,
    levels: Sequence[float],
    resamples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    n = int(counts.sum())
    weights = rng.multinomial(n, counts / n, size=resamples)  # (resamples, cells)
    # numpy's default ("linear") quantile of n sorted values x: x[lo] + frac * (x[lo+1] - x[lo])
    positions = (n - 1) * np.asarray(levels, dtype=np.float64)
    lo = np.floor(positions).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = positions - lo
    rows = np.arange(resamples)
    # Rows of cumulative counts are shifted apart so one searchsorted serves every row.
    shift = rows * (n + 1)

    def quantiles(values: np.ndarray) -> np.ndarray:
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        cumulative = np.cumsum(weights[:, order], axis=1) + shift[:, None]
        flat = cumulative.ravel()
        width = ordered.size

        def kth(k: np.ndarray) -> np.ndarray:
            # the k-th smallest (0-based) of a resample: the first cell whose count passes k
            found = np.searchsorted(flat, shift[:, None] + k[None, :], side="right")
            return ordered[found - rows[:, None] * width]

        low_values = kth(lo)
        return low_values + frac[None, :] * (kth(hi) - low_values)

    return quantiles(cells[:, 0]), quantiles(cells[:, 1])


def mann_whitney(primary: np.ndarray, mirror: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when every latency is the same (nothing to rank)."""
    first = primary[0]
    if np.all(primary == first) and np.all(mirror == first):
        return 1.0
    from scipy import stats as scipy_stats  # type: ignore[import-untyped]  # slow to import

    result = scipy_stats.mannwhitneyu(mirror, primary, alternative="two-sided")
    p = float(result.pvalue)
    return 1.0 if math.isnan(p) else p


def endpoint_latency(
    con: duckdb.DuckDBPyConnection,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    min_pairs: int = MIN_PAIRS,
) -> list[LatencyStats]:
    """:func:`compare` for every endpoint of a run (``con`` from ``shadowdiff.open``), over the
    pairs both sides answered, ordered by endpoint."""
    return [
        compare(p, m, endpoint=endpoint, resamples=resamples, seed=seed, min_pairs=min_pairs)
        for endpoint, p, m in paired_latencies(con)
    ]


def paired_latencies(
    con: duckdb.DuckDBPyConnection,
) -> list[tuple[str | None, np.ndarray, np.ndarray]]:
    """Per endpoint: the primary and mirror durations of the requests both sides answered,
    in request-id order (so the figures do not depend on file order)."""
    rows = con.sql(
        """
        SELECT endpoint, list(primary_duration_ms ORDER BY request_id),
               list(mirror_duration_ms ORDER BY request_id)
        FROM pairs
        WHERE outcome NOT IN ('primary_only', 'mirror_only')
          AND primary_duration_ms IS NOT NULL AND mirror_duration_ms IS NOT NULL
        GROUP BY endpoint ORDER BY endpoint NULLS LAST
        """
    ).fetchall()
    return [
        (endpoint, np.asarray(p, dtype=np.float64), np.asarray(m, dtype=np.float64))
        for endpoint, p, m in rows
    ]


def _ratio(mirror: float | None, primary: float | None, floor_ms: float) -> float:
    assert mirror is not None and primary is not None
    return max(mirror, floor_ms) / max(primary, floor_ms)


def _rng(seed: int, endpoint: str | None) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32((endpoint or "").encode("utf-8"))])
