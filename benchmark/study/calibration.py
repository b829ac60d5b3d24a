"""The calibration table of a SynthVTT study: does the test-bed meet DESIGN's targets, measured on the study's runs?

Functional core over the runs of each encoder of the study (variant name -> `Variant`), on t2v R@1 per-query hits
(0/100). Four targets (DESIGN.md, issue 15), each row with its number and pass / fail, or "not run" when the study
lacks the runs:

1. fine-tuned CLIP4Clip-meanP beats zero-shot by >= 10 points, seed-aware significant;
2. each mechanism pays on the subset built for it (temporal models on two-phase clips and reversed twins,
   text-conditioned / fine-grained matching on two-object binding), seed-aware significant, Holm over the rows;
3. power: >= 1,000 test queries, >= 5 seeds per trained variant, and a minimum detectable effect (80% power) of
   at most 2 points for every contrast of each family's primary Holm family (the study design's ablations and
   control against the full model);
4. encoder scale: encoders differing >= 4x in parameters, and per ablation of each family a seed-aware test of
   whether removing its terms has a different effect at the largest and at the smallest encoder (a difference of
   differences, Holm over the rows).

Every test is the study's seed-aware test (`analysis.seed_aware`: seeds and queries crossed) on d[seeds, queries],
paired by seed (`variants.aligned`); the power is `analysis.minimum_detectable_effect` of the same design.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from benchmark.study.analysis import Estimate, minimum_detectable_effect, seed_aware, variance_components
from benchmark.study.design import Family, StudyDesign
from benchmark.study.variants import Variant, aligned
from leaderboard.stats import holm

ENDPOINT = ("t2v", "R@1")
ZERO_SHOT, MEANP = "clip-zeroshot", "clip4clip-meanp"
TWO_PHASE, REVERSED, TWO_OBJECT = "kind: two-phase", "in a reversed twin pair", "kind: two-object"
MECHANISMS: tuple[tuple[str, str, str], ...] = (  # (mechanism, model, subset mask name of `synthvtt_subsets`)
    ("temporal", "clip4clip-seqtransf", TWO_PHASE),
    ("temporal", "clip4clip-seqtransf", REVERSED),
    ("temporal", "glscl", TWO_PHASE),
    ("temporal", "glscl", REVERSED),
    ("binding", "xpool", TWO_OBJECT),
    ("binding", "xclip", TWO_OBJECT),
    ("binding", "glscl", TWO_OBJECT),
)
MIN_GAIN, MIN_QUERIES, MIN_SEEDS, MAX_MDE, MIN_SCALE = 10.0, 1000, 5, 2.0, 4.0
TEST = ("seed-aware t-test (seeds and queries crossed, analysis.seed_aware) on t2v R@1, seeds paired by index; "
        "targets 2 and 4 Holm-adjusted over their rows; power: analysis.minimum_detectable_effect at 80%")


@dataclass(frozen=True)
class Row:
    """One line of the table: which target, what was compared, the number, the threshold and the outcome."""

    target: str
    check: str
    value: float | None
    threshold: str
    status: str  # "pass" | "fail" | "not run" | "n/a"
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def contrast_values(runs: Mapping[str, Variant], weights: Mapping[str, float], ties: str) -> np.ndarray | None:
    """d[seeds, queries] of sum(weight x t2v R@1 hits) over the models of `weights`, paired by seed (an untrained
    model, such as zero-shot, pairs with every seed); None when a model did not run."""
    if any(m not in runs for m in weights):
        return None
    _, values = aligned([runs[m] for m in weights], ties)
    direction, metric = ENDPOINT
    return sum(w * values[m][direction][metric] for m, w in weights.items())  # type: ignore[return-value]


def _positive(est: Estimate | None, p: float | None, alpha: float) -> bool:
    return est is not None and p is not None and est.value > 0 and p < alpha


def _holm(estimates: Sequence[Estimate | None]) -> list[float | None]:
    """Holm-adjusted p-values over the estimates that exist (None where a row is not testable)."""
    testable = [i for i, est in enumerate(estimates) if est is not None]
    adjusted = dict(zip(testable, holm([estimates[i].p() for i in testable])))  # type: ignore[union-attr]
    return [adjusted.get(i) for i in range(len(estimates))]


def _describe(est: Estimate | None, d: np.ndarray, p: float | None = None, holm_adjusted: bool = False) -> str:
    if est is None:
        return f"{len(d)} seed(s): not testable (needs >= 2 paired seeds)"
    label = "Holm p" if holm_adjusted else "p"
    return f"{len(d)} seeds x {d.shape[1]} queries, {label} = {est.p() if p is None else p:.3g}"


def fine_tuning_row(
    runs: Mapping[str, Variant], alpha: float, ties: str, label: str = "", frozen: bool = False
) -> Row:
    """Target 1: fine-tuned meanP minus zero-shot, >= MIN_GAIN points and seed-aware significant; "n/a" for a
    frozen-encoder entry, where meanP has no trainable parameters and its runs are zero-shot evaluations."""
    check, threshold = f"{label}{MEANP} - {ZERO_SHOT}", f">= {MIN_GAIN:g} points, p < {alpha}"
    if frozen:
        return Row("1 fine-tuning matters", check, None, threshold, "n/a",
                   f"frozen encoder: {MEANP} has no trainable parameters here, so it equals {ZERO_SHOT}")
    d = contrast_values(runs, {MEANP: 1.0, ZERO_SHOT: -1.0}, ties)
    if d is None:
        return Row("1 fine-tuning matters", check, None, threshold, "not run", f"needs {MEANP} and {ZERO_SHOT}")
    est = seed_aware(d)
    gain = float(d.mean())
    ok = gain >= MIN_GAIN and _positive(est, est.p() if est else None, alpha)
    return Row("1 fine-tuning matters", check, gain, threshold, "pass" if ok else "fail", _describe(est, d))


def mechanism_rows(
    runs: Mapping[str, Variant], subsets: Mapping[str, np.ndarray], alpha: float, ties: str, label: str = ""
) -> list[Row]:
    """Target 2: each mechanism's model minus meanP on its subset, seed-aware, Holm-adjusted over the rows tested."""
    tests: list[tuple[str, np.ndarray | None, Estimate | None]] = []
    for mechanism, model, subset in MECHANISMS:
        check = f"{label}{model} - {MEANP} on '{subset}' ({mechanism})"
        mask = subsets.get(subset)
        d = contrast_values(runs, {model: 1.0, MEANP: -1.0}, ties) if mask is not None and mask.sum() >= 2 else None
        d = None if d is None else d[:, mask]
        tests.append((check, d, None if d is None else seed_aware(d)))
    threshold = f"> 0 points, Holm p < {alpha}"
    rows = []
    for (check, d, est), p in zip(tests, _holm([est for _, _, est in tests])):
        if d is None:
            rows.append(Row("2 mechanism pays", check, None, threshold, "not run", "model, meanP or subset missing"))
            continue
        rows.append(Row("2 mechanism pays", check, float(d.mean()), threshold,
                        "pass" if _positive(est, p, alpha) else "fail", _describe(est, d, p, True)))  # fmt: skip
    return rows


