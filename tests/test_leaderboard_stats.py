"""leaderboard.stats pinned against direct scipy computations on fixed data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from leaderboard import stats as st


def _data(n: int, seed: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    hits = ((rng.random(n) < 0.55) * 100.0, (rng.random(n) < 0.35) * 100.0)
    ranks = (rng.integers(1, 40, n).astype(float), rng.integers(1, 60, n).astype(float))
    return {"R@1": hits, "MnR": ranks, "MdR": ranks}


def _scipy_diff(metric: str):
    f = st.statistic(metric)
    return lambda x, y, axis=-1: f(x, axis=axis) - f(y, axis=axis)


@pytest.mark.parametrize("metric", ["R@1", "MnR", "MdR"])
def test_randomization_exact_equals_scipy(metric: str) -> None:
    a, b = _data(12)[metric]  # 2**12 = 4096 swaps < 9999 resamples: both enumerate the exact null
    ref = sps.permutation_test((a, b), _scipy_diff(metric), permutation_type="samples", vectorized=True,
                               n_resamples=9999, rng=np.random.default_rng(0)).pvalue
    assert st.paired_randomization_test(a, b, metric, n_resamples=9999, seed=0) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("metric", ["R@1", "MnR", "MdR"])
def test_randomization_monte_carlo_matches_scipy_and_is_reproducible(metric: str) -> None:
    a, b = _data(150, seed=7)[metric]
    b = np.where(np.arange(150) % 3 == 0, a, b)  # correlated systems, as paired retrieval runs are
    ref = sps.permutation_test((a, b), _scipy_diff(metric), permutation_type="samples", vectorized=True,
                               n_resamples=9999, rng=np.random.default_rng(1)).pvalue
    p = st.paired_randomization_test(a, b, metric, n_resamples=9999, seed=5)
    assert abs(p - ref) < 0.03
    assert p == st.paired_randomization_test(a, b, metric, n_resamples=9999, seed=5)
    # two-sided p = 2 (count + 1) / (B + 1): never 0, and an integer multiple of 2 / (B + 1) unless clipped at 1
    assert p >= 2 / 10000 or p == 1.0
    assert p == 1.0 or abs(p * 10000 / 2 - round(p * 10000 / 2)) < 1e-9


def test_randomization_never_zero_for_a_huge_difference() -> None:
    a, b = np.full(500, 100.0), np.zeros(500)
    assert st.paired_randomization_test(a, b, "R@1", n_resamples=999, seed=0) == pytest.approx(2 / 1000)


@pytest.mark.parametrize("metric", ["R@5", "MnR", "MdR"])
def test_bootstrap_interval_equals_scipy_percentile(metric: str) -> None:
    a, b = _data(80, seed=11)["MnR" if metric != "R@5" else "R@1"]
    f = st.statistic(metric)
    ref = sps.bootstrap((a,), lambda x, axis=-1: f(x, axis=axis), method="percentile", n_resamples=2000,
                        rng=np.random.default_rng(9)).confidence_interval
    assert st.bootstrap_ci(a, metric, n_resamples=2000, seed=9) == pytest.approx((ref.low, ref.high), abs=1e-9)
    ref = sps.bootstrap((a, b), _scipy_diff(metric), paired=True, method="percentile", n_resamples=2000,
                        rng=np.random.default_rng(9)).confidence_interval
    got = st.paired_difference_ci(a, b, metric, n_resamples=2000, seed=9)
    assert got == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_intervals_share_resamples_across_metrics() -> None:
    ranks = _data(60)["MnR"][0]
    values = {"R@1": (ranks == 1) * 100.0, "R@5": (ranks <= 5) * 100.0, "R@10": (ranks <= 10) * 100.0,
              "MdR": ranks, "MnR": ranks}
    ci = st.intervals(values, st.StatsSettings(n_resamples=500, seed=2))
    for m in st.METRIC_NAMES:
        assert ci[m] == pytest.approx(list(st.bootstrap_ci(values[m], m, n_resamples=500, seed=2)))


def test_mcnemar_is_binomtest_on_discordant_queries() -> None:
    a = np.array([100, 100, 100, 100, 100, 0, 0, 100, 0, 100, 100, 100] * 5, dtype=float)
    b = np.array([100, 0, 0, 0, 100, 0, 100, 0, 0, 100, 0, 0] * 5, dtype=float)
    only_a = int(np.sum((a == 100) & (b == 0)))
    only_b = int(np.sum((a == 0) & (b == 100)))
    assert (only_a, only_b) == (30, 5)
    assert st.mcnemar_exact(a, b) == pytest.approx(sps.binomtest(30, 35, 0.5).pvalue)
    assert st.mcnemar_exact(a, a) == 1.0
    assert st.mcnemar_exact(a * 0.5, b) is None  # fractional (tied) hits are not binary outcomes


def test_holm_matches_hand_computation() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert st.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert st.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert len(st.holm([])) == 0


def test_direction_lower_mnr_and_mdr_rank_higher() -> None:
    rng = np.random.default_rng(0)
    good = rng.integers(1, 5, 300).astype(float)
    values = {"bad": good + 20, "good": good, "close": good + rng.integers(0, 2, 300)}
    assert st.best_first("MnR", {k: st.metric_value("MnR", v) for k, v in values.items()})[0] == "good"
    assert st.best_first("R@1", {"a": 10.0, "b": 20.0}) == ["b", "a"]
    settings = st.StatsSettings(n_resamples=999, seed=0)
    tiers = st.significance_tiers(values, "MnR", settings)
    assert tiers["good"] == 1 and tiers["bad"] > tiers["good"]
    assert st.significance_tiers(values, "MdR", settings)["bad"] > 1
    assert st.is_better("MnR", 3.0, 4.0) and not st.is_better("R@1", 3.0, 4.0)


def test_tiers_put_indistinguishable_systems_together() -> None:
    rng = np.random.default_rng(4)
    base = (rng.random(400) < 0.5) * 100.0
    twin = base.copy()
    twin[:2] = 100.0 - twin[:2]  # two queries differ: no test can separate them
    values = {"a": base, "b": twin, "c": np.zeros(400)}
    tiers = st.significance_tiers(values, "R@1", st.StatsSettings(n_resamples=999))
    assert tiers["a"] == tiers["b"] == 1 and tiers["c"] == 2


def test_compare_pairs_holm_over_the_report_and_groups() -> None:
    rng = np.random.default_rng(1)
    ranks = {n: rng.integers(1, 30, 100).astype(float) + shift for n, shift in (("x", 0), ("y", 5), ("z", 0))}
    systems = {n: {"t2v": {"R@1": (r <= 3) * 100.0, "R@5": (r <= 5) * 100.0, "R@10": (r <= 10) * 100.0,
                           "MdR": r, "MnR": r}} for n, r in ranks.items()}
    rows = st.compare_pairs(systems, st.StatsSettings(n_resamples=499))
    assert len(rows) == 3 * 5
    assert [r["p_holm"] for r in rows] == pytest.approx(list(st.holm([r["p"] for r in rows])))
    mnr = next(r for r in rows if (r["a"], r["b"], r["metric"]) == ("x", "y", "MnR"))
    assert mnr["better"] == "x" and mnr["diff"] < 0 and not mnr["higher_is_better"]
    assert mnr["diff_ci"][0] <= mnr["diff"] <= mnr["diff_ci"][1]
    seeds = [{"R@1": np.array([0.0, 100.0]), "R@5": np.ones(2), "R@10": np.ones(2), "MdR": np.array([1.0, 3.0]),
              "MnR": np.array([1.0, 3.0])}, {"R@1": np.array([100.0, 100.0]), "R@5": np.ones(2),
                                             "R@10": np.ones(2), "MdR": np.array([3.0, 1.0]), "MnR": np.ones(2)}]
    avg = st.average_over_seeds(seeds)
    assert avg["R@1"] == pytest.approx([50.0, 100.0]) and avg["MdR"] == pytest.approx([2.0, 2.0])
    mean, sd = st.seed_spread([{m: 1.0 for m in st.METRIC_NAMES}, {m: 3.0 for m in st.METRIC_NAMES}])
    assert mean["R@1"] == 2.0 and sd["MnR"] == pytest.approx(np.sqrt(2.0))
