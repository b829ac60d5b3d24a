"""The study report of `tvbench reproduce`: protocol, every variant, the ablation effects with paired tests, the
control, a per-subset breakdown, costs, a figure and the answer in plain words (Markdown + HTML + JSON)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmark.io import atomic_path, write_json, write_text  # noqa: E402
from benchmark.metrics import METRICS  # noqa: E402
from benchmark.presets import Preset  # noqa: E402
from benchmark.runs import RunRecord  # noqa: E402
from benchmark.study.analysis import (  # noqa: E402
    ABLATIONS,
    FULL,
    Variant,
    ablation_effects,
    check_same_split,
    plain_answer,
    subset_breakdown,
    summarize_variant,
    synthvtt_subsets,
)
from benchmark.study.document import Bullets, Figure, Heading, Paragraph, Report, Table, to_html, to_markdown  # noqa: E402
from leaderboard.stats import StatsSettings  # noqa: E402

QUESTION = ("What is the effect of removing GLSCL's auxiliary cross-modal consistency losses (the inter-consistency "
            "loss ICL and the intra-diversity loss IDL) on text-video retrieval?")  # fmt: skip


def _cell(summary: dict[str, Any], metric: str) -> str:
    mean, sd, (low, high) = summary["mean"][metric], summary["sd"][metric], summary["ci"][metric]
    spread = f" ± {sd:.1f}" if sd is not None else ""
    return f"{mean:.1f}{spread} [{low:.1f}, {high:.1f}]"


def variant_table(summaries: Sequence[dict[str, Any]], direction: str) -> Table:
    arrows = {m: "↑" if i.higher_is_better else "↓" for m, i in METRICS.items()}
    rows = [[s["name"], len(s["seeds"]), *(_cell(s[direction], m) for m in METRICS)] for s in summaries]
    return Table(["variant", "seeds", *(f"{m} {arrows[m]}" for m in METRICS)], rows,
                 f"{direction}: mean ± sd over seeds [95% bootstrap interval over queries of seed-averaged outcomes]")


def effects_table(effects: Sequence[dict[str, Any]], settings: StatsSettings) -> Table:
    rows = [[ABLATIONS[r["ablation"]], r["direction"], r["metric"], f"{r['value_full']:.2f}",
             f"{r['value_ablation']:.2f}", f"{r['diff']:+.2f}", f"[{r['diff_ci'][0]:+.2f}, {r['diff_ci'][1]:+.2f}]",
             f"{r['p']:.3g}", f"{r['p_holm']:.3g}", "yes" if r["significant"] else "no"]
            for r in effects]  # fmt: skip
    return Table(["removed", "dir", "metric", "full GLSCL", "ablation", "ablation - full",
                  f"unadjusted {settings.confidence:.0%} CI", "p", "p (Holm)", "significant"], rows,
                 "Values on seed-averaged per-query outcomes (MdR: median of the seed-averaged ranks, so it can differ "
                 "from the mean of per-seed medians above); paired randomization test (per-query swap, two-sided); "
                 "paired bootstrap interval of the difference, not adjusted for multiplicity; Holm correction over "
                 "every row of this table decides 'significant'.")


def figure(summaries: Sequence[dict[str, Any]], groups: Mapping[str, Sequence[RunRecord]], path: Path) -> Path:
    """t2v R@1 per variant: bar = mean over seeds, dots = seeds, whiskers = 95% query-bootstrap interval."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for i, s in enumerate(summaries):
        t2v = s["t2v"]
        low, high = t2v["ci"]["R@1"]
        colour = "#c44e52" if s["name"].startswith("glscl") else "#4c72b0"
        ax.bar(i, t2v["mean"]["R@1"], color=colour, alpha=0.75)
        ax.errorbar(i, t2v["mean"]["R@1"], yerr=[[t2v["mean"]["R@1"] - low], [high - t2v["mean"]["R@1"]]],
                    color="black", capsize=4)  # fmt: skip
        seeds = [r.metrics["t2v"]["R@1"] for r in groups[s["name"]]]
        ax.scatter(np.full(len(seeds), i) + np.linspace(-0.15, 0.15, len(seeds)), seeds, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(summaries)), [s["name"] for s in summaries], rotation=30, ha="right")
    ax.set_ylabel("t2v R@1 (%)")
    ax.set_title("Text-to-video R@1 by variant (dots: seeds; whiskers: 95% CI over queries)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def cost_table(groups: Mapping[str, Sequence[RunRecord]], paper_costs: Mapping[str, dict]) -> Table:
    rows = []
    for name, records in groups.items():
        run, paper = records[0].efficiency or {}, paper_costs.get(name, {})
        rows.append([name, f"{run.get('params_added', float('nan')) / 1e6:.2f}",
                     f"{run.get('per_pair_macs', float('nan')):,.0f}",
                     f"{paper['per_pair_macs']:,.0f}" if paper else "-",
                     f"{paper['head_gmacs_1k']:.2f}" if paper else "-"])  # fmt: skip
    return Table(["variant", "params added (M)", "MACs per pair (this run)", "MACs per pair (ViT-B/32, 12 f, 32 w)",
                  "head GMACs @1k x 1k (paper setting)"], rows,
                 "Counted with torch FlopCounterMode (1 MAC = 2 FLOPs); per pair = online scoring work only.")


def calibration_lines(
    summaries: Mapping[str, dict], breakdown: Sequence[dict], n_queries: int, n_videos: int
) -> list[str]:
    """The DESIGN targets for SynthVTT, checked against this run's numbers (facts, not judgements)."""
    lines = []
    mean = {name: s["t2v"]["mean"]["R@1"] for name, s in summaries.items()}
    chance = 100 / n_videos
    if "clip-zeroshot" in mean:
        lines.append(f"Zero-shot t2v R@1 {mean['clip-zeroshot']:.1f}% vs chance {chance:.2f}% "
                     f"({'above' if mean['clip-zeroshot'] > 3 * chance else 'NOT clearly above'} chance).")
    if "clip4clip-meanp" in mean:
        inside = 20 <= mean["clip4clip-meanp"] <= 70
        lines.append(f"Fine-tuned CLIP4Clip-meanP t2v R@1 {mean['clip4clip-meanp']:.1f}% "
                     f"({'inside' if inside else 'OUTSIDE'} the 20-70% target).")
    by_name = {row["name"]: row for row in breakdown}
    for subset in ("kind: two-phase", "in a reversed twin pair"):
        if {"clip4clip-meanp", "clip4clip-seqtransf"} <= by_name.keys() and subset in by_name["clip4clip-meanp"]:
            a, b = by_name["clip4clip-meanp"][subset], by_name["clip4clip-seqtransf"][subset]
            lines.append(f"{subset}: mean pooling {a:.1f}% vs seqTransf {b:.1f}% "
                         f"({'temporal model ahead' if b > a else 'temporal model NOT ahead'}).")
    lines.append(f"Test queries: {n_queries} (one query is {100 / n_queries:.2f} points of t2v R@1).")
    return lines


def write_study_report(
    study_dir: Path,
    preset: Preset,
    groups: Mapping[str, Sequence[RunRecord]],
    test_split: Any,
    *,
    data_root: Path,
    paper_costs: Mapping[str, dict],
    quick: bool,
    leaderboard: Path,
    seconds: float,
    settings: StatsSettings | None = None,
) -> Path:
    """Write report.md, report.html, report.json and the figure into `study_dir`; returns report.md's path."""
    settings = settings or StatsSettings()
    variants = {name: Variant(name, tuple(records)) for name, records in groups.items()}
    check_same_split(list(variants.values()))
    summaries = {name: summarize_variant(v, settings) for name, v in variants.items()}
    effects = ablation_effects(variants, settings) if FULL in variants else []
    subsets = (synthvtt_subsets(data_root, [t.video_id for t in test_split.texts])
               if preset.benchmark == "synthvtt" else {})  # fmt: skip
    breakdown = subset_breakdown(variants, subsets, settings) if subsets else []
    first = next(iter(groups.values()))[0]
    train = first.config.get("train", {})

    report = Report(f"tvbench study: removing GLSCL's auxiliary losses ({preset.name}{', quick' if quick else ''})")
    report.add(Heading("Question"), Paragraph(QUESTION))
    if effects:
        report.add(Heading("Answer"), Bullets(plain_answer(effects, summaries, settings)))
    if quick:
        report.add(Paragraph("QUICK MODE: tiny data and one short epoch; the numbers only show the pipeline works."))
    report.add(
        Heading("Protocol"),
        Bullets([
            f"Benchmark {test_split.benchmark}, test split `{test_split.split}`: {len(test_split.texts)} queries, "
            f"{len(test_split.videos)} videos, fingerprint {test_split.fingerprint[:16]}...",
            f"Backbone {first.config['model'].get('backbone')}; {train.get('max_frames')} frames, "
            f"{train.get('max_words')} words; {train.get('epochs')} epoch(s), batch {train.get('batch_size')}, "
            f"lr {train.get('lr')} (backbone x{train.get('coef_lr')}).",
            f"Seeds per variant: {', '.join(f'{n}: {len(r)}' for n, r in groups.items())}.",
            f"Ties: {first.protocol['ties']} (expected rank under random tie-breaking); v2t: {first.protocol['v2t']}; "
            f"post-processing: {first.protocol['post_processing']}; model selection on "
            f"{'the TEST split (parity mode)' if first.protocol.get('select_on_test') else 'the validation split'}.",
            f"Statistics: {settings.describe()['test']}; {settings.describe()['ci']}; Holm correction; "
            f"alpha {settings.alpha}; {settings.n_resamples} resamples, seed {settings.seed}.",
        ]),
    )  # fmt: skip
    report.add(Heading("Every variant"), variant_table(list(summaries.values()), "t2v"),
               variant_table(list(summaries.values()), "v2t"))
    fig_path = figure(list(summaries.values()), groups, study_dir / "r1_by_variant.png")
    report.add(Figure(fig_path, "t2v R@1 by variant"))
    if effects:
        report.add(Heading("Effect of removing ICL, IDL, both, and the local module (control)"),
                   effects_table(effects, settings))
    if breakdown:
        names = [s for s in subsets if any(s in row for row in breakdown)]
        report.add(Heading("Where the differences are (t2v R@1 by subset, mean over seeds)"),
                   Table(["variant", *names], [[row["name"], *(f"{row.get(s, float('nan')):.1f}" for s in names)]
                                               for row in breakdown]))  # fmt: skip
        report.add(Heading("Benchmark calibration (DESIGN targets)"),
                   Bullets(calibration_lines(summaries, breakdown, len(test_split.texts), len(test_split.videos))))
    report.add(Heading("Cost"), cost_table(groups, paper_costs))
    report.add(Heading("Outputs"), Bullets([
        f"Runs (checkpoints, logs, run records): {study_dir / 'runs'}",
        f"Leaderboard: {leaderboard / 'index.html'} (and md, tex, csv per benchmark)",
        f"Machine-readable report: {study_dir / 'report.json'}",
        f"Wall time of this pipeline call: {seconds:.0f} s; git commit {first.provenance.get('git_commit')}.",
    ]))  # fmt: skip

    md_path = study_dir / "report.md"
    write_text(md_path, to_markdown(report, study_dir))
    write_text(study_dir / "report.html", to_html(report))
    write_json(study_dir / "report.json", {
        "question": QUESTION, "preset": preset.name, "quick": quick, "stats": settings.describe(),
        "variants": list(summaries.values()), "effects": effects, "subsets": breakdown,
        "answer": plain_answer(effects, summaries, settings) if effects else [],
        "paper_costs": {k: {"per_pair_macs": v["per_pair_macs"], "head_gmacs_1k": v["head_gmacs_1k"]}
                        for k, v in paper_costs.items()},
    })  # fmt: skip
    return md_path

