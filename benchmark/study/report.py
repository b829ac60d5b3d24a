"""The study report of `tvbench reproduce`: the verdict first, then the question, the answer in words, the protocol
and which variance each number includes, every variant, each family's pre-specified effects (query-only beside
seed-aware), equivalence and power, a forest plot, training curves, the per-subset breakdown, costs, measured training
speed and memory (Markdown, HTML, JSON; the JSON keys are documented in the README)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.io import write_json, write_text
from benchmark.metrics import METRICS
from benchmark.presets import Preset
from benchmark.runs import RunRecord
from benchmark.study import figures
from benchmark.study.analysis import SEEDS_AND_QUERIES, SEEDS_AND_QUERIES_MDR
from benchmark.study.answer import (
    answer_lines,
    conclusion,
    findings_markdown,
    fmt_ci,
    fmt_p,
    placement,
    seeds_label,
    summary_lines,
    verdict,
)
from benchmark.study.calibration import TEST as CALIBRATION_TEST
from benchmark.study.calibration import Row as CalibrationRow
from benchmark.study.calibration import summary as calibration_summary
from benchmark.study.calibration import target_verdicts
from benchmark.study.design import StudyDesign, load_design, plan_contrasts
from benchmark.study.document import Bullets, Figure, Heading, Paragraph, Report, Table, to_html, to_markdown
from benchmark.study.effects import QUERIES_ONLY, estimate_effects
from benchmark.study.variants import (
    Variant,
    check_same_split,
    subset_breakdown,
    summarize_variant,
    synthvtt_subsets,
)
from leaderboard.stats import StatsSettings

SCHEMA = "tvbench-study-report"
SCHEMA_VERSION = 2


def _cell(summary: dict[str, Any], metric: str) -> str:
    mean, sd, (low, high) = summary["mean"][metric], summary["sd"][metric], summary["ci"][metric]
    spread = f" ± {sd:.1f}" if sd is not None else ""
    return f"{mean:.1f}{spread} [{low:.1f}, {high:.1f}]"


def variant_table(summaries: Sequence[dict[str, Any]], direction: str) -> Table:
    arrows = {m: "↑" if i.higher_is_better else "↓" for m, i in METRICS.items()}
    rows = [[s["name"], len(s["seeds"]), *(_cell(s[direction], m) for m in METRICS)] for s in summaries]
    return Table(["variant", "seeds", *(f"{m} {arrows[m]}" for m in METRICS)], rows,
                 f"{direction}: mean ± sd over seeds (training variance) [95% bootstrap interval over query units with "
                 "the seeds fixed (query variance only)]")  # fmt: skip


def _p(block: Mapping[str, Any] | None, key: str = "p") -> str:
    """'p (Holm-adjusted p)' of a test block."""
    if block is None or block.get(key) is None:
        return "n/a"
    holm = block.get(f"{key}_holm")
    return f"{fmt_p(block[key])} ({fmt_p(holm)})" if holm is not None else fmt_p(block[key])


def primary_table(rows: Sequence[dict[str, Any]], design: StudyDesign) -> Table:
    """Rows on the primary endpoint: query-only and seed-aware numbers, equivalence and the conclusion."""
    body = []
    for r in rows:
        sa, eq = r["seed_aware"], r["equivalence"]
        values = ", ".join(f"{m} {v:.1f}" for m, v in r["values"].items())
        body.append([r["label"], r["contrast"], values, f"{r['estimate']:+.2f}", fmt_ci(r["query_only"]["ci"]),
                     _p(r["query_only"]), fmt_ci(sa["ci"] if sa else None), fmt_ci(sa["ci_bootstrap"] if sa else None),
                     _p(sa), _p(eq, "p_tost"), conclusion(r)])  # fmt: skip
    return Table(
        ["comparison", "contrast", "levels", "estimate", "query-only 95% CI", "query-only p (Holm)",
         "seed-aware 95% CI", "two-level bootstrap 95% CI", "seed-aware p (Holm)", "TOST p (Holm)", "conclusion"],
        body,
        f"{design.primary_label}, weights of each contrast over the models' seed means. Query-only: {QUERIES_ONLY}. "
        f"Seed-aware: {SEEDS_AND_QUERIES}; two-level bootstrap: seeds, then query units, resampled. TOST: two "
        f"one-sided tests against ±{design.margin:g}. Holm within this table. The conclusion uses only the "
        "seed-aware numbers.",
    )  # fmt: skip


def exploratory_table(rows: Sequence[dict[str, Any]]) -> Table:
    body = [[r["label"], r["direction"], r["metric"], f"{r['estimate']:+.2f}", fmt_ci(r["query_only"]["ci"]),
             _p(r["query_only"]), fmt_ci(r["seed_aware"]["ci"] if r["seed_aware"] else None), _p(r["seed_aware"]),
             "yes" if r["significant"] else "no"] for r in rows]  # fmt: skip
    return Table(["comparison", "dir", "metric", "estimate", "query-only 95% CI", "query-only p (Holm)",
                  "seed-aware 95% CI", "seed-aware p (Holm)", "seed-aware significant"], body,
                 f"Exploratory: every other metric, Holm within this table. Seed-aware for MdR: "
                 f"{SEEDS_AND_QUERIES_MDR}; its query-only p inverts the query bootstrap.")  # fmt: skip


def planning_table(rows: Sequence[dict[str, Any]], design: StudyDesign) -> Table:
    body = []
    for r in rows:
        plan = r.get("planning")
        if not plan or plan["mde"] is None:
            continue
        c = plan["components"]
        body.append([f"{r['family']}: {r['label']}", f"{np.sqrt(c['seed']):.2f}", f"{np.sqrt(c['query']):.2f}",
                     f"{np.sqrt(c['residual']):.2f}", f"{plan['mde']:.2f}", plan["seeds_needed"] or "unreachable",
                     plan["seeds_needed_at_planning_queries"] or "unreachable"])  # fmt: skip
    p = design.planning
    return Table(["comparison", "sd seed", "sd query", "sd residual", f"MDE ({design.power:.0%} power)",
                  f"seeds for {p.effect:g} here", f"seeds for {p.effect:g} at {p.queries:,} queries"], body,
                 f"Variance components of each contrast (per seed, per query, residual; method of moments), the "
                 f"minimum detectable effect of the seed-aware test with this study's seeds and queries, and the seeds "
                 f"needed for a {p.effect:g}-point effect here and with {p.queries:,} queries ({p.queries_label}), "
                 "assuming the same variances. 'unreachable': the query variance alone exceeds the target.")


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


def step_timing_rows(groups: Mapping[str, Sequence[RunRecord]]) -> list[dict[str, Any]]:
    """Per trained run: the step timing and peak memory its training recorded (`extra.step_timing`, rank 0)."""
    return [{"variant": name, "seed": record.seed, **record.extra["step_timing"]}
            for name, records in groups.items() for record in records if record.extra.get("step_timing")]  # fmt: skip


def step_timing_table(rows: Sequence[dict[str, Any]]) -> Table:
    body = [[row["variant"], str(row["seed"]), row["device_name"], str(row["world_size"]),
             str(row["batch_per_process"]), str(row["timed_steps"]),
             "-" if row["seconds_per_step"] is None else f"{row['seconds_per_step']:.3f}",
             f"{row['peak_memory_bytes'] / 2**30:.2f}", row["peak_memory_kind"]] for row in rows]  # fmt: skip
    return Table(["variant", "seed", "device", "processes", "batch per process", "timed steps", "seconds per step",
                  "peak memory (GiB)", "peak kind"], body,
                 "Rank 0 of each run: the mean wall time of an optimiser step after the first (warm-up) step, data "
                 "loading not included; cuda_max_memory_allocated = CUDA allocator peak since training began, "
                 "cpu_process_peak_rss = the process's peak resident memory since it started (loading included).")


def calibration_table(rows: Sequence[CalibrationRow]) -> Table:
    """The DESIGN targets checked on this study's runs: one line per check with its number and pass / fail."""
    body = [[r.target, r.check, "" if r.value is None else f"{r.value:.2f}", r.threshold, r.status, r.detail]
            for r in rows]  # fmt: skip
    return Table(["target", "check", "value", "threshold", "status", "detail"], body,
                 f"{calibration_summary(rows)} Value: points of t2v R@1 (a ratio for the parameter row). Test: "
                 f"{CALIBRATION_TEST}.")  # fmt: skip


