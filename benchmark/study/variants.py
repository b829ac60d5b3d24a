"""The study's runs grouped by variant (one model, several seeds): aligned per-query values, per-variant summaries
and the per-subset breakdown of SynthVTT."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.runs import DIRECTIONS, RunRecord
from leaderboard.stats import StatsSettings, average_over_seeds, intervals, query_values, seed_spread, stack_seeds

Values = dict[str, dict[str, np.ndarray]]  # direction -> metric -> per-query values


@dataclass(frozen=True)
class Variant:
    """One method/config evaluated with one or more seeds on the same split."""

    name: str
    records: tuple[RunRecord, ...]

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.records]

    @property
    def trained(self) -> bool:
        """False for a model that is evaluated without training (zero-shot): its seeds are not a source of variance."""
        return any(r.extra.get("trained", True) for r in self.records)

    def per_seed(self, ties: str) -> dict[int | None, Values]:
        """Per-query values of every metric, by seed."""
        return {r.seed: {d: query_values(r.ranks[d], ties) for d in DIRECTIONS} for r in self.records}

    def values(self, ties: str) -> Values:
        """Per-query values averaged over seeds."""
        return {d: average_over_seeds([query_values(r.ranks[d], ties) for r in self.records]) for d in DIRECTIONS}


def check_same_split(variants: Sequence[Variant]) -> None:
    """Refuse to compare runs evaluated on different splits (fingerprints) or under different protocols."""
    seen = {(r.fingerprint, r.protocol["ties"], r.protocol["v2t"]) for v in variants for r in v.records}
    if len(seen) > 1:
        raise ValueError(f"The runs were evaluated on different splits or protocols: {sorted(seen)}.")


def common_seeds(variants: Sequence[Variant]) -> list[int | None]:
    """Seeds shared by every trained variant (in order); a variant that is not trained is paired with each of them."""
    trained = [v for v in variants if v.trained]
    if not trained:
        return [variants[0].seeds[0]]
    return [s for s in trained[0].seeds if all(s in v.seeds for v in trained[1:])]


def aligned(
    variants: Sequence[Variant], ties: str, seeds: Sequence[int | None] | None = None
) -> tuple[list[int | None], dict[str, Values]]:
    """`seeds` (default: those common to `variants`) and each variant's values on them, direction -> metric ->
    [seeds, queries] (paired by seed; a variant that is not trained is repeated for every seed)."""
    seeds = list(common_seeds(variants) if seeds is None else seeds)
    if not seeds:
        raise ValueError(f"{', '.join(v.name for v in variants)} share no training seed, so they cannot be paired by "
                         "seed: run them with the same seeds (tvbench reproduce --seeds N).")  # fmt: skip
    out: dict[str, Values] = {}
    for v in variants:
        by_seed = v.per_seed(ties)
        rows = [by_seed[s if v.trained else v.seeds[0]] for s in seeds]
        out[v.name] = {d: {m: np.stack([r[d][m] for r in rows]) for m in rows[0][d]} for d in DIRECTIONS}
    return seeds, out


def summarize_variant(
    variant: Variant, settings: StatsSettings, clusters: Mapping[str, np.ndarray | None] | None = None
) -> dict[str, Any]:
    """Mean and sd over seeds of every metric, and the bootstrap interval over query units (`clusters` per direction;
    seeds fixed) of the same quantity, the mean over seeds of each seed's metric."""
    row: dict[str, Any] = {"name": variant.name, "seeds": variant.seeds}
    for d in DIRECTIONS:
        mean, sd = seed_spread([r.metrics[d] for r in variant.records])
        stacked = stack_seeds([query_values(r.ranks[d], settings.ties) for r in variant.records])
        row[d] = {"mean": mean, "sd": sd, "ci": intervals(stacked, settings, (clusters or {}).get(d))}
    return row


def subset_breakdown(
    variants: Mapping[str, Variant], subsets: Mapping[str, np.ndarray], settings: StatsSettings
) -> list[dict[str, Any]]:
    """t2v R@1 (mean over seeds) of every variant on each subset of the test queries (boolean masks)."""
    rows = []
    for name, variant in variants.items():
        hits = variant.values(settings.ties)["t2v"]["R@1"]
        rows.append({"name": name, **{s: float(hits[mask].mean()) for s, mask in subsets.items() if mask.any()}})
    return rows


def synthvtt_subsets(data_root: str | Path, video_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Masks over test queries (given their video ids) by SynthVTT scene kind, and queries in a reversed pair."""
    scenes = json.loads((Path(data_root) / "synthvtt_scenes.json").read_text(encoding="utf-8"))["videos"]
    kinds = np.array([scenes[v]["kind"] for v in video_ids])
    reversed_pair = {v for v, s in scenes.items() if s["twin"] == "reverse"}
    reversed_pair |= {scenes[v]["twin_of"] for v in reversed_pair}
    masks = {f"kind: {k}": kinds == k for k in ("single", "two-phase", "two-object")}
    masks["in a reversed twin pair"] = np.array([v in reversed_pair for v in video_ids])
    masks["all"] = np.ones(len(video_ids), dtype=bool)
    return masks
