"""Seed-aware statistics of the study: training seeds and test queries as two crossed random factors.

Functional core on arrays `[seeds, queries]` of per-query values (one row per training seed, paired by seed index
across models; one column per test query in split order). A question about a training recipe ("does training with
ICL help?") is answered over both sources of variance: a new seed trains a different model, a new query set tests it
differently. Everything here takes arrays and returns numbers:

- `variance_components`: method-of-moments estimates of the seed, query and residual variances of a two-way crossed
  random-effects model d[s, q] = mu + a_s + b_q + e_sq (Searle, Casella & McCulloch 1992, ch. 4), negative estimates
  set to 0;
- `seed_aware`: the estimate of mu with its standard error and degrees of freedom, seeds and queries included;
  `seed_aware_median` the same for a contrast of medians (MdR), `seed_level` the t-test over seeds alone;
- `Estimate`: t-based p-value and interval, the two one-sided tests of equivalence (TOST, Schuirmann 1987) against
  a margin and the opposite test that the effect is at least the margin;
- `minimum_detectable_effect` / `seeds_needed`: power analysis from the variance components (noncentral t);
- `bootstrap_contrasts`: the two-level bootstrap (resample seeds, then query units) of linear contrasts of models,
  beside the query-only bootstrap (seeds fixed) from the same query draws (`leaderboard.resampling`'s engine);
- `factorial_weights`: the main effects and interactions of a 2^k design of removed loss terms.

Sampling units (`clusters`): a video with all its captions where several texts share a video (MSVD), otherwise one
query. Every random procedure takes a seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import optimize
from scipy import stats as sps

from leaderboard.resampling import bootstrap_statistics, unit_labels
from leaderboard.stats import statistic


def _as_seeds(values: np.ndarray) -> np.ndarray:
    """Values as float64 [seeds, queries] (a 1-D array is one seed)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"Per-query values must be [seeds, queries] and non-empty; got shape {x.shape}.")
    return x


