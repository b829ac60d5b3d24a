"""``tvbench train``: fine-tune a registered model on a preset, select the best epoch on validation (or keep the final
weights: `select_checkpoint=last`), evaluate it on the test split and write a run record.

Output folder: ``train_log.jsonl`` (losses per term, lr, grad norm, seconds per step, validation metrics; at the end
the step timing and peak memory of rank 0, `benchmark.engine.step_meter`), ``checkpoints/last`` (weights + optimizer
+ RNG + step, rewritten after every epoch; ``--resume`` continues from it bit-exactly on CPU), ``checkpoints/best``
(the selected weights; `tvbench evaluate --checkpoint` takes it) and ``record/`` (run.json + ranks.npz of the test
evaluation; ``extra.step_timing`` repeats the step timing). Once the record is written, ``--keep-checkpoints``
(default ``best``) says which checkpoints stay. Every input is checked before any work (pretraining included). Under
``torchrun`` every rank takes a slice of each global batch, features are all-gathered with gradients before
``model.losses``, gradients are summed across ranks, and only rank 0 writes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import sys
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from benchmark.argtypes import positive_int
from benchmark.data.dataset import PairDataset
from benchmark.data.randaugment import VideoRandAugment
from benchmark.data.split import Split
from benchmark.data.video import ClipAugment
from benchmark.engine.checkpoint import load_training_state, load_weights, read_state, save_checkpoint
from benchmark.engine.distributed import DistEnv, barrier, gather_features, init_distributed, sum_gradients
from benchmark.engine.evaluate import evaluate_model, evaluate_split
from benchmark.engine.optimization import apply_schedule, make_optimizer, parameter_groups
from benchmark.engine.run_setup import RunPlan, RunSetup, TrainError, prepare_model_run
from benchmark.engine.step_meter import StepMeter
from benchmark.metrics import METRICS
from benchmark.presets import Preset, TrainConfig
from benchmark.registry import model_source, model_spec

LOG_FILE = "train_log.jsonl"
LAST, BEST, RECORD = "checkpoints/last", "checkpoints/best", "record"
# --keep-checkpoints: what stays once the run record is written.
KEEP_CHECKPOINTS = {"best": (BEST,), "last": (LAST,), "all": (BEST, LAST), "none": ()}


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, and ask torch for deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (libraries may draw from the global RNG)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def epoch_batches(split: Split, cfg: TrainConfig, seed: int, epoch: int, rank: int, world: int) -> list[list[int]]:
    """This rank's slice of every global batch of `epoch` (text indices). Global batches are drawn from a generator
    seeded by (seed, epoch); rank r takes the r-th contiguous slice, so gathering in rank order rebuilds the batch."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if cfg.train_pairs == "all":
        samples = torch.randperm(len(split.texts), generator=generator).tolist()
    else:
        by_video: dict[int, list[int]] = {}
        for text, video in enumerate(split.text_to_video.tolist()):
            by_video.setdefault(video, []).append(text)
        picks = [texts[int(torch.randint(len(texts), (1,), generator=generator))] for texts in by_video.values()]
        samples = [picks[i] for i in torch.randperm(len(picks), generator=generator).tolist()]
    per_rank = cfg.batch_size // world
    n_batches = len(samples) // cfg.batch_size
    return [
        samples[b * cfg.batch_size + rank * per_rank : b * cfg.batch_size + (rank + 1) * per_rank]
        for b in range(n_batches)
    ]


def steps_per_epoch(split: Split, cfg: TrainConfig) -> int:
    """Full global batches per epoch (the last partial batch is dropped, as in the official code)."""
    n = len(split.texts) if cfg.train_pairs == "all" else len(set(split.text_to_video.tolist()))
    return n // cfg.batch_size


def _autocast(env: DistEnv, cfg: TrainConfig) -> tuple[Any, torch.amp.GradScaler | None]:
    if env.device.type != "cuda" or cfg.amp == "none":
        return nullcontext(), None
    dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    return torch.autocast("cuda", dtype=dtype), scaler


