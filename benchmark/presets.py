"""Presets are data: one JSON file per (benchmark, backbone) recipe, merged with per-model overrides into a run config.

Merge order of a model's config: registry defaults <- the preset's backbone <- the preset's "models" entries whose
fnmatch pattern matches the model name (in file order) <- the method's recipe file (`package_preset_path`)
"model" section <- the preset's "parity" block named by ``--set parity=NAME`` (its "models" entries by pattern) <-
command-line ``--set key=value``. Training fields merge the same way: preset "training" <- the "train" dict inside
matching "models" entries <- package file "train" <- the parity block's "training" <- ``--set``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.config_fields import FieldTypeError, coerce_field, coerce_fields
from benchmark.registry import config_to_json, model_spec

PRESET_DIR = Path(__file__).parent / "presets"
SECTIONS = ("name", "benchmark", "data", "video", "text", "training", "eval", "backbone", "models", "study", "parity",
            "encoders", "notes")
ENCODER_KEYS = ("backbone", "training", "models", "scale")
PARITY_SECTIONS = ("training", "models", "notes")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run varies besides the model: frames/words, optimiser, schedule, batches, selection, evaluation."""

    max_frames: int = 12
    framerate: float = 1.0
    sampling: str = "fps"
    max_words: int = 32
    train_pairs: str = "all"  # "all" captions every epoch, or "one-per-video" (a random caption of each video)
    augment: bool = False
    freeze_backbone: bool = False  # frozen-encoder regime: only the heads train, backbone outputs are cached
    epochs: int = 5
    schedule_epochs: int | None = None  # length of the cosine schedule in epochs (None = epochs)
    batch_size: int = 128
    eval_batch_size: int = 64
    lr: float = 1e-4
    coef_lr: float = 1e-3
    warmup_proportion: float = 0.1
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    grad_clip: float = 1.0
    amp: str = "bf16"  # on CUDA: "bf16", "fp16" (with a GradScaler) or "none"; CPU always runs fp32
    num_workers: int = 0
    select_metric: str = "t2v/R@1"
    chunk_texts: int = 256
    chunk_videos: int = 256
    seeds: tuple[int, ...] = (0, 1, 2)
    # The official GLSCL recipe as switches (defaults: tvbench's choices; `--set parity=official` turns on all).
    optimizer: str = "adamw"  # "bertadam": no bias correction, per-tensor grad clip, moments in the param dtype
    decay_groups: str = "tvbench"  # "official": weight decay on everything whose name lacks "bias"
    schedule: str = "tvbench"  # "official": warmup_cosine on step / total, not re-based, first step at lr 0
    backbone_dtype: str = "fp32"  # "fp16": on CUDA, CLIP's matrices in fp16, updated in place (official)
    freeze_patch_embedding: bool = False  # official: CLIP's visual.conv1 is never trained
    rand_augment: str = ""  # e.g. "rand-m7-n4-mstd0.5-inc1": video-consistent RandAugment on training clips
    select_on: str = "val"  # "test": select on the test split, trained on the full training split (parity only)
    select_every_steps: int = 0  # > 0: also validate at step 1 and every N steps (official), not only per epoch
    select_ties: str = "first"  # "last": an equal score replaces the selected checkpoint (official `<=`)
    select_checkpoint: str = "best"  # "last": the final weights, validated once at the end (no choice among epochs)
    parity: str = "none"  # which preset parity block was applied (recorded; set through `--set parity=NAME`)

    def __post_init__(self) -> None:
        checks = {
            "train_pairs": self.train_pairs in ("all", "one-per-video"),
            "sampling": self.sampling in ("fps", "uniform"),
            "amp": self.amp in ("bf16", "fp16", "none"),
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "warmup_proportion": 0.0 <= self.warmup_proportion < 1.0,
            "select_metric": self.select_metric.split("/")[0] in ("t2v", "v2t") and "/" in self.select_metric,
            "optimizer": self.optimizer in ("adamw", "bertadam"),
            "decay_groups": self.decay_groups in ("tvbench", "official"),
            "schedule": self.schedule in ("tvbench", "official"),
            "schedule_epochs": self.schedule_epochs is None or self.schedule_epochs >= 1,
            "backbone_dtype": self.backbone_dtype in ("fp32", "fp16"),
            "rand_augment": self.rand_augment == "" or self.rand_augment.startswith("rand-"),
            "select_on": self.select_on in ("val", "test"),
            "select_every_steps": self.select_every_steps >= 0,
            "select_ties": self.select_ties in ("first", "last"),
            "select_checkpoint": self.select_checkpoint in ("best", "last")
            and not (self.select_checkpoint == "last" and self.select_every_steps),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"Invalid training value(s) for {bad}: {self}.")


TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