def unit_values(values: np.ndarray, clusters: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
    """[seeds, units]: each unit's summed values scaled by units/queries, so the mean over units is the mean over
    queries (the linearisation of a cluster mean); the values themselves when every query is its own unit."""
    x = _as_seeds(values)
    labels = unit_labels(clusters, x.shape[1])
    n_units = int(labels.max()) + 1
    if n_units == x.shape[1]:
        return x
    sums = np.stack([np.bincount(labels, weights=row, minlength=n_units) for row in x])
    return sums * n_units / x.shape[1]


@dataclass(frozen=True)
class Components:
    """Variance components of d[s, u] = mu + a_s + b_u + e_su with their mean squares and degrees of freedom.

    `seed` and `residual` are None with one seed (training variance cannot be estimated); `unit` then holds the
    whole variance between units.
    """

    seed: float | None
    unit: float
    residual: float | None
    n_seeds: int
    n_units: int
    ms_seed: float | None
    ms_unit: float
    ms_residual: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-able components (the unit component is called `query`, as in the report)."""
        return {"seed": self.seed, "query": self.unit, "residual": self.residual, "n_seeds": self.n_seeds,
                "n_units": self.n_units}  # fmt: skip


def variance_components(d: np.ndarray) -> Components:
    """Method-of-moments (ANOVA) estimates for a two-way crossed random-effects model without replication.

    E[MS_seed] = s2_e + U s2_a, E[MS_unit] = s2_e + S s2_b, E[MS_res] = s2_e; negative estimates are set to 0.
    """
    x = _as_seeds(d)
    n_seeds, n_units = x.shape
    if n_units < 2:
        raise ValueError("Variance components need at least two query units.")
    seed_means, unit_means, grand = x.mean(axis=1), x.mean(axis=0), x.mean()
    ms_unit = float(n_seeds * np.var(unit_means, ddof=1))
    if n_seeds < 2:
        return Components(None, ms_unit, None, 1, n_units, None, ms_unit, None)
    ms_seed = float(n_units * np.var(seed_means, ddof=1))
    residuals = x - seed_means[:, None] - unit_means[None, :] + grand
    ms_res = float(np.sum(residuals**2) / ((n_seeds - 1) * (n_units - 1)))
    return Components(
        seed=max(0.0, (ms_seed - ms_res) / n_units), unit=max(0.0, (ms_unit - ms_res) / n_seeds), residual=ms_res,
        n_seeds=n_seeds, n_units=n_units, ms_seed=ms_seed, ms_unit=ms_unit, ms_residual=ms_res,
    )  # fmt: skip


def _satterthwaite(terms: Sequence[tuple[float, float, float]]) -> tuple[float, float]:
    """Variance sum(c * ms) and its Satterthwaite (1946) degrees of freedom from (coefficient, ms, df) terms."""
    total = sum(c * ms for c, ms, _ in terms)
    denominator = sum((c * ms) ** 2 / df for c, ms, df in terms if df > 0)
    df = total**2 / denominator if denominator > 0 else math.inf
    return total, df


@dataclass(frozen=True)
class Estimate:
    """A difference (or level) with its standard error, degrees of freedom and the variance it includes."""

    value: float
    se: float
    df: float
    variance: str

    def _t(self, shift: float = 0.0) -> float:
        if self.se > 0:
            return (self.value - shift) / self.se
        return 0.0 if self.value == shift else math.copysign(math.inf, self.value - shift)

    def p(self) -> float:
        """Two-sided t-test of value = 0."""
        return float(min(1.0, 2 * sps.t.sf(abs(self._t()), self.df)))

    def ci(self, confidence: float = 0.95) -> tuple[float, float]:
        """Two-sided t interval."""
        half = sps.t.ppf(0.5 + confidence / 2, self.df) * self.se
        return float(self.value - half), float(self.value + half)

    def tost(self, margin: float) -> float:
        """Two one-sided tests, H0: |effect| >= margin; p < alpha means 'smaller than margin' (Schuirmann 1987).

        Equivalent to the (1 - 2 alpha) interval lying inside (-margin, +margin).
        """
        above_lower = sps.t.sf(self._t(-margin), self.df)  # H0: effect <= -margin
        below_upper = sps.t.cdf(self._t(margin), self.df)  # H0: effect >= +margin
        return float(max(above_lower, below_upper))

    def beyond(self, margin: float) -> float:
        """Two-sided test of H0: |effect| <= margin; p < alpha means 'at least margin' (the 1 - alpha interval lies
        outside [-margin, +margin])."""
        upper = sps.t.sf(self._t(margin), self.df)  # evidence that effect > +margin
        lower = sps.t.cdf(self._t(-margin), self.df)  # evidence that effect < -margin
        return float(min(1.0, 2 * min(upper, lower)))

    def to_dict(self, confidence: float = 0.95) -> dict[str, float | str | list[float]]:
        """JSON-able standard error, df, interval, p-value and the variance included."""
        return {"se": self.se, "df": self.df, "ci": list(self.ci(confidence)), "p": self.p(),
                "variance": self.variance}  # fmt: skip


SEEDS_AND_QUERIES = ("seeds + queries (crossed random effects, components truncated at 0, so never narrower than the "
                     "paired t-test over seeds or the query-only test)")
SEEDS_ONLY = "seeds only (queries fixed: t-test over per-seed values)"
SEEDS_AND_QUERIES_MDR = ("seeds + queries for a median: t-test over the per-seed differences of medians, its standard "
                         "error never below the query-bootstrap one")


def seed_aware(d: np.ndarray, clusters: np.ndarray | Sequence[int] | None = None) -> Estimate | None:
    """Mean of d[seeds, queries] with seeds and query units both random; None with one seed.

    Var(mean) = s2_a/S + s2_b/U + s2_e/(SU) with the components truncated at 0, i.e. max(MS_seed + MS_unit - MS_res,
    MS_seed, MS_unit)/(SU): never below the paired t-test over seeds (MS_seed) nor the query-only test (MS_unit).
    Degrees of freedom: those of the chosen mean square (S - 1, U - 1) or Satterthwaite's for the combination,
    rounded down; 1 with two seeds. In simulation (tests/test_study_analysis.py) it holds a 5% level within about
    one point with 3 or more seeds, where the query-only test rejects a true null about half the time.
    """
    x = unit_values(d, clusters)
    c = variance_components(x)
    if c.seed is None or c.ms_seed is None or c.ms_residual is None:
        return None
    se, df = _standard_error(c.ms_seed, c.ms_unit, c.ms_residual, c.n_seeds, c.n_units)
    return Estimate(float(x.mean()), se, df, SEEDS_AND_QUERIES)


def _standard_error(
    ms_seed: float, ms_unit: float, ms_residual: float, n_seeds: int, n_units: int
) -> tuple[float, float]:
    """Standard error of the grand mean and its degrees of freedom (see `seed_aware`) from the mean squares."""
    s, u = n_seeds, n_units
    combined = _satterthwaite([(1.0, ms_seed, s - 1), (1.0, ms_unit, u - 1), (-1.0, ms_residual, (s - 1) * (u - 1))])
    variance, df = max([(ms_seed, s - 1), (ms_unit, u - 1), combined], key=lambda t: t[0])  # ties: the first
    df = 1 if s == 2 else df if math.isinf(df) else math.floor(df)
    return math.sqrt(max(variance, 0.0) / (s * u)), df


def seed_level(per_seed: np.ndarray) -> Estimate | None:
    """Mean of one value per seed with queries fixed (the paired t-test over seeds); None with one seed."""
    x = np.asarray(per_seed, dtype=np.float64)
    if len(x) < 2:
        return None
    return Estimate(float(x.mean()), float(np.std(x, ddof=1) / math.sqrt(len(x))), len(x) - 1, SEEDS_ONLY)


def seed_aware_median(per_seed: np.ndarray, query_distribution: np.ndarray, n_units: int) -> Estimate | None:
    """A contrast of medians (MdR) with seeds and queries: the t-test over its per-seed values, with the standard
    error raised to the query-bootstrap standard error (seeds fixed) when that is larger, so identical seeds never
    make a median difference look exact; degrees of freedom follow the chosen source (1 with two seeds)."""
    est = seed_level(per_seed)
    if est is None:
        return None
    query_se = float(np.std(query_distribution, ddof=1))
    n_seeds = len(per_seed)
    se, df = (est.se, est.df) if est.se >= query_se else (query_se, n_units - 1)
    return Estimate(est.value, se, 1 if n_seeds == 2 else df, SEEDS_AND_QUERIES_MDR)


def _planned(c: Components, n_seeds: int, n_units: int) -> tuple[float, float]:
    """Standard error and degrees of freedom of the seed-aware test in a design of `n_seeds` x `n_units`, from the
    expected mean squares of the estimated components."""
    seed, residual = c.seed or 0.0, c.residual or 0.0
    return _standard_error(residual + n_units * seed, residual + n_seeds * c.unit, residual, n_seeds, n_units)


def power(effect: float, se: float, df: float, alpha: float = 0.05) -> float:
    """Power of the two-sided t-test at level `alpha` when the true effect is `effect` (noncentral t)."""
    if se <= 0:
        return 1.0 if effect != 0 else alpha
    critical = sps.t.ppf(1 - alpha / 2, df)
    shift = abs(effect) / se
    wrong_side = np.nan_to_num(sps.nct.cdf(-critical, df, shift))  # negligible; scipy returns NaN far in the tail
    return float(sps.nct.sf(critical, df, shift) + wrong_side)


def minimum_detectable_effect(
    c: Components, n_seeds: int, n_units: int, alpha: float = 0.05, target: float = 0.8
) -> float | None:
    """Smallest true effect the seed-aware two-sided test detects with probability `target` in a design of
    `n_seeds` x `n_units`, given the estimated components; None when the seed variance is unknown (one seed)."""
    if c.seed is None or n_seeds < 2:
        return None
    se, df = _planned(c, n_seeds, n_units)
    if se == 0:
        return 0.0
    upper = (sps.t.ppf(1 - alpha / 2, df) + abs(sps.t.ppf(target, df)) + 10) * se  # power there is ~1
    return float(optimize.brentq(lambda e: power(e, se, df, alpha) - target, 0.0, upper))


def seeds_needed(
    c: Components, effect: float, n_units: int, alpha: float = 0.05, target: float = 0.8
) -> int | None:
    """Fewest seeds (>= 2) for which an effect of `effect` is detected with probability `target` with `n_units` query
    units; None when the seed variance is unknown (one seed) or no number of seeds suffices: with infinitely many
    seeds the query variance alone (s2_b / U) leaves the power below `target`, so more queries are needed."""
    if c.seed is None:
        return None
    if power(effect, math.sqrt(c.unit / n_units), n_units - 1, alpha) < target:
        return None

    def enough(n_seeds: int) -> bool:
        return power(effect, *_planned(c, n_seeds, n_units), alpha) >= target

    high = 2
    while not enough(high):  # power grows with the number of seeds towards the limit above
        high *= 2
    low = max(2, high // 2)
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid + 1, high)
    return low


def classify(tost_p: float | None, beyond_p: float | None, alpha: float) -> str:
    """The equivalence conclusion: 'smaller than margin', 'at least margin' or 'undetermined'."""
    if tost_p is not None and tost_p < alpha:
        return "smaller than margin"
    if beyond_p is not None and beyond_p < alpha:
        return "at least margin"
    return "undetermined"


def _seed_counts(n_seeds: int, n_resamples: int, seed: int) -> np.ndarray:
    """[resamples, seeds]: how often each seed is drawn when seeds are resampled with replacement (a stream apart
    from the query draws of the same seed)."""
    draws = np.random.default_rng([seed, 1]).integers(0, n_seeds, (n_resamples, n_seeds))
    return (draws[:, :, None] == np.arange(n_seeds)).sum(axis=1).astype(np.float64)


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap distributions of one contrast: seeds fixed (queries resampled) and two-level (seeds, then queries)."""

    query_only: np.ndarray
    two_level: np.ndarray

    def intervals(self, confidence: float = 0.95) -> dict[str, list[float]]:
        """Percentile intervals of both distributions."""
        tail = (1 - confidence) / 2
        return {name: [float(v) for v in np.quantile(dist, [tail, 1 - tail])]
                for name, dist in (("query_only", self.query_only), ("two_level", self.two_level))}  # fmt: skip


def bootstrap_contrasts(
    values: Mapping[str, np.ndarray],
    contrasts: Mapping[str, Mapping[str, float]],
    metric: str,
    *,
    clusters: np.ndarray | Sequence[int] | None = None,
    n_resamples: int = 9999,
    seed: int = 0,
) -> dict[str, BootstrapResult]:
    """Bootstrap distributions of sum_m w_m metric(model m), for every contrast, from shared draws (all paired).

    `values`: model -> [seeds, queries] (seeds paired by index across models). A resample draws query units with
    replacement (shared by all models and seeds) and seeds with replacement (shared by all models); each seed's
    metric is computed on the resampled queries, the contrast is formed per seed, and averaged over the seeds as
    they are (query-only) or over the resampled seeds (two-level). A metric of several seeds is the mean of the
    seeds' metrics (for MdR: the mean of the per-seed medians).
    """
    arrays = {m: _as_seeds(v) for m, v in values.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"Every model needs the same [seeds, queries] shape; got {sorted(shapes)}.")
    n_seeds, n = shapes.pop()
    median = statistic(metric) is np.median
    used = sorted({m for w in contrasts.values() for m in w})
    columns = [(arrays[m][s : s + 1], median) for m in used for s in range(n_seeds)]
    flat = bootstrap_statistics(columns, unit_labels(clusters, n), n_resamples, seed)  # shared query draws
    stats = {m: np.stack(flat[i * n_seeds : (i + 1) * n_seeds], axis=1) for i, m in enumerate(used)}  # [B, seeds]
    seed_counts = _seed_counts(n_seeds, n_resamples, seed)
    out = {}
    for key, w in contrasts.items():
        per_seed = sum(coef * stats[m] for m, coef in w.items())
        out[key] = BootstrapResult(per_seed.mean(axis=1), (per_seed * seed_counts).sum(axis=1) / n_seeds)
    return out


def factorial_weights(cells: Mapping[str, frozenset[str]], terms: Sequence[str]) -> dict[str, dict[str, float]]:
    """Main effects and interactions of removing `terms` in a full 2^k design (model -> set of removed terms).

    Effect of a set E of terms: sum over cells of prod_{t in E} s_t / 2^(k - |E|), with s_t = +1 where t is removed
    and -1 where it is kept. A main effect is the mean change when t is removed, averaged over the other terms; the
    interaction of all k = 2 terms is (both removed - ICL removed) - (IDL removed - none removed), the change from
    removing both beyond the sum of removing each. Raises ValueError unless every subset of terms has exactly one
    model.
    """
    k = len(terms)
    by_subset = {frozenset(removed): model for model, removed in cells.items()}
    wanted = {frozenset(c) for r in range(k + 1) for c in combinations(terms, r)}
    if set(by_subset) != wanted or len(by_subset) != len(cells):
        raise ValueError(f"A 2^{k} design of {list(terms)} needs one model per subset of removed terms; got {cells}.")
    effects = {}
    for r in range(1, k + 1):
        for chosen in combinations(terms, r):
            weights = {}
            for removed, model in by_subset.items():
                sign = math.prod(1 if t in removed else -1 for t in chosen)
                weights[model] = sign / 2 ** (k - r)
            effects[" x ".join(chosen)] = weights
    return effects