def read_log(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """(line, entry) of every entry of a JSON-lines log, and its torn tail: an unterminated last line that is not JSON
    (a write cut short by a kill), which is left out. Any other line that is not a JSON object is a TrainError."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    torn = None
    if lines[-1]:
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            torn = lines.pop()
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise TrainError(f"`{path}` line {number} is not JSON ({err}); delete that line (or the log) and resume "
                             "again.") from err  # fmt: skip
        if not isinstance(entry, dict):
            raise TrainError(f"`{path}` line {number} is not a JSON object; delete that line and resume again.")
        entries.append((line, entry))
    return entries, torn


class JsonlLog:
    """Append-only JSON-lines log (rank 0); on resume, lines past the checkpoint's step are dropped first, and a torn
    last line (an interrupted write) is dropped with a note in the log and on the console."""

    def __init__(self, path: Path, enabled: bool, keep_until_step: int | None = None) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        if keep_until_step is None:
            path.write_text("", encoding="utf-8")
        elif path.is_file():
            entries, torn = read_log(path)
            kept = [line for line, entry in entries if entry.get("step", 0) <= keep_until_step]
            path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
            if torn is not None:
                print(f"{path}: dropped a torn last line (a write cut short), {len(torn)} characters: {torn[:60]!r}",
                      file=sys.stderr)  # fmt: skip
                self.write(event="torn_line_dropped", step=keep_until_step, characters=len(torn), text=torn[:200])

    def write(self, **entry: Any) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")


def _better(value: float, best: float | None, metric: str, ties: str = "first") -> bool:
    """Whether `value` replaces the selected `best`; with ties="last" an equal value does (official `<=`)."""
    if best is None or (ties == "last" and value == best):
        return True
    return value > best if METRICS[metric].higher_is_better else value < best


def train_augmentation(cfg: TrainConfig) -> ClipAugment | VideoRandAugment | None:
    """The augmentation of training clips: tvbench's crop + flip (`augment`) or the official video-consistent
    RandAugment (`rand_augment`), one draw per clip for all its frames; never both."""
    if cfg.augment and cfg.rand_augment:
        raise TrainError("Choose one augmentation: augment=true (crop + flip) or rand_augment=SPEC, not both.")
    if cfg.rand_augment:
        return VideoRandAugment.from_spec(cfg.rand_augment)
    return ClipAugment() if cfg.augment else None


def _checkpoint_state(setup: RunSetup, **values: Any) -> dict[str, Any]:
    return {"model": setup.model_name, "model_source": model_source(setup.model_name), "config": setup.model_config,
            "train": asdict(setup.train), "preset": setup.preset.name, "sources": setup.sources,
            "data_root": str(setup.data_root), "seed": setup.seed, "select_on_test": setup.select_on_test, **values}


def check_out_dir(out_dir: Path, resume: bool) -> None:
    """Refuse, before any work, an --out that is a file, or that holds a run unless --resume can continue it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainError(f"--out {out_dir} is a file; pass a folder for the run.")
    resumable = (out_dir / LAST / "state.json").is_file()
    if resume and not resumable and (out_dir / RECORD).exists():
        raise TrainError(f"{out_dir} holds a finished run whose last checkpoint was not kept (--keep-checkpoints), "
                         "so there is nothing to resume; choose another --out.")  # fmt: skip
    if not resume and any((out_dir / part).exists() for part in (LAST, BEST, RECORD)):
        raise TrainError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out.")


def check_training(plan: RunPlan) -> None:
    """The training inputs, before any work: the train, validation and test splits load, and a batch fits."""
    cfg, env = plan.train, plan.env
    if cfg.batch_size % env.world_size:
        raise TrainError(f"batch_size {cfg.batch_size} is not divisible by the {env.world_size} processes.")
    train_split, _ = plan.train_val()
    plan.split("test")
    if steps_per_epoch(train_split, cfg) == 0:
        raise TrainError(
            f"batch_size {cfg.batch_size} exceeds the training samples of {train_split.split}; lower it with "
            "--set batch_size=N."
        )


def prune_checkpoints(out_dir: Path, keep: str) -> None:
    """Delete the checkpoints of a finished run that `keep` (--keep-checkpoints) does not ask for."""
    for part in (BEST, LAST):
        if part not in KEEP_CHECKPOINTS[keep]:
            shutil.rmtree(out_dir / part, ignore_errors=True)
    with contextlib.suppress(OSError):
        (out_dir / "checkpoints").rmdir()  # only when nothing is left in it


def train_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    env: DistEnv,
    params: list[torch.nn.Parameter],
    cfg: TrainConfig,
    autocast: Any = None,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[float, dict[str, float], float | None]:
    """One optimiser step on this rank's slice of a global batch: encode, all-gather features (with gradients),
    sum `model.losses`, backward, sum gradients across ranks, clip, step. Returns (loss, terms, grad norm)."""
    autocast = autocast or nullcontext()
    with autocast:
        text = model.encode_text(batch["tokens"].to(env.device), batch["mask"].to(env.device))
        video = model.encode_video(batch["frames"].to(env.device), batch["frame_mask"].to(env.device))
    ids = batch["video_index"].to(env.device)
    if env.distributed:
        text, video, ids = gather_features(text), gather_features(video), gather_features({"i": ids})["i"]
    with autocast:
        terms = model.losses(text, video, ids)
    loss = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler else loss).backward()
    sum_gradients(params, env)
    if scaler:
        scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else None
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss.item(), {k: v.item() for k, v in terms.items()}, None if grad_norm is None else float(grad_norm)