def _mde(d: np.ndarray) -> float | None:
    """Minimum detectable effect (80% power, alpha 0.05) of the seed-aware test in the design of d[seeds, queries]."""
    return minimum_detectable_effect(variance_components(d), *d.shape)


def power_row(runs: Mapping[str, Variant], family: Family, ties: str, label: str = "") -> Row:
    """Target 3 for one family: >= MIN_QUERIES test queries, >= MIN_SEEDS seeds per trained variant, and the largest
    minimum detectable effect over the family's primary contrasts <= MAX_MDE points."""
    threshold = f">= {MIN_QUERIES} queries, >= {MIN_SEEDS} seeds, MDE <= {MAX_MDE:g} points"
    check = f"{label}power of {family.full} vs its ablations and control ({family.name})"
    contrasts = family.primary(set(runs)) if family.full in runs else []
    if not contrasts:
        return Row("3 power", check, None, threshold, "not run", f"needs {family.full} and another family member")
    ds = [contrast_values(runs, c.weights, ties) for c in contrasts]  # every member ran: never None
    mdes = [_mde(d) for d in ds]  # type: ignore[arg-type]
    n_queries = ds[0].shape[1]  # type: ignore[union-attr]
    n_seeds = min((len(v.records) for v in runs.values() if v.trained), default=0)
    worst = None if any(m is None for m in mdes) else max(mdes)  # type: ignore[type-var]
    ok = n_queries >= MIN_QUERIES and n_seeds >= MIN_SEEDS and worst is not None and worst <= MAX_MDE
    detail = (f"{n_queries} queries, {n_seeds} seeds (fewest of a trained variant); MDE: "
              + ", ".join(f"{c.key} {'n/a' if m is None else f'{m:.2f}'}" for c, m in zip(contrasts, mdes)))
    return Row("3 power", check, worst, threshold, "pass" if ok else "fail", detail)


