"""Every contrast of the study plan estimated on the runs: query-only and seed-aware numbers side by side, the
equivalence test and the power analysis on the primary endpoint, and Holm's correction within each pre-specified
family (primary, design, placement, pairwise; every non-primary metric in a separate exploratory family)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmark.metrics import METRICS
from benchmark.runs import DIRECTIONS
from benchmark.study.analysis import (
    BootstrapResult,
    Estimate,
    bootstrap_contrasts,
    classify,
    minimum_detectable_effect,
    seed_aware,
    seed_aware_median,
    seeds_needed,
    unit_values,
    variance_components,
)
from benchmark.study.design import Contrast, Plan, StudyDesign
from benchmark.study.variants import Variant, aligned, common_seeds
from leaderboard.resampling import bootstrap_pvalue
from leaderboard.stats import StatsSettings, holm, signflip_test, statistic

EXPLORATORY = "exploratory"
QUERIES_ONLY = ("queries only (seeds fixed): the leaderboard's paired sign-flip test over query units of the "
                "seed-averaged contrast (bootstrap inversion for MdR) and the percentile bootstrap over query units")
# Test families whose contrasts are also estimated on every other metric (in the exploratory family).
WITH_EXPLORATORY = ("primary", "design", "pairwise")


def _tasks(plan: Plan, primary: tuple[str, str]) -> list[tuple[str, str, Contrast, str, str]]:
    """(family, test family, contrast, direction, metric) of every row, primary metric first."""
    tasks = []
    for family, groups in plan.families.items():
        for test_family, contrasts in groups.items():
            tasks += [(family, test_family, c, *primary) for c in contrasts]
        for test_family, contrasts in groups.items():
            if test_family in WITH_EXPLORATORY:
                tasks += [(family, EXPLORATORY, c, d, m) for c in contrasts for d in DIRECTIONS for m in METRICS
                          if (d, m) != primary]  # fmt: skip
    return tasks


def _per_seed_metric(values: np.ndarray, metric: str) -> np.ndarray:
    return statistic(metric)(values, axis=1)


def _row(
    contrast: Contrast, direction: str, metric: str, values: Mapping[str, np.ndarray], seeds: Sequence[Any],
    boot: BootstrapResult, clusters: np.ndarray | None, design: StudyDesign, settings: StatsSettings,
    n_resamples: int,
) -> dict[str, Any]:
    """One contrast on one metric: estimate, both intervals and tests, and (primary endpoint) equivalence and power."""
    per_seed = sum(w * _per_seed_metric(values[m], metric) for m, w in contrast.weights.items())
    intervals = boot.intervals(settings.confidence)
    n_units = len(np.unique(clusters)) if clusters is not None else values[contrast.models[0]].shape[1]
    if statistic(metric) is np.median:  # no per-query decomposition of a median: test over seeds
        d = None
        seed_est: Estimate | None = seed_aware_median(per_seed, boot.query_only, n_units)
        test = bootstrap_pvalue(boot.query_only)
    else:
        d = sum(w * values[m] for m, w in contrast.weights.items())
        seed_est = seed_aware(d, clusters)
        test = signflip_test(d.mean(axis=0), clusters=clusters, n_resamples=n_resamples, seed=settings.seed)
    query = {"ci": intervals["query_only"], "p": test.p, "test": test.method, "exact": test.exact,
             "n_resamples": test.n_resamples, "limited_by_resamples": test.at_floor, "variance": QUERIES_ONLY}
    row: dict[str, Any] = {
        "contrast": contrast.key, "label": contrast.label, "kind": contrast.kind, "weights": contrast.weights,
        "direction": direction, "metric": metric, "higher_is_better": METRICS[metric].higher_is_better,
        "values": {m: float(_per_seed_metric(values[m], metric).mean()) for m in contrast.weights},
        "estimate": float(per_seed.mean()), "seeds": list(seeds), "n_queries": int(values[contrast.models[0]].shape[1]),
        "query_only": query,
    }  # fmt: skip
    if seed_est is None:
        row["seed_aware"] = None
    else:
        row["seed_aware"] = {
            **seed_est.to_dict(settings.confidence), "ci_bootstrap": intervals["two_level"],
            "test": "t-test" + (" over seeds" if d is None else ""),
            "variance_bootstrap": "seeds + queries (two-level bootstrap: seeds, then query units)",
        }  # fmt: skip
    if (direction, metric) == design.primary:
        row["equivalence"] = _equivalence(seed_est, design, settings)
        row["planning"] = _planning(d, clusters, design, settings) if d is not None else None
    return row


def _equivalence(est: Estimate | None, design: StudyDesign, settings: StatsSettings) -> dict[str, Any]:
    """TOST against the margin and the test of 'at least the margin', on the seed-aware estimate."""
    level = 1 - 2 * settings.alpha
    return {
        "margin": design.margin, "p_tost": est.tost(design.margin) if est else None,
        "p_beyond": est.beyond(design.margin) if est else None,
        "ci_tost": list(est.ci(level)) if est else None, "ci_tost_level": level,
    }  # fmt: skip


def _planning(d: np.ndarray, clusters: np.ndarray | None, design: StudyDesign, settings: StatsSettings) -> dict:
    """Variance components of the contrast, its minimum detectable effect here, and seeds needed for the target."""
    c = variance_components(unit_values(d, clusters))
    target, alpha, effect = design.power, settings.alpha, design.planning.effect
    return {
        "components": c.to_dict(), "power": target, "alpha": alpha,
        "mde": minimum_detectable_effect(c, c.n_seeds, c.n_units, alpha, target),
        "effect": effect, "seeds_needed": seeds_needed(c, effect, c.n_units, alpha, target),
        "planning_queries": design.planning.queries, "planning_queries_label": design.planning.queries_label,
        "seeds_needed_at_planning_queries": seeds_needed(c, effect, design.planning.queries, alpha, target),
    }  # fmt: skip


def _adjust(rows: list[dict[str, Any]], alpha: float) -> None:
    """Holm within each (family, test family): query-only p, seed-aware p, and both equivalence p-values; then the
    conclusions (significance and equivalence) from the adjusted seed-aware numbers."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["family"], r["test_family"]), []).append(r)
    for group in groups.values():
        slots = [(lambda r: r["query_only"], "p"), (lambda r: r["seed_aware"], "p"),
                 (lambda r: r.get("equivalence"), "p_tost"), (lambda r: r.get("equivalence"), "p_beyond")]
        for get, key in slots:
            blocks = [get(r) for r in group]
            if not any(b is not None and b[key] is not None for b in blocks):
                continue
            # a test that could not be run counts as p = 1, so the family keeps its size
            adjusted = holm([b[key] if b is not None and b[key] is not None else 1.0 for b in blocks])
            for b, q in zip(blocks, adjusted):
                if b is not None and b[key] is not None:
                    b[f"{key}_holm"] = float(q)
        for r in group:
            r["query_only"].setdefault("p_holm", None)
            r["query_only"]["significant"] = bool((r["query_only"]["p_holm"] or 1.0) < alpha)
            sa = r["seed_aware"]
            r["significant"] = bool(sa is not None and sa.get("p_holm", 1.0) < alpha)
            eq = r.get("equivalence")
            if eq is not None:
                eq.setdefault("p_tost_holm", None)
                eq.setdefault("p_beyond_holm", None)
                conclusion = classify(eq["p_tost_holm"], eq["p_beyond_holm"], alpha)
                eq["conclusion"] = conclusion.replace("margin", f"{eq['margin']:g}")