def _train(setup: RunSetup, out_dir: Path, resume: bool, max_steps: int | None,
           progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training loop; returns the selection summary (best epoch, value, ...) and this process's step timing and
    peak memory (`StepMeter.summary`)."""
    env, cfg, model = setup.env, setup.train, setup.model
    train_split, val_split = setup.train_val()
    per_epoch = steps_per_epoch(train_split, cfg)
    total = (cfg.schedule_epochs or cfg.epochs) * per_epoch
    stop_at = min(cfg.epochs * per_epoch, max_steps) if max_steps else cfg.epochs * per_epoch
    total = min(total, stop_at) if max_steps else total
    if cfg.freeze_patch_embedding:  # official: CLIP's patch embedding (visual.conv1) is never trained
        model.backbone.clip.visual.conv1.requires_grad_(False)
    groups = parameter_groups(model, cfg.lr, cfg.coef_lr, cfg.weight_decay, cfg.decay_groups)
    optimizer = make_optimizer(groups, cfg.betas, cfg.eps, cfg.optimizer, cfg.grad_clip)
    autocast, scaler = _autocast(env, cfg)
    augment = train_augmentation(cfg)
    dataset = PairDataset(train_split, setup.video_cfg, setup.tokenizer, augment=augment,
                          on_bad_video=setup.preset.data.get("on_bad_video", "error"),
                          cache_frames=setup.cache_frames, seed=setup.seed or 0)
    metric_dir, metric = cfg.select_metric.split("/")
    step, start_epoch, best, best_epoch = 0, 0, None, None
    last_dir = out_dir / LAST
    if resume and (last_dir / "state.json").is_file():
        state = read_state(last_dir)
        if state["config"] != setup.model_config or state["train"] != json.loads(json.dumps(asdict(cfg))):
            raise TrainError(f"{last_dir} was written with another config; resume with the same --set values.")
        load_weights(last_dir, model)
        state = load_training_state(last_dir, optimizer)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, start_epoch = state["step"], state["epoch"] + 1
        best, best_epoch = state["best"]["value"], state["best"]["epoch"]
    log = JsonlLog(out_dir / LOG_FILE, env.is_main, keep_until_step=step if resume else None)
    log.write(event="start", step=step, epoch=start_epoch, steps_per_epoch=per_epoch, total_steps=total,
              world_size=env.world_size, train_split=train_split.split, val_split=val_split.split,
              n_train_texts=len(train_split.texts))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    meter = StepMeter(env.device)
    model.train()
    show = progress and env.is_main
    epochs = tqdm(range(start_epoch, cfg.epochs), desc=f"train {setup.model_name}", disable=not show,
                  initial=start_epoch, total=cfg.epochs)

    def validate(epoch: int, epoch_end: bool) -> None:
        """Evaluate on the selection split; keep the best checkpoint; at an epoch's end also write `last`."""
        nonlocal best, best_epoch
        result, _ = evaluate_split(
            model, val_split, setup.video_cfg, setup.tokenizer, batch_size=cfg.eval_batch_size,
            chunk_texts=cfg.chunk_texts, chunk_videos=cfg.chunk_videos, env=env, cache_frames=setup.cache_frames,
            num_workers=cfg.num_workers,
        )
        if env.is_main:
            value = float(result[metric_dir][metric])
            log.write(event="validation", step=step, epoch=epoch + 1, split=val_split.split,
                      t2v=result["t2v"], v2t=result["v2t"])
            if _better(value, best, metric, cfg.select_ties):
                best, best_epoch = value, epoch + 1
                save_checkpoint(out_dir / BEST, model, _checkpoint_state(setup, epoch=epoch, step=step,
                                                                         selected_on=val_split.split, value=value))
            if epoch_end:
                save_last(epoch)
            epochs.set_postfix({cfg.select_metric: f"{value:.1f}"})
        barrier(env)

    def save_last(epoch: int) -> None:
        """The resume state at an epoch's end (weights, optimiser, step, the selection so far)."""
        save_checkpoint(last_dir, model, _checkpoint_state(
            setup, epoch=epoch, step=step, best={"value": best, "epoch": best_epoch},
            scaler=scaler.state_dict() if scaler else None), optimizer)

    for epoch in epochs:
        if step >= stop_at:
            break
        dataset.set_epoch(epoch)
        batches = epoch_batches(train_split, cfg, setup.seed or 0, epoch, env.rank, env.world_size)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=cfg.num_workers,
                            generator=torch.Generator().manual_seed((setup.seed or 0) * 1000 + epoch))
        for batch in tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not show):
            if step >= stop_at:
                break
            apply_schedule(optimizer, step, total, cfg.warmup_proportion, cfg.schedule)
            with meter.step():
                loss, terms, grad_norm = train_step(model, optimizer, batch, env, params, cfg, autocast, scaler)
            step += 1
            log.write(event="step", step=step, epoch=epoch + 1, loss=loss, **{f"loss/{k}": v for k, v in terms.items()},
                      **{f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups}, grad_norm=grad_norm,
                      seconds=meter.last)
            if cfg.select_every_steps and (step == 1 or step % cfg.select_every_steps == 0):
                validate(epoch, epoch_end=False)  # official: at step 1 and every 3 x n_display steps
        if cfg.select_checkpoint == "best" or epoch + 1 == cfg.epochs or step >= stop_at:
            validate(epoch, epoch_end=True)
        else:  # select_checkpoint "last": no validation before the final epoch
            if env.is_main:
                save_last(epoch)
            barrier(env)
    if env.is_main and not (out_dir / BEST).is_dir():
        raise TrainError(f"No epoch finished in {out_dir}; nothing to select (was max_steps 0?).")
    timing = meter.summary(cfg.batch_size // env.world_size, env.world_size)
    log.write(event="step_timing", step=step, **timing)
    selection = {"split": val_split.split, "metric": cfg.select_metric, "checkpoint": cfg.select_checkpoint,
                 "best_epoch": best_epoch, "best_value": best,
                 "steps": step, "steps_per_epoch": per_epoch, "total_schedule_steps": total,
                 "select_on_test": setup.select_on_test}
    return selection, timing


def train_run(
    preset: str | Preset,
    model_name: str,
    seed: int,
    out_dir: str | Path,
    sets: list[str] | tuple[str, ...] = (),
    *,
    data_root: str | Path | None = None,
    clip_weights: str | None = None,
    resume: bool = False,
    select_on_test: bool = False,
    max_steps: int | None = None,
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
    cache_dir: str | Path | None = None,
    keep_checkpoints: str = "best",
) -> Path:
    """Train `model_name` on `preset` with `seed` (zero-shot models skip training), evaluate the selected checkpoint
    on the test split, write the run record and keep the checkpoints `keep_checkpoints` names; returns the record
    directory (OUT/record). Every input is checked before any work."""
    if keep_checkpoints not in KEEP_CHECKPOINTS:
        raise TrainError(f"keep_checkpoints must be one of {', '.join(KEEP_CHECKPOINTS)}, not `{keep_checkpoints}`.")
    env = init_distributed(device)
    seed_everything(seed)
    out_dir = Path(out_dir)
    check_out_dir(out_dir, resume)
    trained = bool(model_spec(model_name).cls.trainable)
    setup = prepare_model_run(model_name=model_name, preset=preset, sets=sets, data_root=data_root,
                              clip_weights=clip_weights, env=env, seed=seed, select_on_test=select_on_test,
                              cache_dir=cache_dir, check=check_training if trained else lambda p: p.split("test"))
    extra = {**setup.record_extra(), "trained": trained}
    if trained and not any(p.requires_grad for p in setup.model.parameters()):  # frozen backbone and no head
        trained = extra["trained"] = False
        extra["untrained_reason"] = "no parameters outside the frozen backbone: the run is its zero-shot evaluation"
    if trained:
        out_dir.mkdir(parents=True, exist_ok=True)
        selection, timing = _train(setup, out_dir, resume, max_steps, progress)
        if env.is_main:
            load_weights(out_dir / BEST, setup.model)
        barrier(env)
        if env.distributed:  # every rank evaluates with the selected weights
            for tensor in setup.model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        extra.update(selection=selection, step_timing=timing, log=str(out_dir / LOG_FILE))
        if BEST in KEEP_CHECKPOINTS[keep_checkpoints]:
            extra["checkpoint"] = str(out_dir / BEST)
    cfg = setup.train
    record_dir = out_dir / RECORD
    evaluate_model(
        setup.model, setup.split("test"), setup.video_cfg, setup.tokenizer,
        method=model_name, config=setup.record_config(), seed=seed, select_on_test=select_on_test, extra=extra,
        out_dir=record_dir if env.is_main else None, command=command, batch_size=cfg.eval_batch_size,
        chunk_texts=cfg.chunk_texts, chunk_videos=cfg.chunk_videos, ties=setup.preset.eval.get("ties", "random"),
        v2t=setup.preset.eval.get("v2t", "max-over-captions"), env=env, cache_frames=setup.cache_frames,
        num_workers=cfg.num_workers, progress=progress,
    )
    if trained and env.is_main:
        prune_checkpoints(out_dir, keep_checkpoints)
    barrier(env)
    return record_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, help="preset name (benchmark/presets/<name>.json) or file")
    parser.add_argument("--model", required=True, help="registered model name (see `tvbench models`)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, log, record/)")
    parser.add_argument("--data-root", type=Path, help="benchmark folder (default: the preset's data.root)")
    parser.add_argument("--clip-weights", help="CLIP weights file (SynthVTT: the pretrained tiny backbone if omitted)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training or model field, value parsed as JSON (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last")
    parser.add_argument("--select-on-test", action="store_true",
                        help="parity mode: select on the TEST split as the official code does, training on the whole "
                             "training split (recorded; same as --set select_on=test)")
    parser.add_argument("--max-steps", type=positive_int, help="stop after this many optimiser steps (smoke tests)")
    parser.add_argument("--keep-checkpoints", choices=tuple(KEEP_CHECKPOINTS), default="best",
                        help="checkpoints kept once the run record is written (default best; `last` keeps the "
                             "resumable state, `all` both, `none` neither)")  # fmt: skip
    parser.add_argument("--cache-dir", type=Path,
                        help="cache of pretrained backbones (default $XDG_CACHE_HOME/tvbench)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    record = train_run(
        args.preset, args.model, args.seed, args.out, args.sets, data_root=args.data_root,
        clip_weights=args.clip_weights, resume=args.resume, select_on_test=args.select_on_test,
        max_steps=args.max_steps, device=args.device, progress=not args.quiet,
        command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]), cache_dir=args.cache_dir,
        keep_checkpoints=args.keep_checkpoints,
    )
    if init_distributed(args.device).is_main:
        print(json.dumps({"record": str(record), "metrics": json.loads((record / "run.json").read_text())["metrics"]},
                         indent=2))
    return 0
