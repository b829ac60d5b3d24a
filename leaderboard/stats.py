"""Statistics on per-query values: bootstrap intervals, paired tests, Holm correction, seed groups and tiers.

Functional core on numpy arrays of per-query values in split order: one row per query (1-D) or one row per seed
(2-D, [seeds, queries]). Every metric's direction comes from `benchmark.metrics.METRICS` (R@K: higher is better;
MdR, MnR: lower is better). Each metric is one quantity everywhere (value, interval, test): the mean over queries
(R@K in percent, MnR) or the median over queries (MdR) of the per-query values, averaged over seeds for a group.
Resampling and sign-flipping act on sampling units (`clusters`): a video with all its captions when several texts
share a video (multi-caption text-to-video), otherwise a single query. Every random procedure takes a seed, so the
same inputs give the same numbers every time; the engines live in `leaderboard.resampling`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats as sps

from benchmark.metrics import METRICS, QueryRanks, per_query
from leaderboard.resampling import PValue, bootstrap_pvalue, bootstrap_statistics, signflip_pvalues, unit_labels

DIRECTIONS = ("t2v", "v2t")
METRIC_NAMES = ("R@1", "R@5", "R@10", "MdR", "MnR")

Values = Mapping[str, np.ndarray]  # metric name -> per-query values ([queries] or [seeds, queries])
Clusters = np.ndarray | Sequence[int] | None  # sampling unit of each query; None: every query is its own unit

def required_resamples(n_tests: int, alpha: float, margin: float = 10.0) -> int:
    """Smallest B for which a Monte Carlo p at its floor 2/(B+1), times the family size, is `margin` x below alpha.

    Holm multiplies the smallest p of a family of m tests by m, so with m * 2/(B+1) >= alpha no Monte Carlo test of
    the family could ever be significant.
    """
    return max(1, math.ceil(2 * max(n_tests, 1) * margin / alpha) - 1)


@dataclass(frozen=True)
class StatsSettings:
    """Knobs of every test and interval in one report (all recorded in the report so it names its method).

    `n_resamples` is the bootstrap size of intervals and the least B of every test; a family of m tests raises its
    B to `required_resamples(m, alpha, margin)` so that its smallest attainable p stays well below alpha.
    """

    n_resamples: int = 9999
    seed: int = 0
    alpha: float = 0.05
    confidence: float = 0.95
    ties: str = "random"
    margin: float = 10.0

    def resamples_for(self, n_tests: int) -> int:
        """B of a family of `n_tests` tests: `n_resamples`, raised until n_tests * 2/(B+1) <= alpha / margin."""
        return max(self.n_resamples, required_resamples(n_tests, self.alpha, self.margin))

    def describe(self) -> dict:
        """JSON-able description for a report's caption and header."""
        return {
            "ci": f"{self.confidence:.0%} percentile bootstrap over sampling units (a query; a video with all its "
                  "captions where several texts share a video), paired across metrics",
            "test": "paired sign-flip test on per-unit differences for R@K and MnR (exact McNemar for binary "
                    "single-caption outcomes; exact when few units differ or differences are on a small lattice; "
                    "Monte Carlo otherwise) and paired bootstrap test of the MdR difference, two-sided",
            "mdr": "median over queries of each query's rank (ties at their expected rank under random "
                   "tie-breaking, so not an expected median); a group's value is the mean of its seeds' medians",
            "correction": "holm",
            "alpha": self.alpha,
            "n_resamples": self.n_resamples,
            "margin": self.margin,
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


def _as_seeds(values: np.ndarray) -> np.ndarray:
    """Per-query values as [seeds, queries] float64."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"Per-query values must be [queries] or [seeds, queries] and non-empty; got {x.shape}.")
    return x.reshape(-1, x.shape[-1])


def metric_value(metric: str, values: np.ndarray) -> float:
    """The metric of one system: its aggregate over queries, averaged over seeds for [seeds, queries] values."""
    return float(np.mean(statistic(metric)(_as_seeds(values), axis=-1)))


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


def _distributions(
    columns: Mapping[Any, tuple[np.ndarray, str]], labels: np.ndarray, n_resamples: int, seed: int
) -> dict[Any, np.ndarray]:
    """Bootstrap distribution of each (values, metric) column; all columns share the resamples (paired)."""
    keys = list(columns)
    stats = bootstrap_statistics([(_as_seeds(columns[k][0]), columns[k][1] == "MdR") for k in keys], labels,
                                 n_resamples, seed)
    return dict(zip(keys, stats))


def _percentile_interval(distribution: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(distribution, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_distribution(
    values: np.ndarray, metric: str, *, clusters: Clusters = None, n_resamples: int = 9999, seed: int = 0
) -> np.ndarray:
    """`metric` of one system on each of `n_resamples` cluster-bootstrap resamples (Efron & Tibshirani 1993, ch. 6).

    Units (`clusters`) are drawn with replacement and keep all their queries. The resamples depend only on the
    units, query count, B and seed, so two systems' distributions with the same seed are paired and may be
    subtracted. Without clusters and within one batch, the indices equal `scipy.stats.bootstrap`'s for the seed.
    """
    n = _as_seeds(values).shape[1]
    return _distributions({0: (values, metric)}, unit_labels(clusters, n), n_resamples, seed)[0]


def bootstrap_intervals(
    values: Values, *, clusters: Clusters = None, n_resamples: int = 9999, seed: int = 0, confidence: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each metric (Efron & Tibshirani 1993, ch. 13), over sampling units.

    Every metric of the mapping sees the same resamples (paired across metrics).
    """
    n = _common_length(_as_seeds(v) for v in values.values())
    dist = _distributions({m: (v, m) for m, v in values.items()}, unit_labels(clusters, n), n_resamples, seed)
    return {m: _percentile_interval(d, confidence) for m, d in dist.items()}


def bootstrap_ci(
    values: np.ndarray, metric: str, *, clusters: Clusters = None, n_resamples: int = 9999, seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of one metric (see `bootstrap_intervals`)."""
    return bootstrap_intervals({metric: values}, clusters=clusters, n_resamples=n_resamples, seed=seed,
                               confidence=confidence)[metric]


def paired_difference_ci(
    a: np.ndarray, b: np.ndarray, metric: str, *, clusters: Clusters = None, n_resamples: int = 9999, seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Paired percentile bootstrap interval of metric(a) - metric(b): the same resampled units for both systems."""
    x, y = _pair(a, b)
    dist = _distributions({"a": (x, metric), "b": (y, metric)}, unit_labels(clusters, x.shape[1]), n_resamples, seed)
    return _percentile_interval(dist["a"] - dist["b"], confidence)


def is_binary(values: np.ndarray) -> bool:
    """True when every per-query value is a hit (100) or a miss (0), e.g. R@K without ties."""
    v = np.asarray(values)
    return bool(np.all((v == 0) | (v == 100)))


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float | None:
    """Exact McNemar test on binary per-query outcomes (McNemar 1947), as a binomial test on discordant queries.

    H0: a query that one system gets right and the other wrong is equally likely to favour either system
    (discordant counts ~ Binomial(b + c, 1/2)). Returns None when the outcomes are not binary (ties give
    fractional expected hits), 1.0 when there is no discordant query. Queries must be independent units.
    """
    x, y = _pair(a, b)
    if x.shape[0] != 1 or y.shape[0] != 1 or not (is_binary(x) and is_binary(y)):
        return None
    only_a = int(np.sum((x == 100) & (y == 0)))
    only_b = int(np.sum((x == 0) & (y == 100)))
    if only_a + only_b == 0:
        return 1.0
    return float(sps.binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue)


def _unit_sums(differences: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[units, tests] sums of each row of `differences` [tests, queries] over the queries of every unit."""
    n_units = int(labels.max()) + 1
    return np.stack([np.bincount(labels, weights=row, minlength=n_units) for row in differences], axis=1)


def signflip_tests(
    differences: np.ndarray, *, clusters: Clusters = None, n_resamples: int = 9999, seed: int = 0
) -> list[PValue]:
    """Paired sign-flip test of each row of `differences` [tests, queries] (per-query a - b), over sampling units.

    H0: within each unit (`clusters`; default every query) the two systems are exchangeable, so the unit's summed
    difference is symmetric around 0; statistic: the mean difference. Whole caption groups are flipped together, so
    correlated captions of one video count once. See `leaderboard.resampling.signflip_pvalues` for exact and Monte
    Carlo cases; all rows share the sign patterns.
    """
    d = np.atleast_2d(np.asarray(differences, dtype=np.float64))
    return signflip_pvalues(_unit_sums(d, unit_labels(clusters, d.shape[1])), n_resamples, seed)


def signflip_test(
    differences: np.ndarray, *, clusters: Clusters = None, n_resamples: int = 9999, seed: int = 0
) -> PValue:
    """Paired sign-flip test of one vector of per-query differences (see `signflip_tests`)."""
    return signflip_tests(np.asarray(differences)[None, :], clusters=clusters, n_resamples=n_resamples, seed=seed)[0]


def _tests(
    values: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]], metric: str, labels: np.ndarray,
    n_resamples: int, seed: int, dists: Mapping[str, np.ndarray] | None = None,
) -> list[PValue]:
    """One two-sided test per pair of systems on `metric` (see `paired_test`); `dists` are the systems' bootstrap
    distributions of `metric` (needed for MdR, computed when missing)."""
    if metric == "MdR":
        if dists is None:
            names = sorted({n for pair in pairs for n in pair})
            dists = _distributions({n: (values[n], metric) for n in names}, labels, n_resamples, seed)
        return [bootstrap_pvalue(dists[a] - dists[b]) for a, b in pairs]
    out: list[PValue | None] = [None] * len(pairs)
    if len(labels) == int(labels.max()) + 1:  # one query per unit: binary outcomes get the exact McNemar test
        for i, (a, b) in enumerate(pairs):
            p = mcnemar_exact(values[a], values[b])
            out[i] = None if p is None else PValue(p, "exact McNemar", True)
    todo = [i for i, r in enumerate(out) if r is None]
    if todo:
        diffs = np.stack([_as_seeds(values[pairs[i][0]]).mean(0) - _as_seeds(values[pairs[i][1]]).mean(0)
                          for i in todo])
        for i, r in zip(todo, signflip_pvalues(_unit_sums(diffs, labels), n_resamples, seed)):
            out[i] = r
    return [r for r in out if r is not None]


def bootstrap_test(
    a: np.ndarray, b: np.ndarray, metric: str, *, clusters: Clusters = None, n_resamples: int = 9999, seed: int = 0
) -> PValue:
    """Two-sided paired bootstrap test of metric(a) - metric(b) = 0 (percentile-interval inversion).

    Resamples units for both systems together; p is the smallest alpha whose paired percentile interval excludes 0
    (`leaderboard.resampling.bootstrap_pvalue`). Used for MdR, whose value, interval and test are then all the
    difference of the two medians.
    """
    x, y = _pair(a, b)
    dist = _distributions({"a": (x, metric), "b": (y, metric)}, unit_labels(clusters, x.shape[1]), n_resamples, seed)
    return bootstrap_pvalue(dist["a"] - dist["b"])


def paired_test(
    a: np.ndarray, b: np.ndarray, metric: str, *, clusters: Clusters = None, n_resamples: int = 9999, seed: int = 0
) -> PValue:
    """The two-sided paired test of metric(a) - metric(b) used in every report.

    R@K and MnR (means): exact McNemar when every unit is one query and both outcomes are binary (one seed), else
    the sign-flip test on per-unit differences of the seed-averaged values (`signflip_tests`). MdR (a median):
    the paired bootstrap test of the difference of medians (`bootstrap_test`), never a swap test on medians.
    """
    x, y = _pair(a, b)
    return _tests({"a": x, "b": y}, [("a", "b")], metric, unit_labels(clusters, x.shape[1]), n_resamples, seed)[0]


def paired_randomization_test(
    a: np.ndarray, b: np.ndarray, metric: str, *, clusters: Clusters = None, n_resamples: int = 9999, seed: int = 0
) -> float:
    """The p-value of `paired_test` (kept for callers that need only the number)."""
    return paired_test(a, b, metric, clusters=clusters, n_resamples=n_resamples, seed=seed).p


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
    lengths = {a.shape[-1] for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"Per-query values must all have one length; got lengths {sorted(lengths)}.")
    return lengths.pop()


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_seeds(a), _as_seeds(b)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"Paired statistics need per-query values of the same queries; got {x.shape[1]} and {y.shape[1]} "
            "queries. Compare entries of the same benchmark split only."
        )
    return x, y


def intervals(values: Values, settings: StatsSettings, clusters: Clusters = None) -> dict[str, list[float]]:
    """settings.confidence bootstrap interval of every metric of one entry (or group) and direction."""
    ci = bootstrap_intervals({m: values[m] for m in METRIC_NAMES}, clusters=clusters, n_resamples=settings.n_resamples,
                             seed=settings.seed, confidence=settings.confidence)
    return {m: list(ci[m]) for m in METRIC_NAMES}


def average_over_seeds(per_seed: Sequence[Values]) -> dict[str, np.ndarray]:
    """Per-query values averaged over the seeds of one group (for means this is the group's value per query)."""
    if not per_seed:
        raise ValueError("A group needs at least one entry.")
    return {m: np.mean([np.asarray(v[m], dtype=np.float64) for v in per_seed], axis=0) for m in METRIC_NAMES}


def stack_seeds(per_seed: Sequence[Values]) -> dict[str, np.ndarray]:
    """Per-query values of a group's seeds as [seeds, queries] per metric (the input of every group statistic)."""
    if not per_seed:
        raise ValueError("A group needs at least one entry.")
    return {m: np.stack([np.asarray(v[m], dtype=np.float64) for v in per_seed]) for m in METRIC_NAMES}


def seed_spread(per_seed_metrics: Sequence[Mapping[str, float]]) -> tuple[dict[str, float], dict[str, float | None]]:
    """Mean and sample standard deviation (ddof=1; None for one seed) of each metric over a group's seeds."""
    mean = {m: float(np.mean([s[m] for s in per_seed_metrics])) for m in METRIC_NAMES}
    sd = {
        m: float(np.std([s[m] for s in per_seed_metrics], ddof=1)) if len(per_seed_metrics) > 1 else None
        for m in METRIC_NAMES
    }
    return mean, sd


def _adjust(rows: list[dict], alpha: float) -> None:
    """Holm-adjust the rows' p-values as one family and mark the significant ones."""
    for row, adjusted in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = float(adjusted)
        row["significant"] = row["p_holm"] < alpha


def compare_pairs(
    systems: Mapping[str, Mapping[str, Values]], settings: StatsSettings,
    clusters: Mapping[str, Clusters] | None = None,
) -> list[dict]:
    """Every pairwise comparison (pair x direction x metric) of `systems` (name -> direction -> values).

    `clusters` maps a direction to its sampling units (None: every query). Each row has both values, the difference
    a - b with its paired bootstrap interval, the p-value of `paired_test` with its method, B and whether B limited
    it, the Holm-adjusted p over all rows of the report, the winner (direction-aware) and whether it is significant.
    Tests use B = `settings.resamples_for(number of rows)`; intervals use `settings.n_resamples`, except MdR's, which
    come from the same resamples as its bootstrap test.
    """
    pairs = list(combinations(systems, 2))
    plan = [(a, b, d) for a, b in pairs for d in DIRECTIONS if d in systems[a] and d in systems[b]]
    n_resamples = settings.resamples_for(len(plan) * len(METRIC_NAMES))
    rows: list[dict] = []
    for d in DIRECTIONS:
        dpairs = [(a, b) for a, b, e in plan if e == d]
        names = list(dict.fromkeys(n for pair in dpairs for n in pair))
        if not dpairs:
            continue
        n = _common_length(_as_seeds(systems[name][d][m]) for name in names for m in METRIC_NAMES)
        labels = unit_labels((clusters or {}).get(d), n)
        means = [m for m in METRIC_NAMES if m != "MdR"]
        dists = _distributions({(name, m): (systems[name][d][m], m) for name in names for m in means},
                               labels, settings.n_resamples, settings.seed)
        dists |= _distributions({(name, "MdR"): (systems[name][d]["MdR"], "MdR") for name in names},
                                labels, n_resamples, settings.seed)
        for m in METRIC_NAMES:
            values = {name: systems[name][d][m] for name in names}
            tests = _tests(values, dpairs, m, labels, n_resamples, settings.seed,
                           {name: dists[name, m] for name in names})
            for (a, b), test in zip(dpairs, tests):
                va, vb = metric_value(m, values[a]), metric_value(m, values[b])
                rows.append({
                    "a": a, "b": b, "direction": d, "metric": m, "higher_is_better": higher_is_better(m),
                    "value_a": va, "value_b": vb, "diff": va - vb,
                    "diff_ci": list(_percentile_interval(dists[a, m] - dists[b, m], settings.confidence)),
                    "n_units": int(labels.max()) + 1, "p": test.p, "test": test.method, "exact": test.exact,
                    "n_resamples": test.n_resamples, "limited_by_resamples": test.at_floor,
                    "better": a if is_better(m, va, vb) else b if is_better(m, vb, va) else None,
                })
    rows.sort(key=lambda r: (pairs.index((r["a"], r["b"])), DIRECTIONS.index(r["direction"]),
                             METRIC_NAMES.index(r["metric"])))
    _adjust(rows, settings.alpha)
    return rows


def significance_tiers(
    values: Mapping[str, np.ndarray], metric: str, settings: StatsSettings, clusters: Clusters = None
) -> dict[str, int]:
    """Tier of each system on one metric: tier 1 = the best and every system not significantly different from it.

    Round k takes the best remaining system (direction-aware), tests it against each other remaining system with
    `paired_test` over the sampling units (`clusters`), Holm-corrects the p-values of that round, and puts the best
    plus every system with adjusted p >= alpha in tier k. B is `settings.resamples_for(number of systems - 1)`.
    """
    scores = {name: metric_value(metric, v) for name, v in values.items()}
    n_resamples = settings.resamples_for(len(values) - 1)
    labels = unit_labels(clusters, _common_length(_as_seeds(v) for v in values.values()))
    dists = (_distributions({n: (v, metric) for n, v in values.items()}, labels, n_resamples, settings.seed)
             if metric == "MdR" and len(values) > 1 else None)
    remaining = best_first(metric, scores)
    tiers: dict[str, int] = {}
    tier = 1
    while remaining:
        best, others = remaining[0], remaining[1:]
        tests = _tests(values, [(best, o) for o in others], metric, labels, n_resamples, settings.seed, dists)
        tied = {o for o, q in zip(others, holm([t.p for t in tests])) if q >= settings.alpha}
        for name in [best, *sorted(tied)]:
            tiers[name] = tier
        remaining = [o for o in others if o not in tied]
        tier += 1
    return tiers
