"""The calibration table on synthetic studies whose answer is known by construction."""

from __future__ import annotations

import numpy as np

from benchmark.metrics import QueryRanks
from benchmark.presets import load_preset
from benchmark.runs import RunRecord
from benchmark.study.calibration import (
    REVERSED,
    TWO_OBJECT,
    TWO_PHASE,
    Row,
    calibration_table,
    contrast_values,
    summary,
    target_verdicts,
)
from benchmark.study.design import load_design
from benchmark.study.variants import Variant

N = 1000
SUBSETS = {TWO_PHASE: np.arange(N) < 200, REVERSED: (np.arange(N) >= 200) & (np.arange(N) < 400),
           TWO_OBJECT: (np.arange(N) >= 400) & (np.arange(N) < 600), "all": np.ones(N, dtype=bool)}  # fmt: skip
DESIGN = load_design(load_preset("synthvtt"))  # GLSCL and GLCCL families


def _record(hits: np.ndarray, seed: int | None, method: str = "m", trained: bool = True) -> RunRecord:
    """A record whose t2v query i is ranked first exactly when hits[i] (one relevant item, no ties)."""
    n = len(hits)
    ranks = QueryRanks(greater=(~hits).astype(np.int64), tied_other=np.zeros(n, np.int64),
                       tied_relevant=np.ones(n, np.int64))  # fmt: skip
    return RunRecord(method=method, config={}, benchmark="synthvtt", split="test", fingerprint="f", n_texts=n,
                     n_videos=n, protocol={"ties": "random"}, metrics={}, ranks={"t2v": ranks, "v2t": ranks},
                     provenance={}, seed=seed, extra={"trained": trained})  # fmt: skip


def _flip(hits: np.ndarray, rng: np.random.Generator, rate: float, to: bool, where: np.ndarray | None = None):
    """`hits` with a fraction `rate` of the queries in `where` (default all) set to `to`."""
    out = hits.copy()
    chosen = (rng.random(N) < rate) & (np.ones(N, bool) if where is None else where)
    out[chosen] = to
    return out


def _study(n_seeds: int = 5, large_drop: float = 0.08) -> dict[str, dict[str, Variant]]:
    """Two encoders. Per seed: meanP ~30% hits vs zero-shot 10% (target 1 met); seqTransf gains only on two-phase
    clips; GLSCL ablations differ from GLSCL on 1% of queries at the small encoder, while at the large encoder
    removing ICL turns a fraction `large_drop` of the queries into misses (~2.5 points: an interaction)."""
    rng = np.random.default_rng(0)
    zero = rng.random(N) < 0.10
    base = rng.random(N) < 0.30  # shared by seeds: the test set's easy queries
    study: dict[str, dict[str, Variant]] = {}
    for encoder in ("small", "large"):
        runs: dict[str, list[RunRecord]] = {"clip-zeroshot": [_record(zero, None, trained=False)]}
        for s in range(n_seeds):
            meanp = _flip(base, rng, 0.02, False)
            glscl = _flip(meanp, rng, 0.01, True)
            cells = {
                "clip4clip-meanp": meanp,
                "clip4clip-seqtransf": _flip(meanp, rng, 0.4, True, SUBSETS[TWO_PHASE]),
                "glscl": glscl,
                "glscl-no-icl": _flip(glscl, rng, large_drop if encoder == "large" else 0.01, False),
                "glscl-no-idl": _flip(glscl, rng, 0.01, False),
            }
            for name, hits in cells.items():
                runs.setdefault(name, []).append(_record(hits, s, name))
        study[encoder] = {name: Variant(name, tuple(records)) for name, records in runs.items()}
    return study


def _rows(study, parameters=None) -> dict[str, Row]:
    rows = calibration_table(study, SUBSETS, parameters or {"small": 8_000_000, "large": 33_000_000}, DESIGN)
    return {r.check: r for r in rows}


def test_known_answers_pass_and_fail_where_built() -> None:
    rows = _rows(_study())
    meanp = rows["[large] clip4clip-meanp - clip-zeroshot"]
    assert meanp.status == "pass" and 15 < meanp.value < 25
    assert rows[f"[large] clip4clip-seqtransf - clip4clip-meanp on '{TWO_PHASE}' (temporal)"].status == "pass"
    assert rows[f"[large] clip4clip-seqtransf - clip4clip-meanp on '{REVERSED}' (temporal)"].status == "fail"
    assert rows[f"[large] xpool - clip4clip-meanp on '{TWO_OBJECT}' (binding)"].status == "not run"
    glscl, glccl = "power of glscl vs its ablations and control (GLSCL)", "power of glccl vs its ablations and control"
    assert rows[f"[small] {glscl}"].status == "pass"  # 1% flips: tiny spread
    assert "glscl-no-icl - glscl" in rows[f"[large] {glscl}"].detail and rows[f"[large] {glscl}"].status == "pass"
    assert rows[f"[large] {glccl} (GLCCL)"].status == "not run"  # the GLCCL family is in the design, not in the runs
    assert rows["parameters large / small"].status == "pass"
    icl = rows["interaction: (glscl-no-icl - glscl) at large minus at small (ICL removed)"]
    assert icl.status == "pass" and -4 < icl.value < -1.5 and "changes with size" in icl.detail
    idl = rows["interaction: (glscl-no-idl - glscl) at large minus at small (IDL removed)"]
    assert idl.status == "pass" and "no detectable change" in idl.detail
    csc = rows["interaction: (glccl-no-csc - glccl) at large minus at small (CSC removed)"]
    assert csc.status == "not run"


