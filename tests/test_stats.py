from __future__ import annotations

import numpy as np
import pytest

from shadowdiff import stats


def lognormal(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(3.0, 0.4, n)


def test_a_twice_slower_mirror_has_ratio_intervals_around_two_and_a_tiny_p_value() -> None:
    primary = lognormal(2000, 1)
    noise = np.random.default_rng(2).lognormal(0.0, 0.1, primary.size)
    s = stats.compare(primary, primary * 2 * noise, endpoint="GET /slow")
    assert s.sufficient and s.n == 2000
    for name in ("p50", "p90", "p99"):
        r = s.ratio(name)
        assert r.estimate is not None and r.low is not None and r.high is not None
        assert 1.8 < r.low <= r.estimate <= r.high < 2.25, (name, r)
    assert s.mann_whitney_p is not None and s.mann_whitney_p < 0.001
    assert s.deltas["p50"] > 15  # paired deltas: mirror − primary ≈ the primary latency


def test_identical_distributions_give_intervals_containing_one() -> None:
    primary = lognormal(2000, 3)
    mirror = lognormal(2000, 4)  # same distribution, independent draws
    s = stats.compare(primary, mirror)
    for r in s.ratios:
        assert r.low is not None and r.high is not None
        assert r.low <= 1.0 <= r.high, r
    assert s.mann_whitney_p is not None and s.mann_whitney_p > 0.01


def test_too_few_pairs_say_insufficient_data_instead_of_numbers() -> None:
    s = stats.compare(lognormal(19, 5), lognormal(19, 6), endpoint="GET /rare")
    assert not s.sufficient
    assert s.note == "insufficient data: 19 pairs (at least 20 needed)"
    assert s.ratios == () and s.deltas == {} and s.mann_whitney_p is None
    assert s.primary["p50"] is not None  # quantiles are still described


def test_tail_quantiles_need_pairs_beyond_them() -> None:
    assert [stats.required_pairs(q) for _, q in stats.QUANTILES] == [20, 50, 500]
    s = stats.compare(lognormal(100, 7), lognormal(100, 8))
    assert s.ratio("p50").sufficient and s.ratio("p90").sufficient
    p99 = s.ratio("p99")
    assert not p99.sufficient and p99.estimate is None
    assert p99.note == "insufficient data: 100 pairs (at least 500 needed)"


def test_the_bootstrap_is_seeded_and_per_endpoint() -> None:
    p, m = lognormal(300, 9), lognormal(300, 10)
    a = stats.compare(p, m, endpoint="GET /a", seed=1)
    b = stats.compare(p, m, endpoint="GET /a", seed=1)
    c = stats.compare(p, m, endpoint="GET /b", seed=1)
    assert a == b
    assert a.ratio("p50").low != c.ratio("p50").low


def test_whole_millisecond_logs_use_the_tied_values_path_and_agree_with_pair_resampling() -> None:
    rng = np.random.default_rng(11)
    primary = rng.integers(0, 30, 5000).astype(float)
    mirror = primary + rng.integers(0, 5, 5000)
    cells, counts = np.unique(np.column_stack([primary, mirror]), axis=0, return_counts=True)
    assert cells.shape[0] * 4 <= primary.size  # the multinomial path is taken
    levels = [0.5, 0.9]
    by_cells = stats._bootstrap_cells(cells, counts, levels, 3000, np.random.default_rng(1))
    by_pairs = stats._bootstrap_pairs(primary, mirror, levels, 3000, np.random.default_rng(2))
    for a, b in zip(by_cells, by_pairs, strict=True):
        np.testing.assert_allclose(a.mean(axis=0), b.mean(axis=0), rtol=0.01)
        np.testing.assert_allclose(a.std(axis=0), b.std(axis=0), rtol=0.15, atol=0.02)

    # a "resample" that draws every cell exactly as often as it occurs gives numpy's quantile
    class Identity:
        def multinomial(self, *_args: object, **_kwargs: object) -> np.ndarray:
            return counts[None, :]

    qp, qm = stats._bootstrap_cells(cells, counts, levels, 1, Identity())  # type: ignore[arg-type]
    np.testing.assert_allclose(qp[0], np.quantile(primary, levels))
    np.testing.assert_allclose(qm[0], np.quantile(mirror, levels))


def test_sub_millisecond_quantiles_count_as_the_floor_in_ratios() -> None:
    primary = np.zeros(100)
    mirror = np.ones(100)  # 0 ms → 1 ms: rounding, not a slowdown
    s = stats.compare(primary, mirror)
    assert s.ratio("p50").estimate == pytest.approx(1.0)
    mirror = np.full(100, 26.0)
    assert stats.compare(primary, mirror).ratio("p50").estimate == pytest.approx(26.0)


def test_constant_latencies_have_p_value_one() -> None:
    s = stats.compare(np.ones(50), np.ones(50))
    assert s.mann_whitney_p == 1.0


def test_unpaired_input_is_refused() -> None:
    with pytest.raises(ValueError, match="paired"):
        stats.compare([1.0, 2.0], [1.0])