def estimate_effects(
    plan: Plan,
    variants: Mapping[str, Variant],
    design: StudyDesign,
    settings: StatsSettings,
    clusters: Mapping[str, np.ndarray | None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of every contrast of `plan` (see the module docstring); `clusters`: direction -> sampling unit of each
    query (None: every query is a unit). Bootstrap draws are shared by all contrasts on the same seeds."""
    clusters = clusters or {}
    tasks = _tasks(plan, design.primary)
    family_size = Counter((family, test_family) for family, test_family, *_ in tasks)
    by_seeds: dict[tuple, list[int]] = {}
    for i, (_, _, contrast, _, _) in enumerate(tasks):
        key = tuple(common_seeds([variants[m] for m in contrast.models]))
        by_seeds.setdefault(key, []).append(i)
    rows: list[dict[str, Any] | None] = [None] * len(tasks)
    for seeds, indices in by_seeds.items():
        models = sorted({m for i in indices for m in tasks[i][2].models})
        _, values = aligned([variants[m] for m in models], settings.ties, list(seeds))
        for d, m in {(tasks[i][3], tasks[i][4]) for i in indices}:
            mine = [i for i in indices if (tasks[i][3], tasks[i][4]) == (d, m)]
            arrays: dict[str, np.ndarray] = {name: v[d][m] for name, v in values.items()}
            boots = bootstrap_contrasts(arrays, {str(i): tasks[i][2].weights for i in mine}, m,
                                        clusters=clusters.get(d), n_resamples=settings.n_resamples,
                                        seed=settings.seed)  # fmt: skip
            for i in mine:
                family, test_family, contrast, _, _ = tasks[i]
                b = settings.resamples_for(family_size[family, test_family])  # the smallest p stays reachable
                row = _row(contrast, d, m, arrays, seeds, boots[str(i)], clusters.get(d), design, settings, b)
                rows[i] = {"family": family, "test_family": test_family, **row}
    done = [r for r in rows if r is not None]
    _adjust(done, settings.alpha)
    return done


def primary_rows(rows: Sequence[dict[str, Any]], family: str, test_family: str | None = None) -> list[dict]:
    """The rows of one family (and test family) on the primary endpoint (those with an equivalence block)."""
    return [r for r in rows if r["family"] == family and "equivalence" in r
            and (test_family is None or r["test_family"] == test_family)]  # fmt: skip

