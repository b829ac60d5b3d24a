"""Query latency and batched throughput of a model over real galleries held in memory, beside the memory floor: the
time this machine takes to read those gallery features once, measured in the same run (``tvbench efficiency``).

Galleries are random features of the model's per-video shapes and dtypes: scoring cost depends on shapes, not values
(the heads' softmaxes have no data-dependent slow path, see `pairwise.softmax`). Timings use
``torch.utils.benchmark.Timer`` (warm-up, accelerator synchronisation, median and interquartile range).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmark.engine.scoring import InMemoryGallery, default_video_block, search, slice_items
from benchmark.retrieval_model import Features

MEMINFO = Path("/proc/meminfo")
MEMORY_HEADROOM = 0.8  # a gallery may take at most this share of the memory available when it is built


def timer(fn: Callable[[], Any]) -> Any:
    """A torch.utils.benchmark Timer of `fn()` on all intra-op threads (it synchronises accelerators itself)."""
    if not torch.cuda.is_available():
        # Importing torch.utils.benchmark loads cpp_extension, which warns "No CUDA runtime is found" on any CPU-only
        # machine with a CUDA toolkit installed; nothing here compiles an extension, so the warning is only noise.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils.benchmark import Timer

    return Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())


def time_call(fn: Callable[[], Any], min_run_time: float, max_runs: int = 8) -> tuple[float, float, int]:
    """Median and IQR (seconds) of `fn()` and the number of timed runs (Timer.adaptive_autorange).

    One explicit warm-up call first; then runs until the IQR is within 10% of the median (at least 4 runs) or about
    `max_runs` calls' worth of time has passed.
    """
    clock = timer(fn)
    with torch.no_grad():
        warm_up = clock.timeit(1).median
        measurement = clock.adaptive_autorange(
            threshold=0.1, min_run_time=min_run_time, max_run_time=max(min_run_time, max_runs * warm_up)
        )
    return measurement.median, measurement.iqr, len(measurement.times)


def repeat_features(feats: Features, n: int) -> Features:
    """Features of one item repeated into `n` items (materialised)."""
    return {key: value.repeat(n, *([1] * (value.dim() - 1))) for key, value in feats.items()}


def features_nbytes(feats: Features) -> int:
    """Bytes held by a feature dict."""
    return sum(value.numel() * value.element_size() for value in feats.values())


def available_memory_bytes() -> int | None:
    """MemAvailable of this machine (Linux), or None where it cannot be read."""
    if MEMINFO.is_file():
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def random_gallery(video_feats: Features, n: int, seed: int = 0) -> Features:
    """`n` videos with the per-video shapes and dtypes of `video_feats` (one encoded video): floating features random
    normal, the others (frame masks) copied. Refuses (ValueError) a gallery that does not fit in memory."""
    needed = features_nbytes(video_feats) // len(next(iter(video_feats.values()))) * n
    available = available_memory_bytes()
    if available is not None and needed > MEMORY_HEADROOM * available:
        raise ValueError(
            f"A {n:,}-video gallery of this model needs {needed / 1e9:.1f} GB in memory but {available / 1e9:.1f} GB "
            "are available; measure smaller --gallery sizes (nothing is extrapolated)."
        )
    generator = torch.Generator().manual_seed(seed)
    gallery = {}
    for name, value in video_feats.items():
        shape = (n, *value.shape[1:])
        if value.is_floating_point():
            gallery[name] = torch.empty(shape, dtype=value.dtype).normal_(generator=generator).to(value.device)
        else:
            gallery[name] = value[:1].expand(shape).clone()
    return gallery


def _matrix_vector(value: torch.Tensor) -> torch.Tensor:
    """Rows of a floating tensor times a ones vector (integer tensors, a few bytes per video, are summed)."""
    if not value.is_floating_point():
        return value.sum()
    return value.reshape(-1, value.shape[-1]) @ torch.ones(value.shape[-1], dtype=value.dtype, device=value.device)


# Kernels that read every byte once with almost no arithmetic; the floor is the fastest of them in the same run.
READ_KERNELS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sum": torch.sum,
    "max": torch.amax,
    "matrix-vector": _matrix_vector,
}


def read_once(features: Features, kernel: str = "sum") -> None:
    """Read every byte of `features` once with one of READ_KERNELS (on all intra-op threads)."""
    for value in features.values():
        READ_KERNELS[kernel](value)


def memory_floor(features: Features, min_run_time: float) -> tuple[float, float, str]:
    """(median, IQR, kernel) of the fastest way found to read `features` once: the memory floor of one query."""
    timings = {kernel: time_call(lambda k=kernel: read_once(features, k), min_run_time) for kernel in READ_KERNELS}
    kernel = min(timings, key=lambda k: timings[k][0])
    return timings[kernel][0], timings[kernel][1], kernel


def gallery_latency(
    model: Any,
    text_feats: Features,
    encode_text: Callable[[], Features],
    gallery: Features,
    sizes: Sequence[int],
    *,
    top_k: int = 10,
    min_run_time: float = 0.5,
) -> list[dict[str, Any]]:
    """Per gallery size N (the first N videos of `gallery`): one query's scoring-only latency (`score_ms`: streamed
    score() plus the running top-k, text already encoded), its end-to-end latency with `encode_text` (`e2e_ms`), the
    memory floor (`floor_ms`: the fastest of READ_KERNELS reading the N videos' features once) and their ratio.
    Medians, IQRs in milliseconds."""
    rows = []
    for n in sorted(sizes):
        part = slice_items(gallery, 0, n)
        videos = InMemoryGallery(part)
        floor, floor_iqr, kernel = memory_floor(part, min_run_time)
        score, score_iqr, runs = time_call(lambda v=videos: search(model, text_feats, v, top_k), min_run_time)
        e2e, e2e_iqr, _ = time_call(lambda v=videos: search(model, encode_text(), v, top_k), min_run_time)
        nbytes = features_nbytes(part)
        rows.append({
            "gallery": n, "gallery_bytes": nbytes, "score_ms": score * 1e3, "score_iqr_ms": score_iqr * 1e3,
            "e2e_ms": e2e * 1e3, "e2e_iqr_ms": e2e_iqr * 1e3, "floor_ms": floor * 1e3, "floor_iqr_ms": floor_iqr * 1e3,
            "read_gbps": nbytes / floor / 1e9, "floor_kernel": kernel, "score_to_floor": score / floor, "runs": runs,
            "video_block": default_video_block(model, 1),
        })  # fmt: skip
    return rows


def wall_seconds(fn: Callable[[], Any], runs: int) -> list[float]:
    """Seconds of each of `runs` calls of `fn()` (no warm-up: for long calls on an already warm path)."""
    clock = timer(fn)
    with torch.no_grad():
        return [clock.timeit(1).median for _ in range(runs)]


def batched_throughput(
    model: Any,
    text_feats: Features,
    gallery: Features,
    blocks: Sequence[int],
    *,
    top_k: int = 10,
    max_block_s: float = 120.0,
) -> list[dict[str, Any]]:
    """Queries per second for blocks of A queries scored together over the whole gallery (one streamed pass per block,
    top-k per query). A block whose time, estimated from the previous block's per-query time, exceeds `max_block_s`
    is skipped and says so (never extrapolated into a number)."""
    videos, rows, per_query = InMemoryGallery(gallery), [], None
    for size in sorted(blocks):
        texts = repeat_features(text_feats, size)
        estimate = None if per_query is None else per_query * size
        if estimate is not None and estimate > max_block_s:
            rows.append({"queries": size, "gallery": len(videos), "skipped": f"estimated {estimate:.0f} s for one "
                         f"block, over the {max_block_s:.0f} s budget (--max-block-s)"})  # fmt: skip
            continue
        runs = 3 if estimate is None or estimate < 10 else 1
        times = sorted(wall_seconds(lambda t=texts: search(model, t, videos, top_k), runs))
        seconds = times[len(times) // 2]
        per_query = seconds / size
        rows.append({"queries": size, "gallery": len(videos), "seconds": seconds, "queries_per_s": size / seconds,
                     "runs": runs, "video_block": default_video_block(model, size)})  # fmt: skip
    return rows
