"""Statistics on per-query values: bootstrap intervals, paired tests, Holm correction, seed groups and tiers.

Functional core on numpy arrays of per-query values (one value per query, in split order). Every metric's direction
comes from `benchmark.metrics.METRICS` (R@K: higher is better; MdR, MnR: lower is better). Every random procedure
takes a seed and builds its own `numpy.random.Generator`, so the same inputs give the same numbers every time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats as sps

from benchmark.metrics import METRICS, QueryRanks, per_query

DIRECTIONS = ("t2v", "v2t")
METRIC_NAMES = ("R@1", "R@5", "R@10", "MdR", "MnR")
# Budget of resampled values held in memory at once (resamples x queries).
_BATCH_ELEMENTS = 4_000_000

Values = Mapping[str, np.ndarray]  # metric name -> per-query values


@dataclass(frozen=True)
class StatsSettings:
    """Knobs of every test and interval in one report (all recorded in the report so it names its method)."""

    n_resamples: int = 9999
    seed: int = 0
    alpha: float = 0.05
    confidence: float = 0.95
    ties: str = "random"

    def describe(self) -> dict:
        """JSON-able description for a report's caption and header."""
        return {
            "ci": f"{self.confidence:.0%} percentile bootstrap over queries (paired across metrics)",
            "test": "paired randomization test (per-query swap / sign-flip), two-sided",
            "binary_test": "exact McNemar (binomial test on discordant queries) where per-query outcomes are binary",
            "correction": "holm",
            "alpha": self.alpha,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "ties": self.ties,
        }


def query_values(ranks: QueryRanks, ties: str = "random") -> dict[str, np.ndarray]:
    """Per-query values of every metric: R@K as 0/100 hit (expected under random ties), the rank for MdR and MnR."""
    pq = per_query(ranks, ties)
    return {"R@1": pq["R@1"], "R@5": pq["R@5"], "R@10": pq["R@10"], "MdR": pq["rank"], "MnR": pq["rank"]}


def statistic(metric: str) -> Callable[..., np.ndarray]:
    """The aggregate of `metric` over queries: the median rank for MdR, the mean otherwise (R@K in percent, MnR)."""
    if metric not in METRICS:
        raise KeyError(f"Unknown metric `{metric}`; known: {', '.join(METRICS)}.")
    return np.median if metric == "MdR" else np.mean


def metric_value(metric: str, values: np.ndarray) -> float:
    """The metric of one system from its per-query values."""
    return float(statistic(metric)(np.asarray(values, dtype=np.float64)))


def higher_is_better(metric: str) -> bool:
    """Direction of `metric` from the common metric table."""
    return METRICS[metric].higher_is_better


def is_better(metric: str, a: float, b: float) -> bool:
    """True when value `a` is strictly better than `b` for `metric` (direction-aware)."""
    return a > b if higher_is_better(metric) else a < b


def best_first(metric: str, scores: Mapping[str, float]) -> list[str]:
    """Names sorted best first for `metric` (direction-aware; ties keep name order)."""
    sign = -1.0 if higher_is_better(metric) else 1.0
    return sorted(scores, key=lambda name: (sign * scores[name], name))


