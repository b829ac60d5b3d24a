"""``tvbench metrics``: the metrics of a saved score matrix, as a table or JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tabulate import tabulate

from benchmark.metrics import METRICS, TIE_POLICIES, V2T_PROTOCOLS, evaluate_scores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scores", type=Path, help="score matrix S[n_text, n_video] as .npy (memory-mapped)")
    parser.add_argument("--text-to-video", type=Path, help=".npy ints: each text's video index (default: diagonal)")
    parser.add_argument("--ties", choices=TIE_POLICIES, default="random", help="tie policy (default: random)")
    parser.add_argument("--v2t", choices=V2T_PROTOCOLS, default="max-over-captions", help="video-to-text protocol")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _load_npy(path: Path, what: str) -> np.ndarray:
    if path.suffix != ".npy" or not path.is_file():
        raise FileNotFoundError(f"{what} `{path}` must be an existing .npy file.")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{what} `{path}` cannot be read without unpickling ({err}); save it with np.save.") from err


def run(args: argparse.Namespace) -> int:
    """Print the metrics; a bad file or matrix raises with a message (`tvbench metrics: error: ...`, exit 2)."""
    scores = _load_npy(args.scores, "score matrix")
    mapping = _load_npy(args.text_to_video, "text-to-video map") if args.text_to_video else None
    result = evaluate_scores(scores, mapping, ties=args.ties, v2t=args.v2t)
    if args.json:
        out = {k: result[k] for k in ("t2v", "v2t", "protocol", "n_texts", "n_videos")}
        print(json.dumps(out, indent=2))
        return 0
    arrows = {name: ("↑" if info.higher_is_better else "↓") for name, info in METRICS.items()}
    rows = [[d, *(f"{result[d][m]:.2f}" for m in METRICS)] for d in ("t2v", "v2t")]
    print(tabulate(rows, headers=["", *(f"{m} {arrows[m]}" for m in METRICS)]))
    print(f"{result['n_texts']} texts x {result['n_videos']} videos; ties={args.ties}, v2t={args.v2t}")
    return 0
