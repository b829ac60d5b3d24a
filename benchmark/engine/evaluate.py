"""Evaluation runs: encode every text and video of a split once, score in chunks, rank, write a run record.

``tvbench evaluate --checkpoint RUN/checkpoints/best --split test --out DIR`` evaluates a trained checkpoint;
``tvbench evaluate --model clip-zeroshot --preset synthvtt --out DIR`` a model that needs no training. Under torchrun
each rank encodes a shard; features are gathered back into split order, so the record is the same on 1 or N processes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from benchmark.data.dataset import VideoDataset
from benchmark.data.split import Split
from benchmark.data.text import TextTokenizer
from benchmark.data.video import VideoConfig
from benchmark.engine.distributed import DistEnv, gather_in_order, init_distributed, shard_indices
from benchmark.engine.gallery import STORAGE, open_gallery, rank_agreement, record_in_gallery, store_features
from benchmark.engine.scoring import rank_against_gallery, score_matrix
from benchmark.metrics import evaluate_scores
from benchmark.runs import RunRecord, make_record, write_run

Features = dict[str, torch.Tensor]


def _concat(parts: list[Features]) -> Features:
    if not parts:
        return {}
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


@torch.no_grad()
def encode_split(
    model: Any,
    split: Split,
    video_cfg: VideoConfig,
    tokenizer: TextTokenizer,
    batch_size: int,
    device: torch.device | str,
    env: DistEnv | None = None,
    cache_frames: bool = False,
    num_workers: int = 0,
    progress: bool = False,
) -> tuple[Features, Features]:
    """(text features, video features) of every item of `split`, in split order, each computed exactly once
    (per process shard under torchrun, then gathered)."""
    env = env or DistEnv(0, 1, torch.device(device))
    was_training = model.training
    model.eval()
    show = progress and env.is_main
    text_index = shard_indices(len(split.texts), env.rank, env.world_size)
    text_parts = []
    for start in tqdm(range(0, len(text_index), batch_size), desc="encode texts", disable=not show, leave=False):
        captions = [split.texts[i].caption for i in text_index[start : start + batch_size]]
        tokens, mask = tokenizer(captions)
        text_parts.append(model.encode_text(tokens.to(device), mask.to(device)))
    video_index = shard_indices(len(split.videos), env.rank, env.world_size)
    loader = DataLoader(
        Subset(VideoDataset(split, video_cfg, cache_frames=cache_frames), video_index),
        batch_size=batch_size,
        num_workers=num_workers,
    )
    video_parts = []
    for batch in tqdm(loader, desc="encode videos", disable=not show, leave=False):
        video_parts.append(model.encode_video(batch["frames"].to(device), batch["frame_mask"].to(device)))
    model.train(was_training)
    texts = gather_in_order(_concat(text_parts), len(split.texts), env)
    videos = gather_in_order(_concat(video_parts), len(split.videos), env)
    return texts, videos


def evaluate_split(
    model: Any,
    split: Split,
    video_cfg: VideoConfig,
    tokenizer: TextTokenizer,
    *,
    batch_size: int = 64,
    chunk_texts: int = 256,
    chunk_videos: int = 256,
    ties: str = "random",
    v2t: str = "max-over-captions",
    env: DistEnv | None = None,
    cache_frames: bool = False,
    num_workers: int = 0,
    progress: bool = False,
    save_gallery: Path | None = None,
    gallery_storage: str = "float32",
) -> tuple[dict[str, Any] | None, np.ndarray | None]:
    """(metrics.evaluate_scores output, score matrix) of `model` on `split`; (None, None) on ranks other than 0.

    With `save_gallery`, the encoded videos are also written there as a memory-mappable gallery; with float16
    `gallery_storage` the split is ranked again from that gallery and its agreement with float32 is recorded in the
    gallery and returned under "gallery".
    """
    env = env or DistEnv(0, 1, next(model.parameters()).device)
    texts, videos = encode_split(
        model, split, video_cfg, tokenizer, batch_size, env.device, env, cache_frames, num_workers, progress
    )
    if not env.is_main:
        return None, None
    scores = score_matrix(model, texts, videos, chunk_texts, chunk_videos, progress)
    result = evaluate_scores(scores, split.text_to_video, ties=ties, v2t=v2t)
    if save_gallery is not None:
        meta = {"benchmark": split.benchmark, "split": split.split, "fingerprint": split.fingerprint,
                "video_ids": [video.id for video in split.videos]}  # fmt: skip
        store_features(save_gallery, videos, storage=gallery_storage, meta=meta)
        result["gallery"] = {"path": str(save_gallery), "storage": gallery_storage}
        if gallery_storage != "float32":
            streamed = rank_against_gallery(
                model, texts, open_gallery(save_gallery), split.text_to_video, chunk_texts=chunk_texts,
                chunk_videos=chunk_videos, progress=progress,
            )  # fmt: skip
            agreement = rank_agreement(result["ranks"]["t2v"], streamed.counts, ties)
            record_in_gallery(save_gallery, "agreement_with_float32", agreement)
            result["gallery"]["agreement_with_float32"] = agreement
    return result, scores


def evaluate_model(
    model: Any,
    split: Split,
    video_cfg: VideoConfig,
    tokenizer: TextTokenizer,
    *,
    method: str,
    config: dict[str, Any],
    seed: int | None = None,
    select_on_test: bool = False,
    efficiency: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    save_scores: bool = False,
    command: str | None = None,
    **options: Any,
) -> RunRecord | None:
    """Evaluate `model` on `split` into a run record (written to `out_dir` when given); None on ranks other than 0.

    `options` go to `evaluate_split` (batch_size, chunk_texts, chunk_videos, ties, v2t, env, cache_frames,
    save_gallery, gallery_storage, ...).
    """
    result, scores = evaluate_split(model, split, video_cfg, tokenizer, **options)
    if result is None:
        return None
    record = make_record(
        method=method,
        config=config,
        split=split,
        result=result,
        seed=seed,
        protocol_extra={"select_on_test": select_on_test, "loss_terms": list(model.active_loss_terms())},
        efficiency=efficiency,
        extra=extra,
        command=command,
    )
    if out_dir is not None:
        write_run(record, out_dir, scores=scores if save_scores else None)
    return record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("what to evaluate (one of)")
    source.add_argument("--checkpoint", type=Path, help="checkpoint folder from `tvbench train` (RUN/checkpoints/best)")
    source.add_argument("--model", help="registered model evaluated without a checkpoint (zero-shot); needs --preset")
    parser.add_argument("--preset", help="preset name or file (default: the checkpoint's)")
    parser.add_argument("--split", default="test", help="test, val, or a split name of the benchmark")
    parser.add_argument("--out", required=True, type=Path, help="run record directory to write (replaced if present)")
    parser.add_argument("--data-root", type=Path, help="benchmark folder (default: the preset's data.root)")
    parser.add_argument("--clip-weights", help="CLIP weights file for --model (SynthVTT: pretrained when omitted)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model or evaluation field (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="seed recorded for --model runs")
    parser.add_argument("--save-scores", action="store_true", help="also write the score matrix (sim.npy)")
    parser.add_argument("--v2t", choices=("max-over-captions", "all-captions"), help="video-to-text protocol")
    parser.add_argument("--cache-dir", type=Path,
                        help="cache of pretrained backbones for --model (default $XDG_CACHE_HOME/tvbench)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--save-gallery", type=Path, metavar="DIR",
                        help="also write the encoded videos as a memory-mappable gallery folder (replaced if present)")
    parser.add_argument("--gallery-storage", choices=STORAGE, default="float32",
                        help="dtype of the gallery's floating features; float16 also measures and records its rank "
                             "agreement with float32 on this split (default float32)")


def run(args: argparse.Namespace) -> int:
    from benchmark.engine.run_setup import RunSetup, prepare_model_run

    if (args.checkpoint is None) == (args.model is None):
        raise ValueError("give exactly one of --checkpoint DIR (from `tvbench train`) or --model NAME (with --preset).")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; pass a folder for the run record.")
    env = init_distributed(args.device)
    setup: RunSetup = prepare_model_run(
        checkpoint=args.checkpoint, model_name=args.model, preset=args.preset, sets=args.sets,
        data_root=args.data_root, clip_weights=args.clip_weights, env=env, cache_dir=args.cache_dir,
        check=lambda plan: plan.split(args.split),
    )
    split = setup.split(args.split)
    train_cfg = setup.train
    v2t = args.v2t or setup.preset.eval.get("v2t", "max-over-captions")
    record = evaluate_model(
        setup.model, split, setup.video_cfg, setup.tokenizer,
        method=setup.model_name, config=setup.record_config(), seed=args.seed if args.model else setup.seed,
        select_on_test=setup.select_on_test, extra=setup.record_extra(), out_dir=args.out,
        save_scores=args.save_scores, command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        batch_size=train_cfg.eval_batch_size, chunk_texts=train_cfg.chunk_texts, chunk_videos=train_cfg.chunk_videos,
        ties=setup.preset.eval.get("ties", "random"), v2t=v2t, env=env, cache_frames=setup.cache_frames,
        num_workers=train_cfg.num_workers, progress=True, save_gallery=args.save_gallery,
        gallery_storage=args.gallery_storage,
    )
    if record is not None:
        summary = {"out": str(args.out), "split": split.split, "metrics": record.metrics}
        if args.save_gallery is not None:
            gallery = open_gallery(args.save_gallery)
            summary["gallery"] = {"path": str(args.save_gallery), "storage": gallery.storage, "bytes": gallery.nbytes,
                                  **{k: v for k, v in gallery.meta.items() if k == "agreement_with_float32"}}
        print(json.dumps(summary, indent=2))
    return 0