def _batch(n: int) -> int:
    return max(1, _BATCH_ELEMENTS // max(n, 1))


def _bootstrap_indices(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Batches of resampled query indices; the stream equals scipy.stats.bootstrap's for the same seed."""
    rng = np.random.default_rng(seed)
    step = _batch(n)
    for k in range(0, n_resamples, step):
        yield rng.integers(0, n, (min(step, n_resamples - k), n))


def _percentile_interval(distribution: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(distribution, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_intervals(
    values: Values, *, n_resamples: int = 9999, seed: int = 0, confidence: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each metric over queries (Efron & Tibshirani 1993, ch. 13).

    Resamples queries with replacement; every metric of the mapping sees the same resampled queries (paired across
    metrics). Same seed, same indices as `scipy.stats.bootstrap(..., method="percentile")`.
    """
    arrays = {m: np.asarray(v, dtype=np.float64) for m, v in values.items()}
    n = _common_length(arrays.values())
    dist: dict[str, list[np.ndarray]] = {m: [] for m in arrays}
    for idx in _bootstrap_indices(n, n_resamples, seed):
        for m, x in arrays.items():
            dist[m].append(statistic(m)(x[idx], axis=-1))
    return {m: _percentile_interval(np.concatenate(d), confidence) for m, d in dist.items()}


def bootstrap_ci(
    values: np.ndarray, metric: str, *, n_resamples: int = 9999, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of one metric over queries (see `bootstrap_intervals`)."""
    return bootstrap_intervals({metric: values}, n_resamples=n_resamples, seed=seed, confidence=confidence)[metric]


def paired_difference_ci(
    a: np.ndarray, b: np.ndarray, metric: str, *, n_resamples: int = 9999, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Paired percentile bootstrap interval of metric(a) - metric(b): the same resampled queries for both systems."""
    x, y = _pair(a, b)
    stat = statistic(metric)
    dist = [stat(x[idx], axis=-1) - stat(y[idx], axis=-1) for idx in _bootstrap_indices(len(x), n_resamples, seed)]
    return _percentile_interval(np.concatenate(dist), confidence)


def _swap_null(x: np.ndarray, y: np.ndarray, metric: str, n_resamples: int, seed: int) -> tuple[np.ndarray, bool]:
    """Null distribution of metric(x) - metric(y) under per-query swaps, and whether it enumerates all 2**n swaps."""
    n = len(x)
    exact = n <= 20 and n_resamples >= 2**n
    if exact:
        masks = [((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool)]
    else:
        rng = np.random.default_rng(seed)
        step = _batch(n)
        masks = (rng.random((min(step, n_resamples - k), n)) < 0.5 for k in range(0, n_resamples, step))
    stat = statistic(metric)
    d = x - y
    null = []
    for swap in masks:
        if stat is np.mean:  # swapping a pair flips the sign of its difference
            null.append(np.where(swap, -d, d).mean(axis=-1))
        else:
            null.append(stat(np.where(swap, y, x), axis=-1) - stat(np.where(swap, x, y), axis=-1))
    return np.concatenate(null), exact


def paired_randomization_test(
    a: np.ndarray, b: np.ndarray, metric: str, *, n_resamples: int = 9999, seed: int = 0
) -> float:
    """Two-sided paired randomization test of metric(a) - metric(b) (Fisher 1935; Smucker et al., CIKM 2007).

    H0: for every query, the two systems' values are exchangeable (which system produced which value is arbitrary),
    so the statistic -- the difference of means for R@K and MnR, of medians for MdR -- is symmetric around 0.
    Each resample swaps the two values of every query with probability 1/2 (for means: a sign flip of the per-query
    difference), as `scipy.stats.permutation_test(permutation_type="samples")` does. Each tail's p is
    (count + 1) / (n_resamples + 1) (never 0); two-sided p = min(1, 2 * smaller tail). When n_resamples covers
    all 2**n swaps the null is enumerated and the test is exact (no +1).
    """
    x, y = _pair(a, b)
    stat = statistic(metric)
    observed = float(np.mean(x - y)) if stat is np.mean else float(stat(x) - stat(y))
    null, exact = _swap_null(x, y, metric, n_resamples, seed)
    adjust = 0 if exact else 1
    # values within this tolerance of the observed one are the same number up to rounding (percent / rank scale)
    gamma = 100 * np.finfo(np.float64).eps * max(abs(observed), 1.0)
    less = (np.count_nonzero(null <= observed + gamma) + adjust) / (len(null) + adjust)
    greater = (np.count_nonzero(null >= observed - gamma) + adjust) / (len(null) + adjust)
    return float(min(1.0, 2.0 * min(less, greater)))


def is_binary(values: np.ndarray) -> bool:
    """True when every per-query value is a hit (100) or a miss (0), e.g. R@K without ties."""
    v = np.asarray(values)
    return bool(np.all((v == 0) | (v == 100)))


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float | None:
    """Exact McNemar test on binary per-query outcomes (McNemar 1947), as a binomial test on discordant queries.

    H0: a query that one system gets right and the other wrong is equally likely to favour either system
    (discordant counts ~ Binomial(b + c, 1/2)). Returns None when the outcomes are not binary (ties give
    fractional expected hits), 1.0 when there is no discordant query.
    """
    x, y = _pair(a, b)
    if not (is_binary(x) and is_binary(y)):
        return None
    only_a = int(np.sum((x == 100) & (y == 0)))
    only_b = int(np.sum((x == 0) & (y == 100)))
    if only_a + only_b == 0:
        return 1.0
    return float(sps.binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): controls the family-wise error rate over the family.

    H0 family: all hypotheses of one report. Adjusted p_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)) in ascending order.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def _common_length(arrays: Iterable[np.ndarray]) -> int:
    lengths = {a.shape for a in arrays}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError(f"Per-query values must be 1-D arrays of one length; got shapes {sorted(lengths)}.")
    return next(iter(lengths))[0]


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"Paired statistics need two 1-D per-query arrays of the same length; got {x.shape} and {y.shape}. "
            "Compare entries of the same benchmark split only."
        )
    return x, y


def intervals(values: Values, settings: StatsSettings) -> dict[str, list[float]]:
    """95% (settings.confidence) bootstrap interval of every metric of one entry and direction."""
    ci = bootstrap_intervals({m: values[m] for m in METRIC_NAMES}, n_resamples=settings.n_resamples,
                             seed=settings.seed, confidence=settings.confidence)
    return {m: list(ci[m]) for m in METRIC_NAMES}


def average_over_seeds(per_seed: Sequence[Values]) -> dict[str, np.ndarray]:
    """Per-query values averaged over the seeds of one group (the unit the group is tested on)."""
    if not per_seed:
        raise ValueError("A group needs at least one entry.")
    return {m: np.mean([np.asarray(v[m], dtype=np.float64) for v in per_seed], axis=0) for m in METRIC_NAMES}


def seed_spread(per_seed_metrics: Sequence[Mapping[str, float]]) -> tuple[dict[str, float], dict[str, float | None]]:
    """Mean and sample standard deviation (ddof=1; None for one seed) of each metric over a group's seeds."""
    mean = {m: float(np.mean([s[m] for s in per_seed_metrics])) for m in METRIC_NAMES}
    sd = {
        m: float(np.std([s[m] for s in per_seed_metrics], ddof=1)) if len(per_seed_metrics) > 1 else None
        for m in METRIC_NAMES
    }
    return mean, sd


def compare_pairs(
    systems: Mapping[str, Mapping[str, Values]], settings: StatsSettings
) -> list[dict]:
    """Every pairwise comparison (pair x direction x metric) of `systems` (name -> direction -> values).

    Each row has both values, the difference a - b with its paired bootstrap interval, the randomization p-value
    and the exact McNemar p-value (R@K with binary outcomes), each Holm-adjusted across all rows of the report,
    the winner (direction-aware) and whether the Holm-adjusted randomization p is below alpha.
    """
    rows: list[dict] = []
    for a, b in combinations(systems, 2):
        for d in DIRECTIONS:
            if d not in systems[a] or d not in systems[b]:
                continue
            for m in METRIC_NAMES:
                x, y = systems[a][d][m], systems[b][d][m]
                va, vb = metric_value(m, x), metric_value(m, y)
                rows.append({
                    "a": a, "b": b, "direction": d, "metric": m,
                    "higher_is_better": higher_is_better(m),
                    "value_a": va, "value_b": vb, "diff": va - vb,
                    "diff_ci": list(paired_difference_ci(x, y, m, n_resamples=settings.n_resamples,
                                                         seed=settings.seed, confidence=settings.confidence)),
                    "p": paired_randomization_test(x, y, m, n_resamples=settings.n_resamples, seed=settings.seed),
                    "p_mcnemar": mcnemar_exact(x, y) if m.startswith("R@") else None,
                })
    for key in ("p", "p_mcnemar"):
        tested = [i for i, r in enumerate(rows) if r[key] is not None]
        for i, q in zip(tested, holm([rows[i][key] for i in tested])):
            rows[i][f"{key}_holm"] = float(q)
        for r in rows:
            r.setdefault(f"{key}_holm", None)
    for r in rows:
        r["significant"] = r["p_holm"] < settings.alpha
        r["better"] = (r["a"] if is_better(r["metric"], r["value_a"], r["value_b"])
                       else r["b"] if is_better(r["metric"], r["value_b"], r["value_a"]) else None)
    return rows


def significance_tiers(values: Mapping[str, np.ndarray], metric: str, settings: StatsSettings) -> dict[str, int]:
    """Tier of each system on one metric: tier 1 = the best and every system not significantly different from it.

    Round k takes the best remaining system (direction-aware), tests it against each other remaining system with the
    paired randomization test, Holm-corrects the p-values of that round, and puts the best plus every system with
    adjusted p >= alpha in tier k. H0 per test: the two systems' per-query values are exchangeable.
    """
    scores = {name: metric_value(metric, v) for name, v in values.items()}
    remaining = best_first(metric, scores)
    tiers: dict[str, int] = {}
    tier = 1
    while remaining:
        best, others = remaining[0], remaining[1:]
        p = [paired_randomization_test(values[best], values[o], metric, n_resamples=settings.n_resamples,
                                       seed=settings.seed) for o in others]
        tied = {o for o, q in zip(others, holm(p)) if q >= settings.alpha}
        for name in [best, *sorted(tied)]:
            tiers[name] = tier
        remaining = [o for o in others if o not in tied]
        tier += 1
    return tiers