def scale_rows(
    by_encoder: Mapping[str, Mapping[str, Variant]],
    parameters: Mapping[str, int],
    families: Sequence[Family],
    alpha: float,
    ties: str,
) -> list[Row]:
    """Target 4: encoders differing >= MIN_SCALE x in parameters, and per ablation of each family the seed-aware test
    of (ablation - full at the largest encoder) - (the same at the smallest): does the effect change with size?"""
    names = [e for e in by_encoder if e in parameters]
    threshold = f">= 2 encoders, >= {MIN_SCALE:g}x parameters"
    if len(names) < 2:
        return [Row("4 encoder scale", "encoder sizes", None, threshold, "not run",
                    f"runs at {len(names)} encoder(s) of the scale comparison: {', '.join(names) or 'none'}")]
    ordered = sorted(names, key=parameters.__getitem__)  # stable: two equal sizes still give two encoders
    small, large = ordered[0], ordered[-1]
    ratio = parameters[large] / parameters[small]
    rows = [Row("4 encoder scale", f"parameters {large} / {small}", ratio, threshold,
                "pass" if ratio >= MIN_SCALE else "fail", f"{parameters[large]:,} vs {parameters[small]:,}")]
    contrasts = [c for f in families for c in f.primary(set(f.ablations)) if c.kind == "ablation"]
    tests = []
    for c in contrasts:
        at_large, at_small = (contrast_values(by_encoder[e], c.weights, ties) for e in (large, small))
        if at_large is None or at_small is None:
            tests.append((c, None, None, None, None))
            continue
        n = min(len(at_large), len(at_small))  # paired by seed index (independent draws at each size): an encoder
        at_large, at_small = at_large[:n], at_small[:n]  # with more seeds contributes its first n, here and in detail
        d = at_large - at_small
        tests.append((c, d, seed_aware(d), at_large, at_small))
    for (c, d, _, at_large, at_small), p in zip(tests, _holm([t[2] for t in tests])):
        check = f"interaction: ({c.key}) at {large} minus at {small} ({c.label})"
        if d is None:
            rows.append(Row("4 encoder scale", check, None, f"tested, Holm alpha {alpha}", "not run",
                            f"needs {' and '.join(c.models)} at both encoders"))  # fmt: skip
            continue
        finding = ("not testable (needs >= 2 seeds)" if p is None else
                   f"effect changes with size (Holm p = {p:.3g})" if p < alpha else
                   f"no detectable change with size (Holm p = {p:.3g})")  # fmt: skip
        rows.append(Row("4 encoder scale", check, float(d.mean()), f"tested, Holm alpha {alpha}",
                        "fail" if p is None else "pass",
                        f"{finding}; at {large} {at_large.mean():+.2f}, at {small} {at_small.mean():+.2f} points "
                        f"({len(d)} seeds each)"))
    return rows


def calibration_table(
    by_encoder: Mapping[str, Mapping[str, Variant]],
    subsets: Mapping[str, np.ndarray],
    parameters: Mapping[str, int],
    design: StudyDesign,
    *,
    alpha: float = 0.05,
    ties: str = "random",
    frozen: Collection[str] = (),
) -> list[Row]:
    """Every row of the table: targets 1-3 per encoder (labelled when there are several), then target 4.

    `by_encoder`: encoder name -> variant name -> its runs; `subsets`: boolean masks over the test queries
    (`variants.synthvtt_subsets`); `parameters`: the parameter count of each encoder in the scale comparison;
    `frozen`: the encoders whose backbone is frozen (target 1 does not apply to them).
    """
    rows: list[Row] = []
    for encoder, runs in by_encoder.items():
        label = f"[{encoder}] " if len(by_encoder) > 1 else ""
        rows.append(fine_tuning_row(runs, alpha, ties, label, encoder in frozen))
        rows += mechanism_rows(runs, subsets, alpha, ties, label)
        rows += [power_row(runs, family, ties, label) for family in design.families]
    return rows + scale_rows(by_encoder, parameters, design.families, alpha, ties)


def _entry(row: Row) -> str:
    """The encoder a row belongs to ("" for unlabelled rows and the study-wide target-4 rows)."""
    return row.check[1 : row.check.index("]")] if row.check.startswith("[") else ""


def target_verdicts(rows: Sequence[Row]) -> dict[str, str]:
    """One verdict per target: 1 and 3 are met when every row of the target passes at some encoder (each names
    where), 2 counts the mechanisms that pay (a failed row is a finding about the method), 4 is met when the sizes
    differ enough and every interaction was tested."""
    verdicts: dict[str, str] = {}
    for target in dict.fromkeys(r.target for r in rows):
        mine = [r for r in rows if r.target == target and r.status != "n/a"]
        by_entry: dict[str, list[Row]] = {}
        for r in mine:
            by_entry.setdefault(_entry(r), []).append(r)
        met = [e for e, rs in by_entry.items() if all(r.status == "pass" for r in rs)]
        where = f" at {', '.join(e for e in met if e)}" if any(met) else ""
        if target.startswith("2"):
            tested = [r for r in mine if r.status != "not run"]
            paid = sum(r.status == "pass" for r in tested)
            verdicts[target] = (f"{paid} of {len(tested)} mechanism rows pay"
                                + ("" if paid == len(tested) else " (a row that fails is a finding about the method)"))
        elif target.startswith("4"):
            verdicts[target] = "met" if mine and all(r.status == "pass" for r in mine) else "not met"
        else:
            verdicts[target] = f"met{where}" if met else "not met"
    return verdicts


def summary(rows: Sequence[Row]) -> str:
    """'N of M rows pass (K not run, L n/a). Targets: ...': one line for the report."""
    passed = sum(r.status == "pass" for r in rows)
    missing = sum(r.status == "not run" for r in rows)
    na = sum(r.status == "n/a" for r in rows)
    targets = "; ".join(f"{t}: {v}" for t, v in target_verdicts(rows).items())
    return f"{passed} of {len(rows)} rows pass ({missing} not run, {na} n/a). Targets: {targets}."
