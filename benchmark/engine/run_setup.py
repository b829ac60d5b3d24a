"""A model built for a preset or from a checkpoint, with its merged configs, splits, frames and tokenizer.

Shared by training and evaluation runs (so neither imports the other): `prepare_model_run` resolves a preset and
`--set` overrides or reads a checkpoint's state, checks every input (model, field types, backbone, the splits'
annotation files, the caller's own checks) before any work, then pretrains if needed and builds the model and the
data pieces that feed it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark.data import load_split
from benchmark.data.split import Split
from benchmark.data.text import TextTokenizer
from benchmark.data.video import VideoConfig
from benchmark.engine.backbone import FROM_CHECKPOINT, check_backbone_name, check_weights_file
from benchmark.engine.checkpoint import load_weights, model_file, read_state
from benchmark.engine.distributed import DistEnv, barrier, init_distributed
from benchmark.presets import Preset, TrainConfig, load_preset, parse_sets, resolve
from benchmark.registry import build_model, model_source, require_model


class TrainError(RuntimeError):
    """A run that cannot start or continue as asked; the message says how to fix it."""


def carve_holdout(split: Split, n_videos: int, captions_per_video: int = 1, seed: int = 0) -> tuple[Split, Split]:
    """(train, val): the `n_videos` videos first in sha256("seed:video_id") order become validation (with their
    first `captions_per_video` captions); the rest, with all their captions, stay for training. Deterministic and
    independent of file order, so the same videos are held out on every machine."""
    if not 0 < n_videos < len(split.videos):
        raise TrainError(f"Cannot hold out {n_videos} of the {len(split.videos)} videos of {split.split}.")
    ranked = sorted(split.videos, key=lambda v: hashlib.sha256(f"{seed}:{v.id}".encode()).hexdigest())
    held = {v.id for v in ranked[:n_videos]}
    val_videos = [v for v in split.videos if v.id in held]
    train_videos = [v for v in split.videos if v.id not in held]
    taken: dict[str, int] = {}
    val_texts = []
    for text in split.texts:
        if text.video_id in held and taken.get(text.video_id, 0) < captions_per_video:
            taken[text.video_id] = taken.get(text.video_id, 0) + 1
            val_texts.append(text)
    train_texts = [t for t in split.texts if t.video_id not in held]
    meta = {"carved_from": split.split, "fingerprint_of_source": split.fingerprint, "seed": seed}
    return (
        Split(split.benchmark, f"{split.split}-minus-holdout{n_videos}", train_videos, train_texts, meta),
        Split(split.benchmark, f"{split.split}-holdout{n_videos}", val_videos, val_texts, meta),
    )


@dataclass
class RunPlan:
    """A run's merged configs and data, checked before any work: everything but the model."""

    preset: Preset
    model_name: str
    model_config: dict[str, Any]
    train: TrainConfig
    sources: list[str]
    data_root: Path
    env: DistEnv
    seed: int | None = None
    select_on_test: bool = False
    _splits: dict[str, Split] = field(default_factory=dict)

    @property
    def cache_frames(self) -> bool:
        return bool(self.preset.data.get("cache_frames", False))

    def _load(self, name: str) -> Split:
        if name not in self._splits:
            self._splits[name] = load_split(self.preset.benchmark, self.data_root, name)
        return self._splits[name]

    def train_val(self) -> tuple[Split, Split]:
        """The training split and the validation split: the preset's val or a hold-out carved from train; in the
        --select-on-test parity mode the whole training split and the test split, as the official code."""
        data = self.preset.data
        train = self._load(data["train"])
        holdout = data.get("holdout")
        if self.select_on_test:  # parity: train on the whole training split, select on test (no hold-out)
            return train, self.split("test")
        if holdout:
            train, val = carve_holdout(train, holdout["videos"], holdout.get("captions_per_video", 1),
                                       holdout.get("seed", 0))
        else:
            val = self._load(data["val"])
        return train, val

    def split(self, name: str) -> Split:
        """`test`, `val`, `train` (the preset's splits, hold-out applied) or any split name of the benchmark."""
        if name == "test":
            return self._load(self.preset.data["test"])
        if name in ("train", "val"):
            train, val = self.train_val()
            return train if name == "train" else val
        return self._load(name)

    def record_config(self) -> dict[str, Any]:
        """The `config` block of run records: model config, training config, preset and merge sources."""
        return {"model": self.model_config, "train": asdict(self.train), "preset": self.preset.name,
                "sources": self.sources}

    def record_extra(self) -> dict[str, Any]:
        """Run-record fields beyond the config: the data folder and where the model's code came from."""
        return {"data_root": str(self.data_root), "model_source": model_source(self.model_name)}


@dataclass(kw_only=True)
class RunSetup(RunPlan):
    """A planned run with its model built, and the frame and text pipelines that feed it."""

    model: Any
    video_cfg: VideoConfig
    tokenizer: TextTokenizer


