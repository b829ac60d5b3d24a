"""``tvbench pretrain``: train the tiny open_clip backbone on SynthVTT's image-caption set with the CLIP loss.

The result stands in for "the CLIP weights" on the embedded benchmark. It is cached under
``<cache dir>/backbones/<hash>.safetensors`` (``$XDG_CACHE_HOME/tvbench`` unless ``--cache-dir`` says otherwise),
where the hash covers the backbone config, the data, and every training setting, so a second call with the same
inputs returns the cached file at once. ``tvbench pretrain`` and ``tvbench train`` take their settings from the same
place (`pretrain_config`), so a backbone pretrained by hand is the one training finds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import open_clip
import torch
from filelock import FileLock
from safetensors.torch import save_file
from tqdm import tqdm

from benchmark.argtypes import positive_float, positive_int
from benchmark.data.synthvtt import load_image_captions
from benchmark.data.text import TextTokenizer
from benchmark.data.video import VideoConfig, to_tensor
from benchmark.engine.backbone import Backbone, BackboneSpec
from benchmark.engine.losses import symmetric_infonce
from benchmark.engine.optimization import apply_schedule, make_optimizer
from benchmark.io import atomic_path, write_json
from benchmark.paths import cache_dir
from benchmark.presets import Preset, list_presets, load_preset

CACHE_VERSION = 1  # bump when the training procedure changes, so old caches are not reused


@dataclass(frozen=True)
class PretrainConfig:
    """Every setting that changes the pretrained weights (all of it goes into the cache hash). The defaults are the
    measured SynthVTT recipe (synthvtt preset notes): 300 steps of batch 128 at lr 2e-3; 120 steps at 5e-4 stayed at
    chance."""

    backbone: str = "tvbench-tiny"
    steps: int = 300
    seed: int = 0
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_proportion: float = 0.1
    holdout: float = 0.1


def pretrain_config(preset: Preset) -> PretrainConfig:
    """The settings of the backbone a preset with `"weights": "pretrain"` pretrains (and caches) on its data: the
    defaults above for its backbone, overridden by its `backbone.pretrain` (the synthvtt preset keeps the defaults)."""
    return PretrainConfig(backbone=preset.backbone["name"], **preset.backbone.get("pretrain", {}))


def backbone_cache(override: str | Path | None = None) -> Path:
    """The folder of cached pretrained backbones: `<cache dir>/backbones` (see `benchmark.paths.cache_dir`)."""
    return cache_dir(override) / "backbones"


def _data_digest(images: np.ndarray, captions: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(json.dumps(captions).encode("utf-8"))
    return digest.hexdigest()


def cache_key(config: PretrainConfig, data_sha: str) -> str:
    """sha256 (first 16 hex digits) of the backbone config json, the data digest and the training settings."""
    payload = {
        "version": CACHE_VERSION,
        "backbone_config": open_clip.get_model_config(config.backbone),
        "data_sha256": data_sha,
        "train": asdict(config),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _images_to_input(images: np.ndarray, backbone: Backbone) -> torch.Tensor:
    """uint8 [N,H,W,3] -> normalised float [N,3,S,S] at the backbone's input size (the video pipeline's transform)."""
    cfg = VideoConfig(max_frames=len(images), size=backbone.image_size, mean=backbone.mean, std=backbone.std)
    frames, _ = to_tensor(torch.from_numpy(images), cfg)
    return frames


@torch.no_grad()
def zero_shot_accuracy(backbone: Backbone, images: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
                       captions: list[str]) -> dict[str, float]:
    """Image->caption and caption->image top-1 accuracy (%) among held-out pairs; identical captions count as hits."""
    backbone.eval()
    img = torch.nn.functional.normalize(backbone.encode_frames(images), dim=-1)
    txt = torch.nn.functional.normalize(backbone.encode_text(tokens, mask)[0], dim=-1)
    sim = txt @ img.t()
    same = np.array([[a == b for b in captions] for a in captions])
    i2t = same[np.arange(len(captions)), sim.argmax(dim=0).numpy()].mean()
    t2i = same[np.arange(len(captions)), sim.argmax(dim=1).numpy()].mean()
    return {"i2t_R@1": 100.0 * float(i2t), "t2i_R@1": 100.0 * float(t2i), "chance": 100.0 * float(same.mean())}


def pretrain(data_root: str | Path, config: PretrainConfig, progress: bool = True) -> tuple[dict, dict[str, float]]:
    """Train the backbone from random init; returns (state dict, held-out zero-shot accuracy)."""
    images, captions = load_image_captions(data_root)
    torch.manual_seed(config.seed)
    backbone = Backbone(BackboneSpec(config.backbone), allow_random=True)
    tokenizer = TextTokenizer(backbone.context_length, name=config.backbone)
    n_hold = max(1, round(config.holdout * len(images)))
    if len(images) - n_hold < 2:
        raise ValueError(f"{data_root}: only {len(images)} pretraining images; generate SynthVTT with more images.")
    pixels = _images_to_input(images, backbone)
    tokens, mask = tokenizer(captions)
    train_n = len(images) - n_hold
    params = [p for p in backbone.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decay, "lr": config.lr, "base_lr": config.lr, "weight_decay": config.weight_decay},
        {"params": no_decay, "lr": config.lr, "base_lr": config.lr, "weight_decay": 0.0},
    ]
    optimizer = make_optimizer(groups, betas=(0.9, 0.98), eps=1e-6)
    generator = torch.Generator().manual_seed(config.seed)
    batch = min(config.batch_size, train_n)
    order = torch.randperm(train_n, generator=generator)
    cursor = 0
    backbone.train()
    bar = tqdm(range(config.steps), desc="pretrain", disable=not progress, leave=False)
    for step in bar:
        if cursor + batch > train_n:
            order, cursor = torch.randperm(train_n, generator=generator), 0
        index = order[cursor : cursor + batch]
        cursor += batch
        apply_schedule(optimizer, step, config.steps, config.warmup_proportion)
        img = torch.nn.functional.normalize(backbone.encode_frames(pixels[index]), dim=-1)
        txt = torch.nn.functional.normalize(backbone.encode_text(tokens[index], mask[index])[0], dim=-1)
        # Captions repeat across images, so pairs with the same caption are positives too.
        ids = torch.tensor([hash(captions[i]) for i in index.tolist()])
        loss = symmetric_infonce(txt @ img.t(), backbone.logit_scale.exp(), ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        with torch.no_grad():
            backbone.logit_scale.clamp_(max=float(np.log(100.0)))
        bar.set_postfix(loss=f"{loss.item():.3f}")
    held = slice(train_n, len(images))
    accuracy = zero_shot_accuracy(backbone, pixels[held], tokens[held], mask[held], captions[held])
    return backbone.clip.state_dict(), accuracy


def cached_weights_path(data_root: str | Path, config: PretrainConfig, cache: str | Path | None = None) -> Path:
    """Where the backbone pretrained on `data_root` with `config` is cached: `<cache>/<key>.safetensors` (default
    folder: `backbone_cache()`)."""
    images, captions = load_image_captions(data_root)
    folder = Path(cache) if cache is not None else backbone_cache()
    return folder / f"{cache_key(config, _data_digest(images, captions))}.safetensors"


def ensure_pretrained(
    data_root: str | Path,
    config: PretrainConfig | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Path of the pretrained backbone for `data_root` and `config` in the folder `cache` (default:
    `backbone_cache()`), training and caching it first when missing. With `progress`, says on stderr which it did."""
    config = config or PretrainConfig()
    path = cached_weights_path(data_root, config, cache)
    key, cache = path.stem, path.parent
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / f"{key}.lock")):
        if path.is_file():
            if progress:
                print(f"Using the pretrained {config.backbone} backbone cached at {path}.", file=sys.stderr)
            return path
        if progress:
            print(f"Pretraining {config.backbone} on {data_root} ({config.steps} steps of batch {config.batch_size} at "
                  f"lr {config.lr:g}); this happens once, the weights are cached at {path} (choose the folder with "
                  "--cache-dir).", file=sys.stderr)  # fmt: skip
        start = time.perf_counter()
        state, accuracy = pretrain(data_root, config, progress=progress)
        with atomic_path(path) as tmp:
            save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp))
        seconds = time.perf_counter() - start
        write_json(path.with_suffix(".json"), {"config": asdict(config), "zero_shot": accuracy, "seconds": seconds,
                                               "data_root": str(data_root), "key": key})
        print(
            f"pretrained {config.backbone} for {config.steps} steps in {seconds:.1f} s; held-out zero-shot "
            f"image->caption R@1 {accuracy['i2t_R@1']:.1f}%, caption->image R@1 {accuracy['t2i_R@1']:.1f}% "
            f"(chance {accuracy['chance']:.1f}%)"
        )
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="SynthVTT folder (from `tvbench data synth`)")
    parser.add_argument("--preset", default="synthvtt", choices=list_presets(),
                        help="take the backbone and settings `tvbench train` uses for this preset (default synthvtt)")
    parser.add_argument("--backbone", help="open_clip model name (default: the preset's, tvbench-tiny)")
    parser.add_argument("--steps", type=positive_int, help="optimiser steps (default: the preset's, 300)")
    parser.add_argument("--seed", type=int, help="default 0")
    parser.add_argument("--batch-size", type=positive_int, help="default: the preset's, 128")
    parser.add_argument("--lr", type=positive_float, help="default: the preset's, 2e-3")
    parser.add_argument("--cache-dir", type=Path,
                        help="cache folder (default $XDG_CACHE_HOME/tvbench); backbones go to its backbones/")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    chosen = {"backbone": args.backbone, "steps": args.steps, "seed": args.seed, "batch_size": args.batch_size,
              "lr": args.lr}  # fmt: skip
    config = replace(pretrain_config(load_preset(args.preset)), **{k: v for k, v in chosen.items() if v is not None})
    path = ensure_pretrained(args.data, config, cache=backbone_cache(args.cache_dir))
    info = path.with_suffix(".json")
    if info.is_file():
        print(f"zero-shot (held-out): {json.loads(info.read_text())['zero_shot']}")
    print(path)
    return 0