@dataclass(frozen=True)
class Preset:
    """One preset file: benchmark + splits, video/text settings, training recipe, backbone, per-model overrides."""

    name: str
    benchmark: str
    data: dict[str, Any]
    training: dict[str, Any]
    eval: dict[str, Any]
    backbone: dict[str, Any]
    models: dict[str, dict[str, Any]]
    notes: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    study: dict[str, Any] = field(default_factory=dict)  # the study design and its overrides (benchmark.study.design)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)  # named parity blocks (`--set parity=NAME`)
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)  # the study's encoder axis (`encoder_presets`)

    @property
    def train_split(self) -> str:
        return self.data["train"]

    @property
    def test_split(self) -> str:
        return self.data["test"]

    def train_config(self, **overrides: Any) -> TrainConfig:
        """The preset's training recipe with `overrides` applied (keys must be TrainConfig fields)."""
        _check_keys(overrides, TRAIN_FIELDS, "training field")
        return TrainConfig(**coerce_fields(TrainConfig, {**self.training, **overrides}))

    def encoder_presets(self) -> dict[str, Preset]:
        """The study's encoder axis: one preset per `encoders` entry (its backbone settings merged over the preset's,
        its training fields over the preset's), or {backbone name: this preset} without an `encoders` section."""
        if not self.encoders:
            return {self.backbone["name"]: self}
        return {name: dataclasses.replace(self, backbone={**self.backbone, **entry.get("backbone", {})},
                                          training={**self.training, **entry.get("training", {})}, encoders={})
                for name, entry in self.encoders.items()}  # fmt: skip


@dataclass(frozen=True)
class ResolvedConfig:
    """A model's merged config (JSON dict), the run's TrainConfig, and where each layer came from."""

    model: dict[str, Any]
    train: TrainConfig
    sources: list[str]


def _check_keys(values: dict[str, Any], valid: tuple[str, ...] | set[str], what: str) -> None:
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise KeyError(f"Unknown {what}(s) {unknown}. Valid: {sorted(valid)}.")


def list_presets() -> list[str]:
    """Names of the preset files shipped in benchmark/presets/."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name: str | Path) -> Preset:
    """Load a preset by name (benchmark/presets/<name>.json) or by path to a JSON file."""
    path = Path(name) if str(name).endswith(".json") else PRESET_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"Preset `{name}` not found at {path}. Shipped presets: {', '.join(list_presets())}.")
    raw = json.loads(path.read_text(encoding="utf-8"))
    _check_keys(raw, SECTIONS, f"section of preset {path}")
    training = {
        **raw.get("training", {}),
        **{k: v for k, v in raw.get("video", {}).items() if k != "size"},
        **raw.get("text", {}),
        **{k: raw["data"][k] for k in ("train_pairs", "augment") if k in raw.get("data", {})},
    }
    _check_keys(training, TRAIN_FIELDS, f"training field of preset {path}")
    preset = Preset(
        name=raw.get("name", path.stem),
        benchmark=raw["benchmark"],
        data=raw["data"],
        training=training,
        eval=raw.get("eval", {}),
        backbone=raw["backbone"],
        models=raw.get("models", {}),
        notes=raw.get("notes", {}),
        path=path,
        study=raw.get("study", {}),
        parity=raw.get("parity", {}),
        encoders=raw.get("encoders", {}),
    )
    for mode, block in preset.parity.items():
        _check_keys(block, PARITY_SECTIONS, f"section of parity `{mode}` in {path}")
        _check_keys(block.get("training", {}), TRAIN_FIELDS, f"training field of parity `{mode}` in {path}")
    for encoder, entry in preset.encoders.items():
        where = f"encoders[{encoder!r}] in preset {path}"
        _check_keys(entry, ENCODER_KEYS, f"key of {where}")
        _check_keys(entry.get("training", {}), TRAIN_FIELDS, f"training field of {where}")
    for variant in preset.encoder_presets().values():
        variant.train_config()  # validate now, not at the end of a long run
    return preset


def parse_sets(sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` strings -> dict; values parse as JSON literals (1e-4, true, [0.9, 0.98], null), else strings."""
    out: dict[str, Any] = {}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got `{item}` (e.g. --set lr=1e-4).")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def package_preset_path(model_name: str, preset_name: str) -> Path:
    """The method recipe file of a model defined in `<package>.<module>` (it may not exist); the package may be an
    installed plugin or a file given to --include (its folder holds the presets).

    `<package>/presets/<module>/<preset>.json` when that folder exists (a package of several methods, e.g.
    `baselines/presets/glccl/`), else `<package>/presets/<preset>.json` (a one-method package such as `glscl`).
    """
    package, *modules = model_spec(model_name).cls.__module__.split(".")
    folder = Path(importlib.import_module(package).__file__).parent / "presets"
    if modules and (folder / modules[-1]).is_dir():
        folder = folder / modules[-1]
    return folder / f"{preset_name}.json"


