"""The study report on synthetic run records whose answer is known: the verdict line first, seed-aware numbers beside
query-only ones, the 2x2 factorial, the placement against the baselines, figures, stable report.json keys, families
skipped when their models are absent, a user-chosen model list, and the README block generated from the report."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.split import Split, TextRecord, VideoRecord
from benchmark.metrics import evaluate_scores
from benchmark.presets import load_preset
from benchmark.runs import RunRecord
from benchmark.study.answer import (
    README_END,
    README_START,
    findings_markdown,
    planning_summary,
    readme_markers,
    seeds_label,
    splice_readme,
)
from benchmark.study.calibration import Row, calibration_table, target_verdicts
from benchmark.study.design import load_design
from benchmark.study.report import sampling_units as report_clusters
from benchmark.study.report import step_timing_rows, step_timing_table, write_study_report
from benchmark.study.variants import Variant
from leaderboard.stats import StatsSettings

N = 300
SEEDS = (0, 1, 2)
FAST = StatsSettings(n_resamples=400)


def _split() -> Split:
    videos = [VideoRecord(f"v{i}", f"v{i}.mp4") for i in range(N)]
    return Split("toy", "test", videos, [TextRecord(f"t{i}", f"caption {i}", f"v{i}") for i in range(N)])


def _hits(rng: np.random.Generator, rate: float) -> np.ndarray:
    return rng.random(N) < rate


def _record(split: Split, model: str, seed: int, hits: np.ndarray, trained: bool = True) -> RunRecord:
    """A run whose t2v R@1 is exactly the share of `hits`: the relevant video scores top or bottom."""
    scores = np.random.default_rng(seed).normal(size=(N, N))
    np.fill_diagonal(scores, np.where(hits, 10.0, -10.0))
    result = evaluate_scores(scores)
    return RunRecord(
        method=model, config={"model": {"backbone": "toy"}, "train": {"max_frames": 4, "max_words": 8, "epochs": 1}},
        benchmark=split.benchmark, split=split.split, fingerprint=split.fingerprint, n_texts=N, n_videos=N,
        protocol={**result["protocol"], "post_processing": "none"}, metrics={d: result[d] for d in ("t2v", "v2t")},
        ranks=dict(result["ranks"]), provenance={}, seed=seed, extra={"trained": trained},
    )


def _exactly(rng: np.random.Generator, among: np.ndarray, count: int) -> np.ndarray:
    """`count` of the queries marked in `among`, chosen at random."""
    out = np.zeros(N, dtype=bool)
    out[rng.choice(np.flatnonzero(among), count, replace=False)] = True
    return out


def _study(split: Split) -> dict[str, list[RunRecord]]:
    """Known effects on t2v R@1: no-idl identical to full (0), no-aux exactly 20 points worse on every seed, no-icl
    around 0 but whole seeds moving by 15 points, the baseline CLIP4Clip-meanP about 20 points above full GLSCL."""
    rng = np.random.default_rng(0)
    groups: dict[str, list[RunRecord]] = {m: [] for m in ("clip-zeroshot", "clip4clip-meanp", "glscl", "glscl-no-icl",
                                                          "glscl-no-idl", "glscl-no-aux", "glscl-global-only")}
    groups["clip-zeroshot"].append(_record(split, "clip-zeroshot", 0, _hits(rng, 0.05), trained=False))
    everything = np.ones(N, dtype=bool)
    for s in SEEDS:
        full = _exactly(rng, everything, 120)  # 40%
        kept = full & ~_exactly(rng, full, 60)  # 20%
        groups["glscl"].append(_record(split, "glscl", s, full))
        groups["glscl-no-idl"].append(_record(split, "glscl-no-idl", s, full))
        groups["glscl-no-aux"].append(_record(split, "glscl-no-aux", s, kept))
        groups["glscl-global-only"].append(_record(split, "glscl-global-only", s, kept))
        shift = (-0.15, 0.0, 0.15)[s]  # training noise: whole seeds move by 15 points
        groups["glscl-no-icl"].append(_record(split, "glscl-no-icl", s, _hits(rng, 0.4 + shift)))
        groups["clip4clip-meanp"].append(_record(split, "clip4clip-meanp", s, full | _hits(rng, 0.34)))
    return groups


def _logs(tmp: Path, groups: dict[str, list[RunRecord]]) -> dict[str, list[Path]]:
    logs: dict[str, list[Path]] = {}
    for model, records in groups.items():
        if not records[0].extra["trained"]:
            continue
        for r in records:
            path = tmp / "logs" / model / f"seed{r.seed}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            terms = {"loss/nce": 3.0, **({"loss/icl": 0.5, "loss/idl": 0.1} if model == "glscl" else {})}
            lines = [{"event": "start", "step": 0}] + [
                {"event": "step", "step": k, "loss": sum(terms.values()) / k, **{t: v / k for t, v in terms.items()}}
                for k in range(1, 9)]
            torn = '{"event": "step", "st' if r.seed == 0 else ""  # a run killed mid-write: left out
            path.write_text("".join(json.dumps(line) + "\n" for line in lines) + torn)
            logs.setdefault(model, []).append(path)
    return logs


def _write(tmp: Path, groups: dict[str, list[RunRecord]], split: Split, preset_name: str = "synthvtt",
           calibration: tuple[Row, ...] = (), **study: object) -> tuple[str, dict]:
    preset = load_preset(preset_name)
    preset = dataclasses.replace(preset, benchmark="toy", study={**preset.study, **study})
    out = tmp / "study"
    out.mkdir(exist_ok=True)
    md = write_study_report(out, preset, groups, split, data_root=tmp, paper_costs={}, quick=False,
                            leaderboard=tmp / "lb", seconds=1.0, settings=FAST, train_logs=_logs(tmp, groups),
                            calibration=calibration)  # fmt: skip
    return md.read_text(), json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def full_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, Path]:
    tmp = tmp_path_factory.mktemp("study")
    split = _split()
    text, doc = _write(tmp, _study(split), split)
    return text, doc, tmp / "study"


def _row(doc: dict, contrast: str, test_family: str, direction: str = "t2v", metric: str = "R@1") -> dict:
    return next(r for r in doc["effects"] if r["contrast"] == contrast and r["test_family"] == test_family
                and (r["direction"], r["metric"]) == (direction, metric))


def test_the_report_starts_with_a_verdict_the_known_effects_support(full_study: tuple[str, dict, Path]) -> None:
    text, doc, _ = full_study
    first = text.splitlines()[2]
    assert first.startswith("Verdict (GLSCL, t2v R@1, seeds and queries as random factors, margin ±2 points, Holm "
                            "over 4 comparisons):")
    assert "IDL removed: smaller than 2 points" in first
    assert "ICL and IDL removed: at least 2 points (worse)" in first
    assert "ICL removed: undetermined" in first  # seeds disagree by 30 points: no claim either way
    assert "Minimum detectable effect at 80% power" in first
    assert doc["verdict"] == [first]
    placement = text.splitlines()[4]
    assert placement.startswith("On this benchmark, full glscl (t2v R@1 ") and "below clip4clip-meanp" in placement
    assert "above clip-zeroshot" in placement
    # Each comparison names its multiplicity-adjusted p: an unadjusted interval excluding 0 may still be 'not
    # significant' after Holm, and the sentence must say why.
    assert re.search(r"below clip4clip-meanp \([^)]*seed-aware 95% CI \[[^]]+\], (not )?significant, Holm p ",
                     placement)
    planning = next(line for line in doc["answer"] if line.startswith("GLSCL planning:"))
    assert re.search(r"would need [0-9,-]+ seeds( \(no number of seeds suffices for some comparisons: their query "
                     r"variance alone is too large\))? at \d+ queries, or ", planning), planning


def test_seed_aware_numbers_sit_beside_query_only_ones(full_study: tuple[str, dict, Path]) -> None:
    _, doc, _ = full_study
    noisy = _row(doc, "glscl-no-icl - glscl", "primary")
    # whole seeds move by +/-15 points: queries alone call it significant or not, seeds widen the interval a lot
    width = noisy["seed_aware"]["ci"][1] - noisy["seed_aware"]["ci"][0]
    assert width > 3 * (noisy["query_only"]["ci"][1] - noisy["query_only"]["ci"][0])
    assert noisy["equivalence"]["conclusion"] == "undetermined" and not noisy["significant"]
    bare = _row(doc, "glscl-no-aux - glscl", "primary")
    assert bare["estimate"] == pytest.approx(-20) and bare["significant"]
    assert bare["equivalence"]["conclusion"] == "at least 2"
    same = _row(doc, "glscl-no-idl - glscl", "primary")
    assert same["estimate"] == 0 and same["equivalence"]["conclusion"] == "smaller than 2"
    for r in doc["effects"]:
        assert r["query_only"]["p_holm"] >= r["query_only"]["p"] - 1e-12
        assert r["seed_aware"]["p_holm"] >= r["seed_aware"]["p"] - 1e-12
    plan = bare["planning"]
    assert plan["mde"] > 0 and plan["components"]["n_seeds"] == 3 and plan["planning_queries"] == 1000


def test_families_factorial_and_direct_comparison(full_study: tuple[str, dict, Path]) -> None:
    _, doc, _ = full_study
    families = {(r["family"], r["test_family"]) for r in doc["effects"]}
    assert families == {("GLSCL", "primary"), ("GLSCL", "design"), ("GLSCL", "exploratory"),
                        ("baselines", "placement")}
    primary = [r["contrast"] for r in doc["effects"] if r["test_family"] == "primary"]
    assert primary == ["glscl-no-icl - glscl", "glscl-no-idl - glscl", "glscl-no-aux - glscl",
                       "glscl-global-only - glscl"]
    values = {m: v for r in doc["effects"] if r["test_family"] == "primary" for m, v in r["values"].items()}
    main_icl = _row(doc, "main effect ICL", "design")
    expected = (values["glscl-no-icl"] + values["glscl-no-aux"] - values["glscl"] - values["glscl-no-idl"]) / 2
    assert main_icl["estimate"] == pytest.approx(expected)
    inter = _row(doc, "interaction ICL x IDL", "design")
    assert inter["estimate"] == pytest.approx(values["glscl-no-aux"] - values["glscl-no-icl"]
                                              - values["glscl-no-idl"] + values["glscl"])
    direct = _row(doc, "glscl-no-aux - glscl-global-only", "design")
    assert direct["estimate"] == 0
    assert len([r for r in doc["effects"] if r["test_family"] == "exploratory"]) == 8 * 9


def test_report_files_figures_and_keys(full_study: tuple[str, dict, Path]) -> None:
    text, doc, out = full_study
    for name in ("forest.png", "loss_curves.png", "r1_by_variant.png"):
        assert (out / name).stat().st_size > 5000
        assert f"]({name})" in text
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert {"schema", "schema_version", "question", "preset", "quick", "n_queries", "n_videos", "design", "stats",
            "verdict", "placement", "summary", "answer", "variants", "effects", "subsets", "calibration",
            "paper_costs"} <= set(doc)
    assert doc["calibration"] is None and "Benchmark calibration" not in text  # no table given: none written
    row = _row(doc, "glscl-no-aux - glscl", "primary")
    assert {"family", "test_family", "contrast", "label", "kind", "weights", "direction", "metric",
            "higher_is_better", "values", "estimate", "seeds", "n_queries", "query_only", "seed_aware",
            "significant", "equivalence", "planning"} <= set(row)
    assert {"ci", "p", "p_holm", "test", "exact", "n_resamples", "limited_by_resamples", "variance"} <= set(
        row["query_only"])
    assert {"ci", "ci_bootstrap", "se", "df", "p", "p_holm", "variance"} <= set(row["seed_aware"])
    assert {"margin", "p_tost", "p_tost_holm", "p_beyond", "p_beyond_holm", "conclusion"} <= set(row["equivalence"])
    assert "### Which variance each number includes" in text and "## Training curves" in text
    assert (out / "findings.md").read_text().strip() == findings_markdown(doc)


def test_calibration_table_in_report_md_and_json(tmp_path: Path) -> None:
    split = _split()
    groups = _study(split)
    runs = {m: Variant(m, tuple(records)) for m, records in groups.items()}
    subsets = {"kind: two-phase": np.arange(N) < 100, "all": np.ones(N, dtype=bool)}
    rows = calibration_table({"toy": runs}, subsets, {"toy": 1000}, load_design(load_preset("synthvtt")))
    text, doc = _write(tmp_path, groups, split, calibration=tuple(rows))
    assert "## Benchmark calibration (DESIGN targets)" in text
    table = re.sub(" +", " ", text.split("## Benchmark calibration (DESIGN targets)")[1].split("\n## ")[0])
    assert "| 1 fine-tuning matters | clip4clip-meanp - clip-zeroshot |" in table and "| pass |" in table
    assert "| 3 power |" in table and "| fail |" in table and "| not run |" in table  # 300 queries, 3 seeds
    assert [r["check"] for r in doc["calibration"]["rows"]] == [r.check for r in rows]
    meanp = doc["calibration"]["rows"][0]
    assert meanp["status"] == "pass" and meanp["value"] == pytest.approx(rows[0].value)
    assert re.match(r"1 of 11 rows pass \(8 not run, 0 n/a\)\. Targets: 1 fine-tuning matters: met; ",
                    doc["calibration"]["summary"]) and "seed_aware" in doc["calibration"]["test"]
    assert doc["calibration"]["targets"] == target_verdicts(rows)
    assert doc["calibration"]["targets"]["3 power"] == "not met"


def test_both_families_side_by_side(tmp_path: Path) -> None:
    split = _split()
    groups = _study(split)
    rename = {"glscl": "glccl", "glscl-no-aux": "glccl-no-csc", "glscl-global-only": "glccl-video-only"}
    for old, new in rename.items():
        groups[new] = [dataclasses.replace(r, method=new) for r in groups[old]]
    text, doc = _write(tmp_path, groups, split)
    verdicts = doc["verdict"]
    assert [v.split(",")[0] for v in verdicts] == ["Verdict (GLSCL", "Verdict (GLCCL"]
    assert "CSC removed: at least 2 points (worse)" in verdicts[1] and "Holm over 2 comparisons" in verdicts[1]
    glccl = {(r["test_family"], r["contrast"]) for r in doc["effects"] if r["family"] == "GLCCL"
             and r["metric"] == "R@1" and r["direction"] == "t2v"}
    assert glccl == {("primary", "glccl-no-csc - glccl"), ("primary", "glccl-video-only - glccl"),
                     ("design", "glccl-no-csc - glccl-video-only")}  # one term: no factorial
    assert "## GLCCL: effects on t2v R@1" in text


def test_a_chosen_model_list_is_compared_pairwise(tmp_path: Path) -> None:
    split = _split()
    groups = {m: r for m, r in _study(split).items() if m in ("clip4clip-meanp", "glscl-no-icl", "clip-zeroshot")}
    text, doc = _write(tmp_path, groups, split)
    assert text.splitlines()[2].startswith("Verdict (chosen models, t2v R@1")
    pairs = [r["contrast"] for r in doc["effects"] if r["test_family"] == "pairwise"]
    assert pairs == ["clip-zeroshot - clip4clip-meanp", "clip-zeroshot - glscl-no-icl",
                     "clip4clip-meanp - glscl-no-icl"]
    assert "clip-zeroshot worse than clip4clip-meanp" in text.splitlines()[2]
    assert "GLSCL: skipped, the runs lack glscl" in " ".join(doc["answer"])
    seeds = len(groups["clip4clip-meanp"])
    assert f"budget ({seeds} seeds per variant)" in doc["answer"][-1]  # no comparison row needed to count them


def test_one_seed_makes_no_seed_aware_claim(tmp_path: Path) -> None:
    split = _split()
    groups = {m: r[:1] for m, r in _study(split).items() if m in ("clip4clip-meanp", "glscl", "glscl-no-aux")}
    text, doc = _write(tmp_path, groups, split)
    assert text.splitlines()[2] == ("Verdict (GLSCL, t2v R@1, seeds and queries as random factors, margin ±2 points, "
                                    "Holm over 1 comparison): undetermined: one seed per variant, so training "
                                    "variance cannot be estimated and no claim is made.")
    assert all(r["seed_aware"] is None and not r["significant"] for r in doc["effects"])
    assert "GLSCL: partial, the runs lack glscl-no-icl, glscl-no-idl, glscl-global-only" in text
    assert "budget (1 seed per variant)" in doc["answer"][-1]


def test_models_without_a_common_seed_are_refused(tmp_path: Path) -> None:
    split = _split()
    study = _study(split)
    groups = {"glscl": study["glscl"][:1], "glscl-no-aux": study["glscl-no-aux"][1:2]}
    with pytest.raises(ValueError, match="share no training seed"):
        _write(tmp_path, groups, split)


def test_captions_of_one_video_are_one_sampling_unit() -> None:
    videos = [VideoRecord(f"v{i}", f"v{i}.mp4") for i in range(3)]
    texts = [TextRecord(f"t{i}", "c", f"v{i // 2}") for i in range(6)]
    units = report_clusters(Split("toy", "test", videos, texts))
    assert units["t2v"].tolist() == [0, 0, 1, 1, 2, 2] and units["v2t"] is None
    assert report_clusters(_split()) == {"t2v": None, "v2t": None}


def test_readme_block_is_replaced_between_its_markers() -> None:
    readme = f"intro\n{README_START}\nold numbers\n{README_END}\nrest\n"
    assert splice_readme(readme, "new block") == f"intro\n{README_START}\nnew block\n{README_END}\nrest\n"
    with pytest.raises(ValueError, match="markers"):
        splice_readme("no markers here", "x")
    shipped = Path("README.md").read_text()
    assert shipped.count(README_START) == 1 and shipped.count(README_END) == 1
    full_start, full_end = readme_markers("synthvtt-full")
    assert (full_start, full_end) != (README_START, README_END) and "synthvtt-full" in full_start
    both = f"{readme}{full_start}\nold full\n{full_end}\n"
    spliced = splice_readme(both, "full block", "synthvtt-full")
    assert f"{full_start}\nfull block\n{full_end}" in spliced and "old numbers" in spliced
    with pytest.raises(ValueError, match="synthvtt-full"):
        splice_readme(readme, "x", "synthvtt-full")


def test_measured_step_timing_table_lists_each_trained_run() -> None:
    groups = _study(_split())
    timing = {"device": "cuda:0", "device_name": "NVIDIA H100", "world_size": 2, "batch_per_process": 64,
              "steps": 10, "warmup_steps": 1, "timed_steps": 9, "seconds_per_step": 0.4321,
              "seconds_per_step_median": 0.43, "peak_memory_kind": "cuda_max_memory_allocated",
              "peak_memory_bytes": 3 * 2**30, "peak_memory_reserved_bytes": 4 * 2**30}
    first = groups["glscl"][1]
    groups["glscl"][1] = dataclasses.replace(first, extra={**first.extra, "step_timing": timing})
    rows = step_timing_rows(groups)
    assert rows == [{"variant": "glscl", "seed": first.seed, **timing}]  # runs without a timing are left out
    table = step_timing_table(rows)
    assert table.rows == [["glscl", str(first.seed), "NVIDIA H100", "2", "64", "9", "0.432", "3.00",
                           "cuda_max_memory_allocated"]]


def test_findings_block_carries_the_calibration_summary_when_the_report_has_one() -> None:
    doc = {"variants": [{"seeds": [0, 1, 2, 3, 4]}], "n_queries": 1000, "preset": "synthvtt-full", "quick": False,
           "verdict": ["Verdict (GLSCL ...)"], "placement": [], "summary": [], "design": {"notes": []},
           "calibration": {"summary": "9 of 20 rows pass (0 not run, 1 n/a). Targets: 1 fine-tuning matters: met."}}
    block = findings_markdown(doc)
    assert block.startswith("What it found (5 seeds per variant, 1000 test queries, preset `synthvtt-full`")
    assert "- Calibration (DESIGN targets): 9 of 20 rows pass" in block
    assert "Calibration" not in findings_markdown({**doc, "calibration": None})
    mixed = {**doc, "variants": [{"seeds": [0]}, {"seeds": list(range(5))}, {"seeds": list(range(7))}]}
    assert findings_markdown(mixed).startswith("What it found (5-7 seeds per variant, 1000 test queries")
    assert seeds_label([1, 1]) == "1 seed" and seeds_label([1, 3]) == "3 seeds"


def test_planning_sentence_names_the_planning_test_size_only_when_it_differs() -> None:
    plan = {"mde": 2.2, "effect": 1.0, "seeds_needed": 16, "seeds_needed_at_planning_queries": 16, "power": 0.8,
            "planning_queries": 1000, "planning_queries_label": "MSR-VTT 1k-A test"}
    row = {"family": "GLSCL", "test_family": "primary", "planning": plan, "metric": "R@1", "direction": "t2v",
           "n_queries": 1000}
    same = planning_summary("GLSCL", [row])
    assert same == ("GLSCL planning: a 1-point effect on t2v R@1 would need 16 seeds at 1,000 queries, at 80% power, "
                    "assuming the seed and query variances measured here.")
    fewer = planning_summary("GLSCL", [{**row, "n_queries": 300, "planning": {**plan, "seeds_needed": 40}}])
    assert "40 seeds at 300 queries, or 16 seeds at 1,000 (MSR-VTT 1k-A test)" in fewer
