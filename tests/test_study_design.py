"""The study design as data: families and their contrasts from the preset, skipped and partial families, a second
family added as data, a user-chosen model list, and errors for broken design files."""

from __future__ import annotations

import dataclasses

import pytest

from benchmark.presets import load_preset
from benchmark.study.design import load_design, plan_contrasts
from benchmark.study.reproduce import GRID


def _design(**study: object):
    preset = load_preset("synthvtt")
    return load_design(dataclasses.replace(preset, study={**preset.study, **study}))


def _keys(plan, family: str, test_family: str) -> list[str]:
    return [c.key for c in plan.families[family][test_family]]


def test_the_shipped_design_on_the_default_grid() -> None:
    design = _design()
    assert design.primary == ("t2v", "R@1") and design.margin == 2.0 and design.power == 0.8
    assert design.planning.queries == 1000
    plan = plan_contrasts(design, list(GRID))
    assert _keys(plan, "GLSCL", "primary") == ["glscl-no-icl - glscl", "glscl-no-idl - glscl", "glscl-no-aux - glscl",
                                               "glscl-global-only - glscl"]
    assert _keys(plan, "GLSCL", "design") == ["main effect ICL", "main effect IDL", "interaction ICL x IDL",
                                              "glscl-no-aux - glscl-global-only"]
    assert _keys(plan, "baselines", "placement") == [
        f"{full} - {baseline}" for full in ("glscl", "glccl")
        for baseline in ("clip-zeroshot", "clip4clip-meanp", "clip4clip-seqtransf", "xpool")]
    assert plan.notes == []
    interaction = plan.families["GLSCL"]["design"][2].weights
    assert interaction == {"glscl": 1.0, "glscl-no-icl": -1.0, "glscl-no-idl": -1.0, "glscl-no-aux": 1.0}


def test_a_family_whose_models_did_not_run_is_skipped_with_a_note() -> None:
    plan = plan_contrasts(_design(), [m for m in GRID if not m.startswith("glccl")])
    assert "GLCCL" not in plan.families
    assert plan.notes == ["GLCCL: skipped, the runs lack glccl, glccl-no-csc, glccl-video-only."]


def test_the_second_family_is_data_and_has_no_factorial_with_one_term() -> None:
    assert [f.name for f in _design().families] == ["GLSCL", "GLCCL"]
    plan = plan_contrasts(_design(), list(GRID))
    assert _keys(plan, "GLCCL", "primary") == ["glccl-no-csc - glccl", "glccl-video-only - glccl"]
    assert _keys(plan, "GLCCL", "design") == ["glccl-no-csc - glccl-video-only"]
    assert "glccl - xpool" in _keys(plan, "baselines", "placement")


def test_a_new_family_is_a_data_change() -> None:
    family = {"full": "xpool", "terms": {"ALIGN": "an alignment loss"}, "ablations": {"clip4clip-meanp": ["ALIGN"]}}
    design = _design(families={"X": family})
    plan = plan_contrasts(design, ["xpool", "clip4clip-meanp", "clip-zeroshot"])
    assert _keys(plan, "X", "primary") == ["clip4clip-meanp - xpool"] and _keys(plan, "X", "design") == []
    assert _keys(plan, "baselines", "placement") == ["xpool - clip-zeroshot"]


def test_a_partial_family_keeps_what_ran_and_says_what_is_missing() -> None:
    plan = plan_contrasts(_design(), ["clip4clip-meanp", "glscl", "glscl-no-aux"])
    assert _keys(plan, "GLSCL", "primary") == ["glscl-no-aux - glscl"]
    assert _keys(plan, "GLSCL", "design") == []  # neither the full 2x2 nor the control ran
    assert plan.notes[0] == ("GLSCL: partial, the runs lack glscl-no-icl, glscl-no-idl, glscl-global-only (their "
                             "comparisons are left out).")


def test_chosen_models_without_a_family_are_compared_pairwise() -> None:
    plan = plan_contrasts(_design(), ["xpool", "clip4clip-meanp", "glscl-no-aux"])
    assert list(plan.families) == ["chosen models"]
    assert _keys(plan, "chosen models", "pairwise") == ["xpool - clip4clip-meanp", "xpool - glscl-no-aux",
                                                        "clip4clip-meanp - glscl-no-aux"]
    assert plan.notes[0].startswith("GLSCL: skipped") and plan.notes[1].startswith("GLCCL: skipped")
    assert "pairwise" in plan.notes[-1]


@pytest.mark.parametrize(("study", "error", "match"), [
    ({"margins": 2}, KeyError, "Unknown key"),
    ({"design": "nope"}, FileNotFoundError, "Study design `nope`"),
    ({"primary": "t2v/R@2"}, ValueError, "primary endpoint"),
    ({"margin": 0}, ValueError, "margin"),
    ({"families": {"X": {"full": "a", "terms": {"T": "t"}, "ablations": {"b": ["U"]}}}}, ValueError, "must remove"),
])  # fmt: skip
def test_broken_designs_say_what_to_fix(study: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _design(**study)