def test_an_encoder_with_more_seeds_enters_the_interaction_with_its_first_seeds() -> None:
    study = {"small": _study(n_seeds=5)["small"], "large": _study(n_seeds=7)["large"]}
    idl = _rows(study)["interaction: (glscl-no-idl - glscl) at large minus at small (IDL removed)"]
    weights = {"glscl-no-idl": 1.0, "glscl": -1.0}
    at_large, at_small = (contrast_values(study[e], weights, "random") for e in ("large", "small"))
    assert at_large.shape[0] == 7 and at_small.shape[0] == 5
    assert idl.value == float((at_large[:5] - at_small).mean()) and idl.detail.endswith("points (5 seeds each)")
    assert f"at large {at_large[:5].mean():+.2f}," in idl.detail


def test_too_few_seeds_or_too_small_a_scale_fail() -> None:
    rows = _rows(_study(n_seeds=3), {"small": 8_000_000, "large": 16_000_000})
    power = rows["[small] power of glscl vs its ablations and control (GLSCL)"]
    assert power.status == "fail" and "3 seeds" in power.detail and power.value is not None
    assert rows["parameters large / small"].status == "fail"


def test_too_few_queries_fail_power() -> None:
    few = {e: {m: Variant(m, tuple(_record(r.ranks["t2v"].greater[:500] == 0, r.seed, m, r.extra["trained"])
                                   for r in v.records)) for m, v in runs.items()} for e, runs in _study().items()}
    rows = calibration_table(few, {k: v[:500] for k, v in SUBSETS.items()}, {"small": 1, "large": 4}, DESIGN)
    power = next(r for r in rows if r.check == "[small] power of glscl vs its ablations and control (GLSCL)")
    assert power.status == "fail" and power.detail.startswith("500 queries")


def test_gain_below_ten_points_fails_even_when_significant() -> None:
    study = _study()
    meanp_hits = study["small"]["clip4clip-meanp"].records[0].ranks["t2v"].greater == 0
    zero = _flip(meanp_hits, np.random.default_rng(3), 0.1, False)
    study["small"]["clip-zeroshot"] = Variant("clip-zeroshot", (_record(zero, None, trained=False),))
    row = _rows(study)["[small] clip4clip-meanp - clip-zeroshot"]
    assert row.status == "fail" and 0 < row.value < 10 and float(row.detail.rsplit("= ", 1)[1]) < 0.05


def test_one_encoder_leaves_scale_not_run_without_labels() -> None:
    rows = calibration_table({"tiny": _study()["small"]}, SUBSETS, {"tiny": 8_000_000}, DESIGN)
    assert rows[-1].target == "4 encoder scale" and rows[-1].status == "not run"
    assert rows[0].check == "clip4clip-meanp - clip-zeroshot" and rows[0].status == "pass"
    assert {r.target for r in rows} == {"1 fine-tuning matters", "2 mechanism pays", "3 power", "4 encoder scale"}


def test_frozen_entries_skip_target_1_and_verdicts_name_where_targets_are_met() -> None:
    """Target 1 is "n/a" on a frozen-encoder entry (meanP equals zero-shot there); the per-target verdicts say at
    which encoder targets 1 and 3 are met, count the mechanism rows that pay, and judge target 4 study-wide."""
    rows = calibration_table(_study(), SUBSETS, {"small": 8_000_000, "large": 33_000_000}, DESIGN, frozen={"small"})
    by_check = {r.check: r for r in rows}
    small = by_check["[small] clip4clip-meanp - clip-zeroshot"]
    assert small.status == "n/a" and small.value is None and "frozen" in small.detail
    assert by_check["[large] clip4clip-meanp - clip-zeroshot"].status == "pass"
    verdicts = target_verdicts(rows)
    assert verdicts["1 fine-tuning matters"] == "met at large"
    assert verdicts["3 power"] == "not met"  # the GLCCL family is in the design but not in the runs
    mechanism = [r for r in rows if r.target == "2 mechanism pays" and r.status != "not run"]
    paid = [r for r in mechanism if r.status == "pass"]
    assert 2 <= len(paid) < len(mechanism)  # seqTransf pays on two-phase clips at both sizes, never on reversed twins
    assert verdicts["2 mechanism pays"] == (f"{len(paid)} of {len(mechanism)} mechanism rows pay (a row that fails is "
                                            "a finding about the method)")
    assert verdicts["4 encoder scale"] == "not met"  # the GLCCL interaction rows are not run
    assert "1 n/a" in summary(rows) and "Targets: 1 fine-tuning matters: met at large" in summary(rows)
    glscl_only = [r for r in rows if "GLCCL" not in r.check and "glccl" not in r.check]
    assert target_verdicts(glscl_only)["3 power"] == "met at small, large"
    assert target_verdicts(glscl_only)["4 encoder scale"] == "not met"  # no-aux and global-only did not run
    assert target_verdicts([r for r in glscl_only if r.status != "not run"])["4 encoder scale"] == "met"
