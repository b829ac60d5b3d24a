"""Seed-aware study statistics on synthetic [seeds, queries] data whose answer is known: reductions to textbook tests,
recovered variance components, the level and power of the seed-aware test, equivalence, and the two-level bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from benchmark.study.analysis import (
    Estimate,
    bootstrap_contrasts,
    classify,
    factorial_weights,
    minimum_detectable_effect,
    power,
    seed_aware,
    seed_aware_median,
    seed_level,
    seeds_needed,
    unit_values,
    variance_components,
)


def query_only(d: np.ndarray):
    """The query-only test: a t-test over queries of the seed-averaged values (seeds treated as fixed)."""
    return seed_level(d.mean(axis=0))


def crossed(rng: np.random.Generator, mu: float, sd_seed: float, sd_query: float, sd_res: float, n_seeds: int,
            n_queries: int, reps: int = 1) -> np.ndarray:
    """[reps, seeds, queries] draws of d = mu + a_s + b_q + e_sq."""
    a = rng.normal(0, sd_seed, (reps, n_seeds, 1))
    b = rng.normal(0, sd_query, (reps, 1, n_queries))
    e = rng.normal(0, sd_res, (reps, n_seeds, n_queries))
    return mu + a + b + e


def test_seed_aware_is_the_paired_t_over_seeds_when_queries_add_no_variance() -> None:
    per_seed = np.array([1.5, -0.3, 2.9, 0.4])
    d = np.repeat(per_seed[:, None], 50, axis=1)  # every query of a seed has the same difference
    est = seed_aware(d)
    ref = sps.ttest_1samp(per_seed, 0.0)
    assert est is not None and est.df == pytest.approx(3)
    assert est.p() == pytest.approx(ref.pvalue, rel=1e-9)
    low, high = est.ci(0.95)
    ci = ref.confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    margin = 2.0
    tost = max(sps.ttest_1samp(per_seed, -margin, alternative="greater").pvalue,
               sps.ttest_1samp(per_seed, margin, alternative="less").pvalue)
    assert est.tost(margin) == pytest.approx(tost, rel=1e-9)
    assert seed_level(per_seed).p() == pytest.approx(ref.pvalue, rel=1e-9)  # type: ignore[union-attr]


def test_seed_aware_is_never_narrower_than_either_single_source() -> None:
    rng = np.random.default_rng(12)
    for _ in range(50):
        d = crossed(rng, 0.0, rng.uniform(0, 2), rng.uniform(0, 2), rng.uniform(0, 5), 3, 30)[0]
        est = seed_aware(d)
        assert est.se >= query_only(d).se - 1e-12  # type: ignore[union-attr]
        assert est.se >= seed_level(d.mean(axis=1)).se - 1e-12  # type: ignore[union-attr]
    # identical seeds (as in a tiny study where every seed hits the same queries): the query variance remains
    same = np.tile(rng.normal(size=24), (2, 1))
    assert seed_aware(same).se == pytest.approx(query_only(same).se)  # type: ignore[union-attr]


def test_a_median_contrast_is_never_exact_because_seeds_agree() -> None:
    query_distribution = np.random.default_rng(13).normal(2.0, 0.5, 2000)
    agreeing = seed_aware_median(np.array([2.0, 2.0, 2.0]), query_distribution, 300)
    assert agreeing.se == pytest.approx(0.5, rel=0.05) and agreeing.df == 299  # type: ignore[union-attr]
    spread = seed_aware_median(np.array([-3.0, 2.0, 7.0]), query_distribution, 300)
    assert spread.se == pytest.approx(5 / np.sqrt(3)) and spread.df == 2  # type: ignore[union-attr]
    assert seed_aware_median(np.array([2.0]), query_distribution, 300) is None


def test_one_seed_has_no_seed_aware_estimate() -> None:
    d = np.random.default_rng(1).normal(size=(1, 30))
    assert seed_aware(d) is None and seed_level(d[:, 0]) is None
    c = variance_components(d)
    assert c.seed is None and minimum_detectable_effect(c, 1, 30) is None and seeds_needed(c, 1.0, 30) is None


def test_variance_components_recover_the_simulated_variances() -> None:
    d = crossed(np.random.default_rng(2), 0.0, 2.0, 3.0, 1.0, 60, 600)[0]
    c = variance_components(d)
    assert c.seed == pytest.approx(4.0, rel=0.4)
    assert c.unit == pytest.approx(9.0, rel=0.15)
    assert c.residual == pytest.approx(1.0, rel=0.05)


def _rejections(samples: np.ndarray, test) -> float:
    return float(np.mean([test(d).p() < 0.05 for d in samples]))


def test_seed_aware_test_holds_its_level_where_the_query_only_test_does_not() -> None:
    # Training seeds move whole models (sd 2 points) while queries vary too: under H0 (mu = 0) the query-only test
    # treats 3 seeds' worth of training noise as signal.
    samples = crossed(np.random.default_rng(3), 0.0, 2.0, 3.0, 10.0, 3, 200, reps=1500)
    seed_rate = _rejections(samples, seed_aware)
    query_rate = _rejections(samples, query_only)
    assert 0.025 <= seed_rate <= 0.075, seed_rate
    assert query_rate > 0.3, query_rate


def test_minimum_detectable_effect_has_the_stated_power() -> None:
    c = variance_components(crossed(np.random.default_rng(4), 0.0, 1.5, 2.0, 8.0, 200, 400)[0])
    mde = minimum_detectable_effect(c, 5, 100)
    assert mde is not None and mde > 0
    # Simulate the planned design at the true components, with the effect equal to the MDE.
    samples = crossed(np.random.default_rng(5), mde, np.sqrt(c.seed), np.sqrt(c.unit), np.sqrt(c.residual), 5, 100,
                      reps=1500)
    assert _rejections(samples, seed_aware) == pytest.approx(0.8, abs=0.05)
    assert seeds_needed(c, mde, 100) == 5
    assert seeds_needed(c, mde * 2, 100) < 5


def test_seeds_needed_is_none_when_queries_alone_are_too_noisy() -> None:
    c = variance_components(crossed(np.random.default_rng(6), 0.0, 0.5, 30.0, 1.0, 10, 50)[0])
    assert seeds_needed(c, 1.0, 50) is None  # sd 30 over 50 queries: SE >= 4 points whatever the seeds
    assert seeds_needed(c, 1.0, 1_000_000) is not None
    noisy_seeds = variance_components(crossed(np.random.default_rng(7), 0.0, 15.0, 0.5, 1.0, 10, 300)[0])
    assert seeds_needed(noisy_seeds, 1.0, 300) > 200  # many seeds, but seeds alone get there


def test_power_of_the_t_test() -> None:
    assert power(0.0, 1.0, 10) == pytest.approx(0.05)
    assert power(10.0, 1.0, 10) > 0.999


@pytest.mark.parametrize(("estimate", "expected"), [
    (Estimate(0.1, 0.5, 10, "x"), "smaller than margin"),
    (Estimate(-5.0, 0.5, 10, "x"), "at least margin"),
    (Estimate(1.0, 2.0, 10, "x"), "undetermined"),
])  # fmt: skip
def test_equivalence_conclusions(estimate: Estimate, expected: str) -> None:
    assert classify(estimate.tost(2.0), estimate.beyond(2.0), 0.05) == expected


def test_clusters_count_a_video_once() -> None:
    # Each caption group holds identical copies of one query: analysed by cluster it is the original data; analysed
    # as independent captions (no seed variance here) the standard error shrinks by about sqrt(copies).
    d = crossed(np.random.default_rng(7), 0.5, 0.0, 2.0, 1.0, 3, 40)[0]
    copies = np.repeat(d, 4, axis=1)
    clusters = np.repeat(np.arange(40), 4)
    assert unit_values(copies, clusters) == pytest.approx(d)
    assert seed_aware(copies, clusters).se == pytest.approx(seed_aware(d).se)  # type: ignore[union-attr]
    assert seed_aware(copies).se == pytest.approx(seed_aware(d).se / 2, rel=0.1)  # type: ignore[union-attr]


def test_two_level_bootstrap_adds_seed_variance_and_only_that() -> None:
    rng = np.random.default_rng(9)
    row = rng.normal(size=60)
    same = {"a": np.tile(row, (3, 1)), "b": np.zeros((3, 60))}  # identical seeds: resampling seeds changes nothing
    result = bootstrap_contrasts(same, {"a-b": {"a": 1.0, "b": -1.0}}, "R@1", n_resamples=500)["a-b"]
    assert result.two_level == pytest.approx(result.query_only)
    flat = {"a": np.repeat([[1.0], [2.0], [6.0]], 60, axis=1), "b": np.zeros((3, 60))}  # no query variance
    result = bootstrap_contrasts(flat, {"a-b": {"a": 1.0, "b": -1.0}}, "MnR", n_resamples=500)["a-b"]
    assert result.query_only == pytest.approx(np.full(500, 3.0))
    assert set(np.round(result.two_level * 3).astype(int)) <= {3, 4, 5, 6, 8, 9, 10, 13, 14, 18}
    assert result.two_level.std() > 0.5


def test_bootstrap_contrast_of_medians_is_the_mean_of_seed_medians() -> None:
    ranks = {"a": np.array([[1.0, 2.0, 9.0, 9.0], [3.0, 3.0, 3.0, 3.0]]), "b": np.ones((2, 4))}
    result = bootstrap_contrasts(ranks, {"a": {"a": 1.0}, "a-b": {"a": 1.0, "b": -1.0}}, "MdR", n_resamples=2000)
    # (median 5.5 + median 3) / 2 = 4.25 is the centre of the query-only distribution's support
    assert np.median(result["a"].query_only) == pytest.approx(4.25, abs=1.0)
    assert result["a-b"].query_only == pytest.approx(result["a"].query_only - 1.0)
    assert result["a-b"].two_level.min() >= 0  # a's median rank is never below b's


def test_factorial_weights_of_a_2x2_design() -> None:
    cells = {"full": frozenset(), "no-icl": frozenset({"ICL"}), "no-idl": frozenset({"IDL"}),
             "no-aux": frozenset({"ICL", "IDL"})}
    means = {"full": 10.0, "no-icl": 8.0, "no-idl": 9.0, "no-aux": 4.0}
    effects = {name: sum(w * means[m] for m, w in weights.items())
               for name, weights in factorial_weights(cells, ["ICL", "IDL"]).items()}
    assert effects == {"ICL": -3.5, "IDL": -2.5, "ICL x IDL": -3.0}
    with pytest.raises(ValueError, match="one model per subset"):
        factorial_weights({k: v for k, v in cells.items() if k != "no-aux"}, ["ICL", "IDL"])
