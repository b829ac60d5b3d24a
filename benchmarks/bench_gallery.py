"""A 1,000-query x 200,000-video text-to-video evaluation streamed from a memory-mapped gallery, with its peak memory.

GLSCL's head (ViT-B-32 shapes, random weights) scores 1,000 texts against a gallery written to disk block by block
(about 8.3 GB at float32) whose first 1,000 videos are the relevant ones and the rest distractors. Features are random
normal of the right shapes: this measures memory and time, not retrieval quality. The process's own (anonymous)
memory, model and texts included, is sampled every 5 ms and must stay under 2 GiB; the mapped gallery's pages are
file cache, reported apart. On the first 20,000 videos, a gallery that fits in memory, the streamed counts are checked
against the in-memory path (score matrix, then `metrics.rank_counts`): every tie policy must give identical metrics.
The same subset stored as float16 reports its rank agreement with float32. Writes results/bench/gallery_stream.json.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from benchmark.engine.efficiency import make_probe, measuring
from benchmark.engine.gallery import MappedGallery, open_gallery, rank_agreement, store_features, write_gallery
from benchmark.engine.latency import random_gallery
from benchmark.engine.memory import tracking_peak_memory
from benchmark.engine.scoring import InMemoryGallery, rank_against_gallery, score_matrix
from benchmark.io import write_json
from benchmark.metrics import TIE_POLICIES, rank_counts, summarize
from benchmark.registry import build_model

OUT = Path(__file__).resolve().parent.parent / "results" / "bench"
LIMIT = 2 * 2**30  # peak anonymous memory of the whole process (model and texts included) during the evaluation
WRITE_BLOCK = 4096


def subset(gallery: MappedGallery, n: int) -> MappedGallery:
    """The first `n` videos of a mapped gallery (still memory-mapped)."""
    return MappedGallery(gallery.path, {k: a[:n] for k, a in gallery.arrays.items()}, gallery.storage, gallery.meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="glscl")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=200_000)
    parser.add_argument("--fits", type=int, default=20_000, help="videos of the in-memory identity check")
    parser.add_argument("--chunk-texts", type=int, default=1000)
    parser.add_argument("--chunk-videos", type=int, default=256)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--keep", action="store_true", help="keep the written gallery folders")
    args, _ = parser.parse_known_args()  # nox passes the same extra arguments to every bench script

    model = build_model(args.model, backbone="ViT-B-32", clip_weights="random")
    with measuring(model):
        probe = make_probe(model, 12, 32)
    texts = random_gallery(probe.text_feats, args.texts, seed=1)
    relevant = np.arange(args.texts)
    folder = args.out / "gallery_stream"
    started = time.perf_counter()
    blocks = (random_gallery(probe.video_feats, min(WRITE_BLOCK, args.videos - i), seed=2 + i // WRITE_BLOCK)
              for i in range(0, args.videos, WRITE_BLOCK))  # fmt: skip
    gallery = open_gallery(write_gallery(folder / "float32", blocks, args.videos, meta={"features": "random"}))
    write_s = time.perf_counter() - started

    started = time.perf_counter()
    with tracking_peak_memory() as peak:
        streamed = rank_against_gallery(model, texts, gallery, relevant, chunk_texts=args.chunk_texts,
                                        chunk_videos=args.chunk_videos, progress=True)  # fmt: skip
    stream_s = time.perf_counter() - started

    fits = subset(gallery, args.fits)
    in_memory = {name: torch.from_numpy(np.array(array)) for name, array in fits.arrays.items()}
    matrix = score_matrix(model, texts, InMemoryGallery(in_memory), args.chunk_texts, args.chunk_videos)
    reference = rank_counts(matrix, relevant)
    small = rank_against_gallery(model, texts, fits, relevant, chunk_texts=args.chunk_texts,
                                 chunk_videos=args.chunk_videos).counts  # fmt: skip
    identical = {ties: summarize(small, ties) == summarize(reference, ties) for ties in TIE_POLICIES}
    half = open_gallery(store_features(folder / "float16", in_memory, storage="float16"))
    agreement = rank_agreement(small, rank_against_gallery(model, texts, half, relevant, chunk_texts=args.chunk_texts,
                                                           chunk_videos=args.chunk_videos).counts)  # fmt: skip

    result = {
        "model": args.model, "texts": args.texts, "videos": args.videos, "features": "random normal (timing/memory)",
        "gallery_bytes": gallery.nbytes, "write_s": write_s, "stream_s": stream_s,
        "peak_anon_added_bytes": peak.added_anon_bytes, "peak_anon_bytes": peak.peak_anon_bytes,
        "peak_file_resident_bytes": peak.peak_file_bytes, "limit_bytes": LIMIT,
        "under_limit": peak.peak_anon_bytes < LIMIT, "t2v": summarize(streamed.counts),
        "identity_check_videos": args.fits, "identical_metrics": identical,
        "float16_agreement_on_identity_subset": agreement, "threads": torch.get_num_threads(),
    }  # fmt: skip
    gb, threads, delta = gallery.nbytes / 1e9, torch.get_num_threads(), agreement["metrics_delta"]["R@1"]
    rows = [
        ["gallery", f"{args.videos:,} videos, {gb:.2f} GB float32 on disk (written in {write_s:.0f} s)"],
        ["streamed evaluation", f"{args.texts:,} x {args.videos:,} in {stream_s:.1f} s ({threads} threads)"],
        ["peak anonymous memory", f"{peak.peak_anon_bytes / 2**20:,.0f} MiB of the whole process, model included "
                                  f"(limit {LIMIT / 2**30:.0f} GiB)"],
        ["peak file-backed resident", f"{peak.peak_file_bytes / 2**20:,.0f} MiB (page cache of the mapped gallery)"],
        [f"identical metrics to in-memory @{args.fits:,}", ", ".join(f"{k}: {v}" for k, v in identical.items())],
        ["float16 storage vs float32", f"same rank {agreement['same_rank']:.3f}, max shift "
                                       f"{agreement['max_rank_shift']:.1f}, R@1 delta {delta:+.2f}"],
    ]  # fmt: skip
    print(tabulate(rows, tablefmt="github"))
    write_json(args.out / "gallery_stream.json", result)
    if not args.keep:
        shutil.rmtree(folder)
    if not (result["under_limit"] and all(identical.values())):
        raise SystemExit("bench_gallery: FAILED (peak memory over the limit or metrics differ from the in-memory path)")


if __name__ == "__main__":
    main()