def _typed_set(config_cls: type, key: str, value: Any, text: str) -> Any:
    """A `--set` value converted to its field's type, or an error naming the option (checked before any work)."""
    try:
        return coerce_field(config_cls, key, value)
    except FieldTypeError as err:
        raise FieldTypeError(f"--set {text}: {err} Values are JSON: --set lr=1e-4, --set amp=\"none\".") from None


def _package_preset(model_name: str, preset_name: str) -> tuple[dict[str, Any], dict[str, Any], Path | None]:
    path = package_preset_path(model_name, preset_name)
    if not path.is_file():
        return {}, {}, None
    raw = json.loads(path.read_text(encoding="utf-8"))
    _check_keys(raw, ("model", "train", "notes"), f"section of package preset {path}")
    return raw.get("model", {}), raw.get("train", {}), path


def _parity_layer(preset: Preset, mode: str, model_name: str, model_fields: set[str]) -> tuple[dict, dict]:
    """(model, training) overrides of the preset's parity block `mode` for `model_name` (its "models" entries match
    by name pattern); the training side records the mode. Explicit `--set` values are applied after it."""
    if mode not in preset.parity:
        raise KeyError(f"Preset {preset.name} has no parity mode `{mode}`; it has {sorted(preset.parity) or 'none'} "
                       "(or `none`).")
    block = preset.parity[mode]
    model_over: dict[str, Any] = {}
    for pattern, values in block.get("models", {}).items():
        if fnmatch.fnmatchcase(model_name, pattern):
            _check_keys(values, model_fields, f"config field of `{model_name}` in parity `{mode}` models[{pattern!r}]")
            model_over.update(values)
    return model_over, {**block.get("training", {}), "parity": mode}


def resolve(preset: Preset, model_name: str, sets: list[str] | tuple[str, ...] = ()) -> ResolvedConfig:
    """Merge every layer (see the module docstring) into a model config dict and a TrainConfig; reject unknown keys."""
    spec = model_spec(model_name)
    model_fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    model_over: dict[str, Any] = {"backbone": preset.backbone["name"]}
    if "quick_gelu" in preset.backbone and "quick_gelu" in model_fields:
        model_over["quick_gelu"] = preset.backbone["quick_gelu"]
    sources = [f"registry:{model_name}", f"preset:{preset.name}"]
    train_over: dict[str, Any] = {}
    for pattern, values in preset.models.items():
        if fnmatch.fnmatchcase(model_name, pattern):
            values = dict(values)
            entry_train = values.pop("train", {})
            where = f"preset {preset.name} models[{pattern!r}]"
            _check_keys(values, model_fields, f"config field of `{model_name}` in {where}")
            _check_keys(entry_train, TRAIN_FIELDS, f"training field in {where}")
            model_over.update(values)
            train_over.update(entry_train)
            sources.append(f"preset:{preset.name}:models[{pattern}]")
    pkg_model, pkg_train, pkg_path = _package_preset(model_name, preset.name)
    if pkg_path is not None:
        _check_keys(pkg_model, model_fields, f"config field of `{model_name}` in {pkg_path}")
        _check_keys(pkg_train, TRAIN_FIELDS, f"training field in {pkg_path}")
        model_over.update(pkg_model)
        train_over.update(pkg_train)
        sources.append(str(pkg_path))
    values = parse_sets(sets)
    mode = values.get("parity", values.get("train.parity", "none"))
    if mode != "none":
        parity_model, parity_train = _parity_layer(preset, mode, model_name, model_fields)
        model_over.update(parity_model)
        train_over.update(parity_train)
        sources.append(f"preset:{preset.name}:parity[{mode}]")
    for item in sets:
        ((key, value),) = parse_sets([item]).items()
        scope, dot, bare = key.partition(".")
        if dot and scope in ("model", "train"):
            valid = model_fields if scope == "model" else set(TRAIN_FIELDS)
            _check_keys({bare: value}, valid, f"{scope} field")
            key = bare
        elif key in model_fields and key in TRAIN_FIELDS:
            raise KeyError(f"`{key}` is both a model and a training field; write model.{key}= or train.{key}=.")
        elif key in model_fields:
            scope = "model"
        elif key in TRAIN_FIELDS:
            scope = "train"
        else:
            raise KeyError(
                f"--set {key}: no such field. Training fields: {sorted(TRAIN_FIELDS)}. "
                f"Model fields of `{model_name}`: {sorted(model_fields)}."
            )
        config_cls, target = (spec.config_cls, model_over) if scope == "model" else (TrainConfig, train_over)
        target[key] = _typed_set(config_cls, key, value, item)
    if sets:
        sources.append("--set " + " ".join(sets))
    model_config = config_to_json(spec.make_config(**model_over))
    return ResolvedConfig(model=model_config, train=preset.train_config(**train_over), sources=sources)


def resolve_model_config(preset: Preset, model_name: str, sets: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The merged config (JSON dict) of `model_name` under `preset` and `--set` overrides."""
    return resolve(preset, model_name, sets).model
