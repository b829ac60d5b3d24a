"""The study report's figures (PNG, written atomically): R@1 by variant, the forest plot of every effect with its
query-only and seed-aware intervals, and the training curve of each loss term per variant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmark.io import atomic_path  # noqa: E402
from benchmark.runs import RunRecord  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def r1_by_variant(
    summaries: Sequence[dict[str, Any]], groups: Mapping[str, Sequence[RunRecord]], families: set[str], path: Path
) -> Path:
    """t2v R@1 per variant: bar = mean over seeds, dots = seeds, whiskers = 95% query-bootstrap interval."""
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(summaries) + 2), 3.8))
    for i, s in enumerate(summaries):
        t2v = s["t2v"]
        mean, (low, high) = t2v["mean"]["R@1"], t2v["ci"]["R@1"]
        ax.bar(i, mean, color="#c44e52" if s["name"] in families else "#4c72b0", alpha=0.75)
        ax.errorbar(i, mean, yerr=[[mean - low], [high - mean]], color="black", capsize=4)
        seeds = [r.metrics["t2v"]["R@1"] for r in groups[s["name"]]]
        ax.scatter(np.full(len(seeds), i) + np.linspace(-0.15, 0.15, len(seeds)), seeds, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(summaries)), [s["name"] for s in summaries], rotation=30, ha="right")
    ax.set_ylabel("t2v R@1 (%)")
    ax.set_title("Text-to-video R@1 by variant (dots: seeds; whiskers: 95% CI over queries)")
    return _save(fig, path)


def forest(rows: Sequence[dict[str, Any]], margin: float, metric: str, path: Path) -> Path:
    """Every effect on the primary endpoint: estimate with its query-only interval (grey), seed-aware t interval
    (black, the one claims use) and two-level bootstrap interval (blue); dashed lines at 0 and at +/- margin."""
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6))
    labels = []
    for i, r in enumerate(reversed(rows)):
        y = float(i)
        low, high = r["query_only"]["ci"]
        ax.plot([low, high], [y + 0.22, y + 0.22], color="#999999", lw=2, label="query-only 95% (bootstrap)")
        if r["seed_aware"] is not None:
            low, high = r["seed_aware"]["ci"]
            ax.plot([low, high], [y, y], color="black", lw=2.5, label="seed-aware 95% (t; used for claims)")
            low, high = r["seed_aware"]["ci_bootstrap"]
            ax.plot([low, high], [y - 0.22, y - 0.22], color="#4c72b0", lw=2,
                    label="seed-aware 95% (two-level bootstrap)")
        ax.plot(r["estimate"], y, "o", color="#c44e52", zorder=3, label="estimate")
        labels.append(f"{r['family']}: {r['contrast']}")
    for x, style in ((0.0, "-"), (-margin, "--"), (margin, "--")):
        ax.axvline(x, color="#666666", ls=style, lw=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel(f"{metric} difference (positive: the first model of the contrast is higher); dashed: ±{margin:g}")
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right")
    ax.set_title(f"Effects on {metric}: query-only vs seed-aware intervals")
    return _save(fig, path)


def read_loss_curves(log: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """term -> (steps, values) of every `loss` and `loss/<term>` entry of one run's train_log.jsonl (a torn last line,
    from a killed run, is left out as training does)."""
    from benchmark.engine.train import read_log  # the engine's reader (it imports torch: only when logs are drawn)

    points: dict[str, list[tuple[int, float]]] = {}
    for _, entry in read_log(log)[0]:
        if entry.get("event") != "step":
            continue
        for key, value in entry.items():
            if key == "loss" or key.startswith("loss/"):
                points.setdefault(key.removeprefix("loss/") if key != "loss" else "total", []).append(
                    (entry["step"], float(value)))
    return {t: (np.array([s for s, _ in p]), np.array([v for _, v in p])) for t, p in points.items()}


def mean_curves(logs: Sequence[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each term's curve averaged over the runs (seeds) at the steps they share."""
    per_run = [read_loss_curves(p) for p in logs]
    out = {}
    for term in dict.fromkeys(t for curves in per_run for t in curves):
        runs = [c[term] for c in per_run if term in c]
        steps = sorted(set.intersection(*(set(s.tolist()) for s, _ in runs)))
        values = np.mean([[dict(zip(s.tolist(), v))[k] for k in steps] for s, v in runs], axis=0)
        out[term] = (np.array(steps), values)
    return out


def loss_curves(logs: Mapping[str, Sequence[Path]], path: Path) -> Path | None:
    """One panel per loss term (and the total), one line per variant (mean over seeds, running mean over ~5% of the
    steps); None when no variant has a training log."""
    curves = {name: mean_curves(paths) for name, paths in logs.items() if paths}
    curves = {name: c for name, c in curves.items() if c}
    if not curves:
        return None
    terms = list(dict.fromkeys(t for c in curves.values() for t in c))
    palette = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    colours = {name: palette(i) for i, name in enumerate(curves)}  # one colour per variant in every panel
    cols = min(3, len(terms) + 1)
    rows = -(-(len(terms) + 1) // cols)  # one more panel holds the legend
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        for name, c in curves.items():
            if term in c:
                steps, values = c[term]
                window = max(1, len(values) // 20)
                smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                ax.plot(steps[window - 1:], smooth, lw=1.2, color=colours[name])
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colours[name], lw=1.5) for name in curves]
    axes.flat[len(terms)].legend(handles, list(curves), fontsize=7, loc="center")
    fig.suptitle("Training loss terms per variant (mean over seeds)", fontsize=10)
    return _save(fig, path)
