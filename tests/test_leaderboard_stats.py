"""leaderboard.stats pinned against direct scipy computations on fixed data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from leaderboard import resampling
from leaderboard import stats as st


def _data(n: int, seed: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    hits = ((rng.random(n) < 0.55) * 100.0, (rng.random(n) < 0.35) * 100.0)
    ranks = (rng.integers(1, 40, n).astype(float), rng.integers(1, 60, n).astype(float))
    return {"R@1": hits, "MnR": ranks, "MdR": ranks}


def _scipy_diff(metric: str):
    f = st.statistic(metric)
    return lambda x, y, axis=-1: f(x, axis=axis) - f(y, axis=axis)


@pytest.mark.parametrize("metric", ["R@1", "MnR"])
def test_signflip_exact_enumeration_equals_scipy(metric: str) -> None:
    a, b = _data(12)[metric]  # 12 units: every sign pattern is enumerated, as scipy does for 2**12 <= B
    ref = sps.permutation_test((a, b), _scipy_diff(metric), permutation_type="samples", vectorized=True,
                               n_resamples=9999, rng=np.random.default_rng(0)).pvalue
    got = st.signflip_test(a - b, n_resamples=99, seed=0)  # exact whatever B
    assert got.exact and got.n_resamples is None and got.p == pytest.approx(ref, abs=1e-12)


def test_signflip_monte_carlo_matches_scipy_and_is_reproducible() -> None:
    rng = np.random.default_rng(7)
    a = rng.gamma(2.0, 20.0, 150)  # continuous ranks: no lattice, so the null is sampled
    b = np.where(np.arange(150) % 3 == 0, a, a + rng.normal(3.0, 20.0, 150))
    ref = sps.permutation_test((a, b), _scipy_diff("MnR"), permutation_type="samples", vectorized=True,
                               n_resamples=9999, rng=np.random.default_rng(1)).pvalue
    got = st.paired_test(a, b, "MnR", n_resamples=9999, seed=5)
    assert got.method == "Monte Carlo sign-flip" and not got.exact and got.n_resamples == 9999
    assert abs(got.p - ref) < 0.03 and got == st.paired_test(a, b, "MnR", n_resamples=9999, seed=5)
    # two-sided p = 2 (count + 1) / (B + 1): never 0, and an integer multiple of 2 / (B + 1)
    assert got.p >= 2 / 10000 and abs(got.p * 10000 / 2 - round(got.p * 10000 / 2)) < 1e-9


def test_monte_carlo_p_at_its_floor_says_it_was_limited_by_b() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.gamma(2.0, 2.0, 500), rng.gamma(2.0, 2.0, 500) + 400.0
    got = st.paired_test(a, b, "MnR", n_resamples=999, seed=0)
    assert got.p == pytest.approx(2 / 1000) and got.at_floor
    assert not st.paired_test(a, a + rng.normal(0, 1, 500), "MnR", n_resamples=999, seed=0).at_floor


def test_exact_lattice_null_equals_mcnemar_and_full_enumeration(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    a, b = (rng.random(300) < 0.6) * 100.0, (rng.random(300) < 0.4) * 100.0
    lattice = st.signflip_test(a - b, n_resamples=99, seed=0)  # > 20 discordant units: lattice distribution
    assert lattice.method == "exact sign-flip (lattice distribution)"
    assert lattice.p == pytest.approx(st.mcnemar_exact(a, b), rel=1e-9)
    assert st.paired_test(a, b, "R@1").method == "exact McNemar"
    monkeypatch.setattr(resampling, "EXACT_UNITS", 4)  # 14 units then take the lattice path
    d = rng.integers(1, 4, 14) * rng.choice([-0.5, 0.5], 14)  # on a 0.5 lattice; reference: all 2**14 patterns
    signs = 1 - 2 * ((np.arange(2**14)[:, None] >> np.arange(14)) & 1).astype(np.int8)
    null = signs @ d
    ref = min(1.0, 2 * min(np.mean(null <= d.sum()), np.mean(null >= d.sum())))
    got = st.signflip_test(d, n_resamples=99)
    assert got.method == "exact sign-flip (lattice distribution)" and got.p == pytest.approx(ref, rel=1e-9)


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


def _expanded_reference(x: np.ndarray, labels: np.ndarray, metric: str, n_resamples: int, seed: int) -> np.ndarray:
    """Naive cluster bootstrap: draw whole units with replacement, concatenate their queries, take the metric per
    seed and average over seeds."""
    n_units = labels.max() + 1
    draws = np.random.default_rng(seed).integers(0, n_units, (n_resamples, n_units))
    members = [np.flatnonzero(labels == u) for u in range(n_units)]
    f = st.statistic(metric)
    return np.array([np.mean([f(row[np.concatenate([members[u] for u in d])]) for row in x]) for d in draws])


@pytest.mark.parametrize("metric", ["MdR", "MnR", "R@1"])
def test_cluster_bootstrap_equals_naive_resampling_of_whole_units(metric: str) -> None:
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(30), rng.integers(1, 6, 30))
    rng.shuffle(labels)  # captions of one video need not be contiguous
    x = rng.integers(1, 20, (2, len(labels))).astype(float)  # two seeds
    if metric == "R@1":
        x = (x <= 3) * 100.0
    got = st.bootstrap_distribution(x, metric, clusters=labels * 7 + 3, n_resamples=300, seed=3)
    assert got == pytest.approx(_expanded_reference(x, labels, metric, 300, 3), abs=1e-12)


def test_banded_median_falls_back_to_every_position_exactly() -> None:
    x = np.random.default_rng(1).integers(1, 50, 400).astype(float)
    counts = next(resampling.bootstrap_counts(400, 500, 4))
    narrow = resampling._Median(x, np.arange(400), 400, half=1)  # most resamples' medians lie outside this band
    idx = np.random.default_rng(4).integers(0, 400, (500, 400))
    medians = narrow(counts, counts.sum(axis=0), narrow.below @ counts)
    assert np.array_equal(medians, np.median(x[idx], axis=1))


def test_mdr_value_interval_and_test_describe_one_quantity() -> None:
    # Every query exactly one rank better: the swap test on medians gave p = 0.88 beside an interval of [-1, -1].
    rng = np.random.default_rng(0)
    b = rng.integers(2, 200, 1000).astype(float)
    a = b - 1
    assert st.paired_difference_ci(a, b, "MdR", n_resamples=999) == (-1.0, -1.0)
    test = st.paired_test(a, b, "MdR", n_resamples=999, seed=0)
    assert test.method.startswith("paired bootstrap") and test.p == pytest.approx(2 / 1000) and test.at_floor
    # A group's MdR is the mean of its seeds' medians, and its interval is of that quantity (the median of
    # seed-averaged ranks, 25.5 here, lies far from it).
    seeds = np.array([[1.0] * 36 + [50.0] * 24, [50.0] * 24 + [1.0] * 36])
    assert st.metric_value("MdR", seeds) == 1.0 and np.median(seeds.mean(axis=0)) == 25.5
    low, high = st.bootstrap_ci(seeds, "MdR", n_resamples=999)
    assert low <= 1.0 <= high


def test_cluster_signflip_keeps_its_level_when_captions_of_a_video_agree() -> None:
    # 100 videos x 20 captions; each video favours one system (between-video sd 1, caption noise sd 5), but neither
    # system is better on average. Captions as independent units reject the true null ~14% of the time at 0.05.
    n_videos, n_captions, n_sims = 100, 20, 400
    rng = np.random.default_rng(11)
    labels = np.repeat(np.arange(n_videos), n_captions)
    diffs = rng.normal(0, 1, (n_sims, n_videos))[:, labels] + rng.normal(0, 5, (n_sims, n_videos * n_captions))
    by_video = np.mean([t.p < 0.05 for t in st.signflip_tests(diffs, clusters=labels, n_resamples=499, seed=1)])
    by_caption = np.mean([t.p < 0.05 for t in st.signflip_tests(diffs, n_resamples=499, seed=1)])
    assert 0.02 <= by_video <= 0.085 and by_caption >= 0.09


def test_b_is_raised_until_the_family_can_reach_significance() -> None:
    assert st.required_resamples(280, 0.05) == 111_999  # 280 * 2 / 112,000 = alpha / 10
    settings = st.StatsSettings(n_resamples=999)
    assert settings.resamples_for(2) == 999 and settings.resamples_for(280) == 111_999
    assert 280 * 2 / (settings.resamples_for(280) + 1) <= settings.alpha / settings.margin


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
    for r in rows:  # each row's test is the pairwise `paired_test` at the family's B
        x, y = systems[r["a"]]["t2v"][r["metric"]], systems[r["b"]]["t2v"][r["metric"]]
        assert r["p"] == st.paired_test(x, y, r["metric"], n_resamples=st.required_resamples(15, 0.05)).p
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