def sampling_units(test_split: Any) -> dict[str, np.ndarray | None]:
    """Sampling units per direction: t2v queries grouped by video where several captions share one (MSVD)."""
    index = np.asarray(test_split.text_to_video)
    return {"t2v": index if len(np.unique(index)) < len(index) else None, "v2t": None}


def variance_lines(design: StudyDesign, settings: StatsSettings) -> list[str]:
    """Which variance each number of the report includes."""
    return [
        "'± sd' in the variant tables: training variance only (sd of the per-seed metrics).",
        "'[interval]' in the variant tables and every 'query-only' number: query variance only (seeds fixed at the "
        f"ones run): {QUERIES_ONLY}.",
        f"Every 'seed-aware' number: {SEEDS_AND_QUERIES}. For MdR (a median has no per-query decomposition): "
        f"{SEEDS_AND_QUERIES_MDR}. The two-level bootstrap interval resamples seeds, then query units "
        f"({settings.n_resamples} resamples, seed {settings.seed}).",
        f"Claims (significance, equivalence, the verdict) use only the seed-aware tests, Holm-corrected within each "
        f"pre-specified family at alpha {settings.alpha}; TOST margin ±{design.margin:g} on {design.primary_label}.",
        "Planning numbers (minimum detectable effect, seeds needed) come from the seed, query and residual variance "
        "components of each contrast.",
    ]


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
    train_logs: Mapping[str, Sequence[Path]] | None = None,
    calibration: Sequence[CalibrationRow] = (),
) -> Path:
    """Write report.md, report.html, report.json, findings.md and the figures into `study_dir`; returns report.md.
    `calibration`: the rows of the SynthVTT calibration table (`benchmark.study.calibration`), if any."""
    settings = settings or StatsSettings()
    design = load_design(preset)
    variants = {name: Variant(name, tuple(records)) for name, records in groups.items()}
    check_same_split(list(variants.values()))
    units = sampling_units(test_split)
    summaries = {name: summarize_variant(v, settings, units) for name, v in variants.items()}
    plan = plan_contrasts(design, list(groups))
    rows = estimate_effects(plan, variants, design, settings, units)
    families = [f for f in plan.families if f != "baselines"]
    on_primary = [r for r in rows if "equivalence" in r]
    verdicts = [verdict(f, [r for r in on_primary if r["family"] == f and r["test_family"] in ("primary", "pairwise")],
                        design) for f in families]  # fmt: skip
    placements = placement([r for r in on_primary if r["test_family"] == "placement"])
    answer = answer_lines(design, rows, families, plan.notes, seeds_label(len(v.records) for v in variants.values()))
    subsets = (synthvtt_subsets(data_root, [t.video_id for t in test_split.texts])
               if preset.benchmark == "synthvtt" else {})  # fmt: skip
    breakdown = subset_breakdown(variants, subsets, settings) if subsets else []
    first = next(iter(groups.values()))[0]
    train = first.config.get("train", {})
    members = {m for f in design.families for m in f.members}

    report = Report(f"tvbench study ({preset.name}{', quick' if quick else ''}): "
                    f"{', '.join(families) or 'no comparison'}")  # fmt: skip
    report.add(*[Paragraph(v) for v in verdicts], *[Paragraph(p) for p in placements])
    if quick:
        report.add(Paragraph("QUICK MODE: tiny data and one short epoch; the numbers only show the pipeline works."))
    if preset.notes.get("rehearsal"):
        report.add(Paragraph(f"REHEARSAL: {preset.notes['rehearsal']} Random CLIP weights and fabricated videos; "
                             "the numbers only show that the real pipeline works."))
    report.add(Heading("Question"), Paragraph(design.question))
    report.add(Heading("Answer"), Bullets(answer))
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
        ]),
        Heading("Which variance each number includes", level=3),
        Bullets(variance_lines(design, settings)),
    )  # fmt: skip
    report.add(Heading("Every variant"), variant_table(list(summaries.values()), "t2v"),
               variant_table(list(summaries.values()), "v2t"))
    report.add(Figure(figures.r1_by_variant(list(summaries.values()), groups, members,
                                            study_dir / "r1_by_variant.png"), "t2v R@1 by variant"))
    for family, tests in plan.families.items():
        report.add(Heading(f"{family}: effects on {design.primary_label}"))
        for test_family in tests:
            mine = [r for r in on_primary if r["family"] == family and r["test_family"] == test_family]
            if mine:
                report.add(Heading(f"{test_family} family ({len(mine)} comparisons)", level=3),
                           primary_table(mine, design))
        explored = [r for r in rows if r["family"] == family and r["test_family"] == "exploratory"]
        if explored:
            report.add(Heading("exploratory family (other metrics)", level=3), exploratory_table(explored))
    if on_primary:
        report.add(Heading("Every effect, query-only vs seed-aware"),
                   Figure(figures.forest(on_primary, design.margin, design.primary_label, study_dir / "forest.png"),
                          "forest plot of every effect on the primary endpoint"))  # fmt: skip
        planning = planning_table([r for r in on_primary if r["test_family"] in ("primary", "pairwise")], design)
        if planning.rows:
            report.add(Heading("Power and planning"), planning)
    curves = figures.loss_curves(dict(train_logs or {}), study_dir / "loss_curves.png")
    if curves is not None:
        report.add(Heading("Training curves"), Figure(curves, "loss terms per variant (mean over seeds)"))
    if breakdown:
        names = [s for s in subsets if any(s in row for row in breakdown)]
        report.add(Heading("Where the differences are (t2v R@1 by subset, mean over seeds)"),
                   Table(["variant", *names], [[row["name"], *(f"{row.get(s, float('nan')):.1f}" for s in names)]
                                               for row in breakdown]))  # fmt: skip
    if calibration:
        report.add(Heading("Benchmark calibration (DESIGN targets)"), calibration_table(calibration))
    report.add(Heading("Cost"), cost_table(groups, paper_costs))
    timings = step_timing_rows(groups)
    if timings:
        report.add(Heading("Training speed and memory (measured)"), step_timing_table(timings))
    report.add(Heading("Outputs"), Bullets([
        f"Runs (checkpoints, logs, run records): {study_dir / 'runs'}",
        f"Leaderboard: {leaderboard / 'index.html'} (and md, tex, csv per benchmark)",
        f"Machine-readable report: {study_dir / 'report.json'} (keys: README 'report.json')",
        f"Wall time of this pipeline call: {seconds:.0f} s; git commit {first.provenance.get('git_commit')}.",
    ]))  # fmt: skip

    doc = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "question": design.question, "preset": preset.name,
        "quick": quick, "n_queries": len(test_split.texts), "n_videos": len(test_split.videos),
        "design": {"primary": "/".join(design.primary), "margin": design.margin, "power": design.power,
                   "planning": vars(design.planning), "families": list(families), "notes": plan.notes},
        "stats": {**settings.describe(), "query_only": QUERIES_ONLY, "seed_aware": SEEDS_AND_QUERIES,
                  "seed_aware_mdr": SEEDS_AND_QUERIES_MDR,
                  "two_level_bootstrap": "seeds, then query units, with replacement"},
        "verdict": verdicts, "placement": placements, "summary": summary_lines(rows, families), "answer": answer,
        "variants": list(summaries.values()), "effects": rows, "subsets": breakdown, "step_timing": timings,
        "calibration": {"test": CALIBRATION_TEST, "summary": calibration_summary(calibration),
                        "targets": target_verdicts(calibration),
                        "rows": [r.to_dict() for r in calibration]} if calibration else None,
        "paper_costs": {k: {"per_pair_macs": v["per_pair_macs"], "head_gmacs_1k": v["head_gmacs_1k"]}
                        for k, v in paper_costs.items()},
    }  # fmt: skip
    md_path = study_dir / "report.md"
    write_text(md_path, to_markdown(report, study_dir))
    write_text(study_dir / "report.html", to_html(report))
    write_json(study_dir / "report.json", doc)
    write_text(study_dir / "findings.md", findings_markdown(doc) + "\n")
    return md_path