def _pretrained_weights(preset: Preset, data_root: Path, env: DistEnv, cache_dir: str | Path | None) -> str:
    from benchmark.engine.pretrain import backbone_cache, ensure_pretrained, pretrain_config

    config, cache = pretrain_config(preset), backbone_cache(cache_dir)
    if env.is_main:
        path = ensure_pretrained(data_root, config, cache=cache, progress=True)
    barrier(env)
    if not env.is_main:
        path = ensure_pretrained(data_root, config, cache=cache, progress=False)
    return str(path)


def prepare_model_run(
    *,
    checkpoint: str | Path | None = None,
    model_name: str | None = None,
    preset: str | Preset | None = None,
    sets: list[str] | tuple[str, ...] = (),
    data_root: str | Path | None = None,
    clip_weights: str | None = None,
    env: DistEnv | None = None,
    seed: int | None = None,
    select_on_test: bool = False,
    cache_dir: str | Path | None = None,
    check: Callable[[RunPlan], None] | None = None,
) -> RunSetup:
    """Resolve configs and build the model, either fresh (`model_name` + `preset`) or from a checkpoint directory.

    Everything that can be checked without the model is checked first (model and preset names, `--set` fields and
    types, the backbone name, the weights or checkpoint file's format, then `check(plan)`, which loads the splits the
    caller needs), so a bad input fails in seconds, never after pretraining. A checkpoint's model is found through
    the plugin it recorded.
    """
    env = env or init_distributed()
    state: dict[str, Any] | None = None
    if checkpoint is not None:
        state = read_state(checkpoint)
        model_name, preset = state["model"], preset or state["preset"]
        data_root = data_root or state.get("data_root")
        seed, select_on_test = state.get("seed"), state.get("select_on_test", False)
        require_model(model_name, state.get("model_source"))
    if model_name is None or preset is None:
        raise TrainError("Name a model and a preset (e.g. --model clip4clip-meanp --preset synthvtt).")
    preset = preset if isinstance(preset, Preset) else load_preset(preset)
    root = Path(data_root or preset.data["root"])
    if state is not None:
        model_config, sources = dict(state["config"]), list(state.get("sources", []))
        train_cfg = preset.train_config(**{**state["train"], **_eval_sets(sets)})
    else:
        sets = list(sets) + ([f"clip_weights={json.dumps(clip_weights)}"] if clip_weights else [])
        resolved = resolve(preset, model_name, sets)
        model_config, train_cfg, sources = resolved.model, resolved.train, resolved.sources
    check_backbone_name(model_config["backbone"])
    if state is not None:
        model_file(checkpoint)
    elif model_config.get("clip_weights") not in (None, "random"):
        check_weights_file(model_config["clip_weights"])
    select_on_test = select_on_test or train_cfg.select_on == "test"
    plan = RunPlan(preset, model_name, model_config, train_cfg, sources, root, env, seed, select_on_test)
    if check is not None:
        check(plan)
    if state is not None:
        model = build_model(model_name, **{**model_config, "clip_weights": FROM_CHECKPOINT})
        load_weights(checkpoint, model)
    else:
        if model_config.get("clip_weights") is None and preset.backbone.get("weights") == "pretrain":
            model_config["clip_weights"] = _pretrained_weights(preset, root, env, cache_dir)
        if seed is not None:
            torch.manual_seed(seed)
        model = build_model(model_name, **model_config)
        if "quick_gelu" in model_config:  # record the activation the backbone was built with (reloads rebuild it)
            model_config["quick_gelu"] = model.backbone.quick_gelu
    model.to(env.device)
    if train_cfg.backbone_dtype == "fp16" and env.device.type == "cuda":  # as officially: fp16 CLIP on CUDA only
        model.backbone.to_official_fp16()
    if train_cfg.freeze_backbone:
        model.backbone.freeze()
    video_cfg = VideoConfig.from_preprocess(
        model.backbone.clip.visual.preprocess_cfg,
        max_frames=train_cfg.max_frames, framerate=train_cfg.framerate, sampling=train_cfg.sampling,
    )
    tokenizer = TextTokenizer(train_cfg.max_words, name=model_config["backbone"])
    planned = {f.name: getattr(plan, f.name) for f in dataclasses.fields(RunPlan)}
    return RunSetup(**planned, model=model, video_cfg=video_cfg, tokenizer=tokenizer)


def _eval_sets(sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """--set overrides allowed when evaluating a checkpoint: evaluation fields only (the model is fixed)."""
    allowed = ("eval_batch_size", "chunk_texts", "chunk_videos", "num_workers")
    values = parse_sets(sets)
    bad = sorted(set(values) - set(allowed))
    if bad:
        raise TrainError(f"A checkpoint's model and recipe are fixed; --set may only change {allowed}, not {bad}.")
    return values
