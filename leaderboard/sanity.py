"""Sanity checks of a submission's per-query ranks: is it better than chance, and is it a near-copy of an entry?

Both read only the tie-policy-free rank counts (`benchmark.metrics.QueryRanks`) that every entry stores, so they
apply alike to score matrices and run directories.

Chance: under the null hypothesis that the scores carry no information about which video a text describes (a
random or shuffled matrix), each text query's rank is uniform on 1..N. The test is one-sided on the mean normalised
t2v rank u = (rank - 1) / (N - 1), whose null mean is 1/2. Queries are averaged per target video first and each
video's mean is given the variance of a single uniform rank, the worst case when its captions rank alike (MSVD has
about 40 captions per video whose scores move together when columns are shuffled); so a chance-level matrix is never
taken for a real one because its captions are many.

Near-duplicate: two entries' per-query ranks agree on at least 99% of queries (both directions), and that agreement
is not explained by both ranking almost every query first: Cohen's kappa against the agreement expected from their
rank distributions is at least 0.9.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from benchmark.metrics import QueryRanks
from benchmark.runs import DIRECTIONS, RANK_FIELDS

CHANCE_ALPHA = 1e-3
NEAR_DUPLICATE_AGREEMENT = 0.99
NEAR_DUPLICATE_KAPPA = 0.9


@dataclass(frozen=True)
class ChanceTest:
    """Result of the one-sided test of t2v ranks against chance."""

    p: float  # P(a chance-level matrix ranks at least this well)
    mean_rank: float  # MnR of the t2v queries
    chance_rank: float  # (N + 1) / 2
    n_units: int  # target videos the queries were averaged over

    @property
    def at_chance(self) -> bool:
        """True when the ranks are not significantly better than chance (p > CHANCE_ALPHA)."""
        return self.p > CHANCE_ALPHA

    def describe(self) -> str:
        """One sentence with the numbers of the test."""
        return (
            f"t2v mean rank {self.mean_rank:.1f} against {self.chance_rank:.1f} at chance; one-sided test over "
            f"{self.n_units} target videos, p = {self.p:.2g} (a result counts as better than chance when p <= "
            f"{CHANCE_ALPHA:g})"
        )


def chance_test(t2v: QueryRanks, text_to_video: np.ndarray, n_videos: int) -> ChanceTest:
    """Test the t2v ranks against the uniform ranks of a matrix that carries no information (see module doc)."""
    ranks = t2v.rank("random")
    targets = np.asarray(text_to_video, dtype=np.int64)
    chance_rank = (n_videos + 1) / 2
    if n_videos < 2:
        return ChanceTest(1.0, float(ranks.mean()), chance_rank, 0)
    u = (ranks - 1) / (n_videos - 1)
    counts = np.bincount(targets, minlength=n_videos)
    used = counts > 0
    unit_means = np.bincount(targets, weights=u, minlength=n_videos)[used] / counts[used]
    null_var = (n_videos + 1) / (12 * (n_videos - 1))  # variance of (U - 1) / (N - 1), U uniform on 1..N
    z = (0.5 - float(unit_means.mean())) / math.sqrt(null_var / len(unit_means))
    return ChanceTest(0.5 * math.erfc(z / math.sqrt(2)), float(ranks.mean()), chance_rank, len(unit_means))


def _signatures(ranks: QueryRanks) -> np.ndarray:
    """One row of counts per query (greater, tied_other, tied_relevant): two queries agree when their rows do."""
    return np.stack([getattr(ranks, f) for f in RANK_FIELDS], axis=1)


def _chance_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Agreement expected between two independent rankers with these distributions of per-query signatures."""
    values, inverse = np.unique(np.concatenate([a, b]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = len(a)
    freq_a = np.bincount(inverse[:n], minlength=len(values)) / n
    freq_b = np.bincount(inverse[n:], minlength=len(values)) / n
    return float(freq_a @ freq_b)


@dataclass(frozen=True)
class Agreement:
    """How alike two entries' per-query ranks are (both directions pooled)."""

    observed: float  # fraction of queries ranked identically
    kappa: float  # Cohen's kappa: agreement beyond what the two rank distributions explain

    @property
    def identical(self) -> bool:
        return self.observed == 1.0

    @property
    def near_duplicate(self) -> bool:
        """Agreement of at least 99% of queries that is not explained by both ranking nearly everything first."""
        return self.observed >= NEAR_DUPLICATE_AGREEMENT and self.kappa >= NEAR_DUPLICATE_KAPPA


def agreement(a: Mapping[str, QueryRanks], b: Mapping[str, QueryRanks]) -> Agreement:
    """Observed and chance-corrected agreement of two entries' ranks (dicts direction -> QueryRanks, same split)."""
    total = sum(len(a[d]) for d in DIRECTIONS)
    agree = expected = 0.0
    for d in DIRECTIONS:
        sa, sb = _signatures(a[d]), _signatures(b[d])
        agree += float((sa == sb).all(axis=1).sum())
        expected += _chance_agreement(sa, sb) * len(sa)
    observed, expected = agree / total, expected / total
    if expected >= 1.0:  # both rank every query alike (e.g. all first): identical, nothing left to correct for
        return Agreement(observed, 1.0)
    return Agreement(observed, (observed - expected) / (1.0 - expected))
