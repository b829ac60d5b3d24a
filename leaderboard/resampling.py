"""Resampling engines behind `leaderboard.stats`: cluster bootstrap and cluster sign-flip draws in bounded batches,
and exact sign-flip null distributions.

A sampling unit is a set of queries resampled or sign-flipped together: a video with all its captions when several
texts share a video (MSVD text-to-video), otherwise one query. The draws depend only on the number of units and
queries, the number of resamples and the seed, never on the values, so two systems resampled with the same seed are
paired (their per-resample statistics can be subtracted).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# Budget of resampled elements held in memory at once (resamples x max(units, queries)).
BATCH_ELEMENTS = 4_000_000
# Sign-flip nulls are enumerated exactly up to this many units with a non-zero difference (2**20 patterns).
EXACT_UNITS = 20
# Exact lattice nulls (integer-valued unit differences) are built when units x lattice size stays below this.
LATTICE_BUDGET = 50_000_000


@dataclass(frozen=True)
class PValue:
    """A two-sided p-value with the method that produced it.

    `n_resamples` is None for exact methods. `at_floor` is True when a Monte Carlo p sits at its smallest possible
    value 2/(B+1) (no resample was as extreme as the data): the test was limited by B and the true p is smaller.
    """

    p: float
    method: str
    exact: bool
    n_resamples: int | None = None
    at_floor: bool = False

    def to_dict(self) -> dict:
        """JSON-able fields."""
        return asdict(self)


def unit_labels(clusters: np.ndarray | Sequence[int] | None, n: int) -> np.ndarray:
    """Unit index (0..G-1) of each of `n` queries: `clusters` relabelled densely, or one unit per query (None)."""
    if clusters is None:
        return np.arange(n, dtype=np.int64)
    labels = np.asarray(clusters)
    if labels.shape != (n,):
        raise ValueError(f"`clusters` needs one label per query ({n}); got shape {labels.shape}.")
    return np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(n)


def _step(width: int) -> int:
    return max(1, BATCH_ELEMENTS // max(width, 1))


def bootstrap_counts(n_units: int, n_resamples: int, seed: int, width: int | None = None) -> Iterator[np.ndarray]:
    """Batches [n_units, b] (float64 holding integers; one column per resample) of how often each unit is drawn
    when n_units units are drawn with replacement.

    Resample r of a batch draws `rng.integers(0, n_units, (b, n_units))[r]`, the index stream of
    `scipy.stats.bootstrap` for the same seed. `width` (default n_units) only sets the batch size, so that
    [width, b] arrays stay within the budget.
    """
    rng = np.random.default_rng(seed)
    step = _step(max(n_units, width or 0))
    for k in range(0, n_resamples, step):
        b = min(step, n_resamples - k)
        draws = rng.integers(0, n_units, (b, n_units))
        draws *= b
        draws += np.arange(b)[:, None]  # unit u of resample r counts into bin u * b + r
        yield np.bincount(draws.ravel(), minlength=b * n_units).reshape(n_units, b).astype(np.float64)


class _Median:
    """Median over queries of one seed's values on each bootstrap resample, from the units' draw counts.

    The k-th smallest resampled value is found by cumulating the counts over the queries in sorted order. Only a band
    of sorted positions around the sample median is cumulated (four standard deviations of the resampled median's
    position, plus a margin); a resample whose median falls outside the band is computed over all positions, so the
    result is exact, equal to `np.median` of the resampled values.
    """

    def __init__(self, x: np.ndarray, labels: np.ndarray, n_units: int, half: int | None = None) -> None:
        order = np.argsort(x, kind="stable")
        self.values, self.units = x[order], labels[order]
        n, mid = len(x), len(x) // 2
        if half is None:  # band half-width: 4 sd of the count of resampled queries below the median position, + 16
            sizes = np.bincount(labels, minlength=n_units)
            below_mid = np.bincount(self.units[:mid], minlength=n_units)
            half = int(4 * np.sqrt(n_units * np.var(below_mid - sizes / 2))) + 16
        self.lo, self.hi = max(0, mid - half), min(n, mid + half + 1)
        self.below = np.bincount(self.units[: self.lo], minlength=n_units).astype(np.float64)

    def _order_stats(self, cum: np.ndarray, k1: np.ndarray, k2: np.ndarray, offset: int) -> np.ndarray:
        first = np.argmax(cum >= k1, axis=0)
        second = np.argmax(cum >= k2, axis=0)
        return (self.values[offset + first] + self.values[offset + second]) / 2

    def __call__(self, counts: np.ndarray, total: np.ndarray, below: np.ndarray) -> np.ndarray:
        """Medians of a batch: `counts` [units, b], `total` queries per resample, `below` = self.below @ counts."""
        k1, k2 = (total + 1) // 2, total // 2 + 1  # 1-based order statistics whose mean is the median
        cum = np.cumsum(counts[self.units[self.lo : self.hi]], axis=0)
        cum += below
        inside = (below < k1) & (cum[-1] >= k2)
        if inside.all():
            return self._order_stats(cum, k1, k2, self.lo)
        out = np.empty(counts.shape[1])
        out[inside] = self._order_stats(cum[:, inside], k1[inside], k2[inside], self.lo)
        rest = ~inside
        full = np.cumsum(counts[:, rest][self.units], axis=0)
        out[rest] = self._order_stats(full, k1[rest], k2[rest], 0)
        return out


def bootstrap_statistics(
    columns: Sequence[tuple[np.ndarray, bool]], labels: np.ndarray, n_resamples: int, seed: int
) -> list[np.ndarray]:
    """The statistic of each column on each of `n_resamples` cluster-bootstrap resamples (all columns share them).

    A column is (values [seeds, n_queries], median?): its statistic is the mean over seeds of the per-seed mean (or
    median) over the resampled queries, where a resample draws the units (`labels`) with replacement and keeps every
    query of each drawn unit. Every linear part (queries drawn, sums, counts below a median's band) is one matrix
    product per batch.
    """
    n_units = int(labels.max()) + 1
    linear = [np.bincount(labels, minlength=n_units).astype(np.float64)]  # queries per unit
    slices: list[slice] = []
    medians: list[list[_Median]] = []
    for x, median in columns:
        start = len(linear)
        if median:
            medians.append([_Median(row, labels, n_units) for row in x])
            linear += [m.below for m in medians[-1]]
        else:
            medians.append([])
            linear += [np.bincount(labels, weights=row, minlength=n_units) for row in x]
        slices.append(slice(start, len(linear)))
    weights = np.stack(linear)
    out: list[list[np.ndarray]] = [[] for _ in columns]
    for counts in bootstrap_counts(n_units, n_resamples, seed, width=len(labels)):
        mapped = weights @ counts
        total = mapped[0]
        for i, (where, per_seed) in enumerate(zip(slices, medians)):
            if per_seed:
                below = mapped[where]
                out[i].append(np.mean([m(counts, total, below[j]) for j, m in enumerate(per_seed)], axis=0))
            else:
                out[i].append((mapped[where] / total).mean(axis=0))
    return [np.concatenate(o) for o in out]


def _tolerance(observed: float) -> float:
    # values within this of the observed one are the same number up to rounding (percent / rank scale)
    return 100 * np.finfo(np.float64).eps * max(abs(observed), 1.0)


def _two_sided(null: np.ndarray, weights: np.ndarray | None, observed: float) -> float:
    """2 x the smaller tail mass of an exact null distribution (values with probabilities), capped at 1."""
    gamma = _tolerance(observed)
    w = np.full(len(null), 1.0 / len(null)) if weights is None else weights
    less, greater = w[null <= observed + gamma].sum(), w[null >= observed - gamma].sum()
    return float(min(1.0, 2.0 * min(less, greater)))


def _lattice_step(values: np.ndarray) -> float | None:
    """A step s such that every value is an integer multiple of s (None when none with a small denominator)."""
    smallest = np.abs(values).min()
    ratios = np.abs(values) / smallest
    for divisor in range(1, 13):
        scaled = ratios * divisor
        if np.allclose(scaled, np.rint(scaled), rtol=0, atol=1e-6):
            return float(smallest / divisor)
    return None


def _lattice_null(steps: np.ndarray) -> np.ndarray:
    """Probabilities of sum(s_u * steps_u) = -T..T (T = sum(steps)) under independent fair signs s_u (exact DP)."""
    dist = np.ones(1)
    for a in steps:
        grown = np.zeros(len(dist) + 2 * a)
        grown[: len(dist)] += dist
        grown[2 * a :] += dist
        dist = grown / 2
    return dist


def _exact_signflip(d: np.ndarray) -> PValue | None:
    """Exact two-sided sign-flip p of sum(d) over the non-zero unit differences `d`, or None when too costly."""
    observed = float(d.sum())
    if len(d) <= EXACT_UNITS:
        sums = np.zeros(1)
        for a in d:
            sums = np.concatenate([sums + a, sums - a])
        return PValue(_two_sided(sums, None, observed), "exact sign-flip (all sign patterns enumerated)", True)
    step = _lattice_step(d)
    if step is None:
        return None
    steps = np.rint(np.abs(d) / step).astype(np.int64)
    total = int(steps.sum())
    if len(steps) * (2 * total + 1) > LATTICE_BUDGET:
        return None
    observed_steps = int((np.sign(d).astype(np.int64) * steps).sum())  # exact, in units of `step`
    null = np.arange(-total, total + 1)
    return PValue(_two_sided(null, _lattice_null(steps), observed_steps), "exact sign-flip (lattice distribution)",
                  True)


def signflip_pvalues(unit_diffs: np.ndarray, n_resamples: int, seed: int) -> list[PValue]:
    """Two-sided paired sign-flip test of each column of `unit_diffs` [units, tests] (Fisher 1935; Good 2005).

    H0: within every unit the two systems are exchangeable, so each unit's summed difference is as likely to be
    negative as positive; the statistic is the total difference. Exact when at most `EXACT_UNITS` units differ or the
    unit differences live on a small lattice; otherwise Monte Carlo over `n_resamples` sign patterns shared by every
    column, each tail (count + 1) / (B + 1) (never 0), two-sided p = min(1, 2 x smaller tail).
    """
    d = np.asarray(unit_diffs, dtype=np.float64)
    results: list[PValue | None] = []
    for column in d.T:
        nonzero = column[column != 0]
        results.append(PValue(1.0, "exact sign-flip (no unit differs)", True) if len(nonzero) == 0
                       else _exact_signflip(nonzero))
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        observed = d[:, todo].sum(axis=0)
        gamma = np.array([_tolerance(o) for o in observed])
        less = np.zeros(len(todo))
        greater = np.zeros(len(todo))
        rng = np.random.default_rng(seed)
        step = _step(d.shape[0])
        columns, n_units = d[:, todo], d.shape[0]
        for k in range(0, n_resamples, step):
            flips = rng.integers(0, 256, (min(step, n_resamples - k), -(-n_units // 8)), dtype=np.uint8)
            flipped = np.unpackbits(flips, axis=1, count=n_units).astype(np.float64)  # 1 = this unit's sign flips
            null = observed - 2 * (flipped @ columns)
            less += np.count_nonzero(null <= observed + gamma, axis=0)
            greater += np.count_nonzero(null >= observed - gamma, axis=0)
        for j, i in enumerate(todo):
            tail = min(less[j], greater[j])
            p = float(min(1.0, 2.0 * (tail + 1) / (n_resamples + 1)))
            results[i] = PValue(p, "Monte Carlo sign-flip", False, n_resamples, at_floor=bool(tail == 0))
    return [r for r in results if r is not None]


def bootstrap_pvalue(differences: np.ndarray) -> PValue:
    """Two-sided paired bootstrap p of a difference from its B resampled values (percentile-interval inversion).

    p = min(1, 2 x min(#{diff* <= 0} + 1, #{diff* >= 0} + 1) / (B + 1)): the smallest alpha whose two-sided
    percentile interval excludes 0 (Efron & Tibshirani 1993, ch. 15-16), with the +1 of Monte Carlo p-values.
    """
    n = len(differences)
    tail = min(np.count_nonzero(differences <= 0), np.count_nonzero(differences >= 0))
    p = float(min(1.0, 2.0 * (tail + 1) / (n + 1)))
    return PValue(p, "paired bootstrap (percentile inversion)", False, n, at_floor=bool(tail == 0))
