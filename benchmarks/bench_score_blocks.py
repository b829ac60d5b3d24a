"""Full score matrices in blocks of the head's pair budget vs in the chunks a training config asks for.

GLCCL and X-CLIP hold several [words x frames] matrices per pair; `score_matrix` splits the work into blocks of at
most `score_block_pairs` pairs (`scoring.block_sizes`) so that a block's intermediates stay in cache. This scores the
same random features (tvbench-tiny shapes, 6 frames, 32 words, as the synthvtt-full study) both ways, alternating,
on one thread: the chunks of the synthvtt-full training config taken literally (the budget raised to them, as
`score_matrix` did before) and `score_matrix` now. Medians and their ratio, and the largest score difference; writes
results/bench/score_blocks.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from benchmark.engine.efficiency import make_probe, measuring
from benchmark.engine.latency import random_gallery
from benchmark.engine.scoring import InMemoryGallery, block_sizes, score_matrix
from benchmark.io import write_json
from benchmark.presets import load_preset, resolve
from benchmark.registry import build_model
from benchmark.retrieval_model import Features

OUT = Path(__file__).resolve().parent.parent / "results" / "bench"


@contextmanager
def pair_budget(model: torch.nn.Module, pairs: int) -> Iterator[None]:
    """`model.score_block_pairs` set to `pairs` in the body, so that `block_sizes` grants the requested chunks."""
    model.score_block_pairs = pairs  # an instance attribute over the class's budget
    try:
        yield
    finally:
        del model.score_block_pairs


def requested_blocks(
    model: torch.nn.Module, texts: Features, gallery: InMemoryGallery, chunk_texts: int, chunk_videos: int
) -> np.ndarray:
    """The score matrix in exactly the requested (chunk_texts x chunk_videos) blocks (`score_matrix` before the
    budget applied)."""
    with pair_budget(model, chunk_texts * chunk_videos):
        return score_matrix(model, texts, gallery, chunk_texts, chunk_videos)


def timed(fn: Callable[..., np.ndarray], *args: object) -> tuple[float, np.ndarray]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["glccl", "xclip"])
    parser.add_argument("--pairs-side", type=int, default=500, help="texts = videos of the score matrix")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args, _ = parser.parse_known_args()  # nox passes the same extra arguments to every bench script

    torch.set_num_threads(1)
    preset = load_preset("synthvtt-full")
    rows, result = [], {"threads": 1, "side": args.pairs_side, "repeats": args.repeats, "models": {}}
    for name in args.models:
        train = resolve(preset, name).train
        model = build_model(name, backbone="tvbench-tiny", clip_weights="random")
        with measuring(model):
            probe = make_probe(model, 6, 32)
        texts = random_gallery(probe.text_feats, args.pairs_side, seed=1)
        gallery = InMemoryGallery(random_gallery(probe.video_feats, args.pairs_side, seed=2))
        asked, used = (train.chunk_texts, train.chunk_videos), block_sizes(model, train.chunk_texts, train.chunk_videos)
        old_s, new_s, diff = [], [], 0.0
        for _ in range(args.repeats):
            seconds, old = timed(requested_blocks, model, texts, gallery, *asked)
            old_s.append(seconds)
            seconds, new = timed(score_matrix, model, texts, gallery, *asked)
            new_s.append(seconds)
            diff = max(diff, float(np.abs(old - new).max()))
        ratio = statistics.median(old_s) / statistics.median(new_s)
        result["models"][name] = {"requested_blocks": asked, "budget_blocks": used, "requested_s": old_s,
                                  "budget_s": new_s, "median_ratio": ratio, "max_abs_diff": diff}  # fmt: skip
        rows.append([name, f"{asked[0]} x {asked[1]}", f"{statistics.median(old_s):.2f}", f"{used[0]} x {used[1]}",
                     f"{statistics.median(new_s):.2f}", f"{ratio:.2f}x", f"{diff:.1e}"])  # fmt: skip
    print(tabulate(rows, headers=["model", "requested blocks", "median s", "budget blocks", "median s", "speed-up",
                                  "max |diff|"], tablefmt="github"))  # fmt: skip
    write_json(args.out / "score_blocks.json", result)


if __name__ == "__main__":
    main()
