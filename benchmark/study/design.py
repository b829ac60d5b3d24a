"""The study design as data: which models form each auxiliary-loss family, the primary endpoint, the equivalence
margin and the planning target, read from `benchmark/presets/studies/<design>.json` with the preset's `study`
section on top. From it come the contrasts (weights over models) that the analysis estimates:

- per family, the primary Holm family: each ablation and the control against the full model;
- per family, the design family: the main effects and interactions of the removed terms when the ablations form a
  full 2^k factorial (k >= 2), and the direct comparison of the model without any auxiliary term against the control;
- the placement of each family's full model against every model outside the families (baselines);
- when no family ran (a user-chosen model list), every pair of the chosen models.

A family whose full model or every other member is absent from the runs is skipped with a note.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from benchmark.metrics import METRICS
from benchmark.presets import PRESET_DIR, Preset
from benchmark.study.analysis import factorial_weights

STUDY_DIR = PRESET_DIR / "studies"
DEFAULT_DESIGN = "auxiliary-losses"
DESIGN_KEYS = ("question", "primary", "margin", "power", "planning", "families", "notes")
PRESET_KEYS = ("design", *DESIGN_KEYS)
FAMILY_KEYS = ("method", "full", "terms", "ablations", "control")


@dataclass(frozen=True)
class Contrast:
    """A linear combination of models' metrics (sum of weight x metric) with a stable key and words for it."""

    key: str
    label: str
    kind: str  # ablation | control | main effect | interaction | direct | placement | pair
    weights: dict[str, float]

    @property
    def models(self) -> list[str]:
        return list(self.weights)


@dataclass(frozen=True)
class Family:
    """One method's auxiliary-loss ablation: the full model, models with some terms removed, and a control."""

    name: str
    method: str
    full: str
    terms: dict[str, str]  # term -> what it is
    ablations: dict[str, tuple[str, ...]]  # model -> removed terms
    control: str | None = None
    control_removes: str = ""

    @property
    def members(self) -> list[str]:
        return [self.full, *self.ablations, *([self.control] if self.control else [])]

    def _label(self, removed: Sequence[str]) -> str:
        return f"{' and '.join(removed)} removed"

    def primary(self, present: set[str]) -> list[Contrast]:
        """Each ablation and the control against the full model (the primary Holm family)."""
        out = [Contrast(f"{m} - {self.full}", self._label(removed), "ablation", {m: 1.0, self.full: -1.0})
               for m, removed in self.ablations.items() if m in present]  # fmt: skip
        if self.control and self.control in present:
            out.append(Contrast(f"{self.control} - {self.full}", f"control: {self.control_removes} removed",
                                "control", {self.control: 1.0, self.full: -1.0}))  # fmt: skip
        return out

    def all_removed(self) -> str | None:
        """The ablation without any of the family's terms, if there is one."""
        return next((m for m, r in self.ablations.items() if set(r) == set(self.terms)), None)

    def design(self, present: set[str]) -> list[Contrast]:
        """Factorial main effects and interactions (full 2^k design present, k >= 2) and the direct comparison of
        the model without any term against the control."""
        out = []
        cells = {self.full: frozenset(), **{m: frozenset(r) for m, r in self.ablations.items()}}
        terms = list(self.terms)
        if len(terms) >= 2 and set(cells) <= present:
            for effect, weights in factorial_weights(cells, terms).items():
                chosen = effect.split(" x ")
                if len(chosen) == 1:
                    others = " and ".join(t for t in terms if t != effect)
                    label = f"{effect} removed, averaged over {others} kept and removed (main effect)"
                    out.append(Contrast(f"main effect {effect}", label, "main effect", weights))
                else:
                    label = (f"interaction {effect}: the change from removing {' and '.join(chosen)} together beyond "
                             "the sum of removing each")  # fmt: skip
                    out.append(Contrast(f"interaction {effect}", label, "interaction", weights))
        bare = self.all_removed()
        if self.control and bare and {bare, self.control} <= present:
            label = (f"{self.control_removes} kept but trained without {' and '.join(terms)} "
                     f"({bare} vs {self.control})")  # fmt: skip
            out.append(Contrast(f"{bare} - {self.control}", label, "direct", {bare: 1.0, self.control: -1.0}))
        return out

    def missing(self, present: set[str]) -> list[str]:
        return [m for m in self.members if m not in present]


@dataclass(frozen=True)
class Planning:
    """The effect a future run should detect and the number of test queries it will have."""

    effect: float = 1.0
    queries: int = 1000
    queries_label: str = "MSR-VTT 1k-A test"


@dataclass(frozen=True)
class StudyDesign:
    """Everything the report's statistics are pre-specified by."""

    question: str
    primary: tuple[str, str]  # (direction, metric)
    margin: float
    power: float
    planning: Planning
    families: list[Family] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def primary_label(self) -> str:
        return f"{self.primary[0]} {self.primary[1]}"

    def units(self) -> str:
        """Unit of the primary metric's differences."""
        return "points" if self.primary[1].startswith("R@") else "ranks"


def _check(values: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise KeyError(f"Unknown key(s) {unknown} in {where}. Valid: {list(valid)}.")


def _family(name: str, raw: Mapping[str, Any], where: str) -> Family:
    _check(raw, FAMILY_KEYS, f"family `{name}` of {where}")
    terms = dict(raw["terms"])
    ablations = {m: tuple(r) for m, r in raw.get("ablations", {}).items()}
    for model, removed in ablations.items():
        if not removed or not set(removed) <= set(terms):
            raise ValueError(f"Family `{name}` of {where}: ablation `{model}` must remove some of {list(terms)}, "
                             f"got {list(removed)}.")  # fmt: skip
    control = raw.get("control") or {}
    return Family(name=name, method=raw.get("method", name), full=raw["full"], terms=terms, ablations=ablations,
                  control=control.get("model"), control_removes=control.get("removes", "the control's part"))


def load_design(preset: Preset) -> StudyDesign:
    """The preset's study design: `studies/<design>.json` (default auxiliary-losses) with the preset's `study`
    section's other keys on top."""
    local = dict(preset.study)
    _check(local, PRESET_KEYS, f"the `study` section of preset {preset.name}")
    name = local.pop("design", DEFAULT_DESIGN)
    path = STUDY_DIR / f"{name}.json"
    if not path.is_file():
        shipped = sorted(p.stem for p in STUDY_DIR.glob("*.json"))
        raise FileNotFoundError(f"Study design `{name}` (preset {preset.name}) not found at {path}; shipped: "
                                f"{shipped}.")
    raw = {**json.loads(path.read_text(encoding="utf-8")), **local}
    _check(raw, DESIGN_KEYS, str(path))
    direction, _, metric = raw.get("primary", "t2v/R@1").partition("/")
    if direction not in ("t2v", "v2t") or metric not in METRICS:
        raise ValueError(f"Study primary endpoint `{raw.get('primary')}` in {path}: write DIRECTION/METRIC, e.g. "
                         f"t2v/R@1 (metrics: {', '.join(METRICS)}).")  # fmt: skip
    if float(raw.get("margin", 2.0)) <= 0:
        raise ValueError(f"Study margin in {path} must be positive, got {raw.get('margin')}.")
    return StudyDesign(
        question=raw["question"], primary=(direction, metric), margin=float(raw.get("margin", 2.0)),
        power=float(raw.get("power", 0.8)), planning=Planning(**raw.get("planning", {})),
        families=[_family(n, f, str(path)) for n, f in raw.get("families", {}).items()], notes=raw.get("notes", {}),
    )  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """The contrasts of one report, grouped by Holm family, and notes on what was skipped and why."""

    families: dict[str, dict[str, list[Contrast]]]  # family name -> test family -> contrasts
    notes: list[str]


def plan_contrasts(design: StudyDesign, models: Sequence[str]) -> Plan:
    """Every contrast the report estimates for the models that ran (in run order)."""
    present = set(models)
    families: dict[str, dict[str, list[Contrast]]] = {}
    notes = []
    analysed = []
    for family in design.families:
        if family.full not in present or len(present & set(family.members)) < 2:
            notes.append(f"{family.name}: skipped, the runs lack {', '.join(family.missing(present))}.")
            continue
        analysed.append(family)
        families[family.name] = {"primary": family.primary(present), "design": family.design(present)}
        if family.missing(present):
            notes.append(f"{family.name}: partial, the runs lack {', '.join(family.missing(present))} (their "
                         "comparisons are left out).")  # fmt: skip
    in_families = {m for f in design.families for m in f.members}
    outside = [m for m in models if m not in in_families]
    if analysed and outside:
        families["baselines"] = {"placement": [
            Contrast(f"{f.full} - {b}", f"{f.full} vs {b}", "placement", {f.full: 1.0, b: -1.0})
            for f in analysed for b in outside]}  # fmt: skip
    if not analysed and len(models) >= 2:
        families["chosen models"] = {"pairwise": [
            Contrast(f"{a} - {b}", f"{a} vs {b}", "pair", {a: 1.0, b: -1.0}) for a, b in combinations(models, 2)]}
        notes.append("No ablation family of the study design ran: the report compares the chosen models pairwise.")
    return Plan(families, notes)
