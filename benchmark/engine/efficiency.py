"""Cost of a retrieval model measured one way for every method: parameters, FLOPs/MACs per video, text and pair, and
query latency over galleries of precomputed videos against the memory floor (``tvbench efficiency``).

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` with the nn.MultiheadAttention fast path off and the math
attention kernel forced, so that projections and attention products are counted on every device alike. Latency comes
from ``torch.utils.benchmark.Timer`` (warm-up, accelerator synchronisation, median and interquartile range).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fnmatch
import json
import os
import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from benchmark.argtypes import positive_float, positive_int
from benchmark.engine.clip_model import ClipRetrievalModel
from benchmark.engine.latency import (
    batched_throughput,
    features_nbytes,
    gallery_latency,
    random_gallery,
    repeat_features,
    timer,
)
from benchmark.retrieval_model import Features

PUBLISHED_CSV = Path(__file__).resolve().parents[2] / "leaderboard" / "published.csv"
# tvbench model names (fnmatch patterns) -> method names in leaderboard/published.csv.
PUBLISHED_METHODS = {"clip4clip-*": "CLIP4Clip", "xpool": "X-Pool", "xclip": "X-CLIP", "glscl": "GLSCL"}
TABLE_PAIRS = 1_000_000  # GLSCL Table I convention: one 1k x 1k MSR-VTT 1k-A similarity matrix
SCORE_CHUNK = (32, 64)  # texts x videos of the chunk the per-pair cost is measured on

COUNTING_CONVENTION = (
    "FLOPs from torch.utils.flop_counter.FlopCounterMode: 2 FLOPs per multiply-add, MACs = FLOPs / 2. Counted: matrix "
    "products, convolutions and attention (MHA fast path disabled, math SDPA kernel forced, so QKV/output projections "
    "and the QK^T and AV products are all counted on any device). Not counted: elementwise ops, softmax, norms, top-k. "
    "per_video = encode_video on one clip (offline, once per video); per_text = encode_text on one query (online, once "
    "per query); per_pair = marginal cost of score() per (text, video) pair, fitted exactly from score() on chunks of "
    "{t}x{v}, {t2}x{v}, {t}x{v2} and {t2}x{v2} pairs (any per-text or per-video work done inside score() is reported "
    "apart as score_per_text / score_per_video). head_gmacs_1k = per_pair MACs x 1e6 / 1e9 (GLSCL Table I: the online "
    "head over a 1k x 1k test matrix). The ViT-B-32 image tower counts 4.41 GMACs per 224 px frame (open_clip's 8.82 "
    "GFLOPs); without the attention products it is the often-quoted 4.36 GMACs."
).format(t=SCORE_CHUNK[0], v=SCORE_CHUNK[1], t2=2 * SCORE_CHUNK[0], v2=2 * SCORE_CHUNK[1])


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one call (2 per multiply-add) and their split by aten operator."""

    flops: int
    by_op: dict[str, int]

    @property
    def macs(self) -> float:
        return self.flops / 2


@contextlib.contextmanager
def counting_mode() -> Iterator[None]:
    """No grad, MHA fast path off and the math SDPA kernel: every product is visible to FlopCounterMode."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def count_flops(fn: Callable[[], Any]) -> FlopCount:
    """FLOPs of running `fn()` once, under `counting_mode`."""
    with counting_mode(), FlopCounterMode(display=False) as counter:
        fn()
    by_op = {str(op).removeprefix("aten."): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return FlopCount(int(counter.get_total_flops()), by_op)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters."""
    return next(model.parameters()).device


def dummy_text(model: ClipRetrievalModel, n: int, words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` texts of exactly `words` tokens (SOT, random ids, EOT; no padding) on the model's device."""
    if not 2 <= words <= model.backbone.context_length:
        raise ValueError(f"--words must be in 2..{model.backbone.context_length} for this backbone, got {words}.")
    vocab = model.backbone.clip.token_embedding.num_embeddings
    device = model_device(model)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, vocab - 2, (n, words), generator=generator)
    tokens[:, 0], tokens[:, -1] = vocab - 2, vocab - 1  # open_clip: SOT and EOT are the two last ids; EOT is argmax
    return tokens.to(device), torch.ones(n, words, dtype=torch.int64, device=device)


def dummy_clips(model: ClipRetrievalModel, n: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random clips of `frames` frames at the backbone's resolution, all frames valid, on the model's device."""
    if frames < 1:
        raise ValueError(f"--frames must be at least 1, got {frames}.")
    size = model.backbone.image_size
    device = model_device(model)
    generator = torch.Generator().manual_seed(0)
    clips = torch.randn(n, frames, 3, size, size, generator=generator)
    return clips.to(device), torch.ones(n, frames, dtype=torch.int64, device=device)


def parameter_counts(model: ClipRetrievalModel) -> dict[str, int]:
    """Parameters in total, in the backbone, and added on top of it by the method."""
    return {
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_backbone": sum(p.numel() for p in model.backbone.parameters()),
        "params_added": sum(p.numel() for p in model.head_parameters()),
    }


@dataclass
class Probe:
    """One encoded query and one encoded clip of a model, with the FLOPs of encoding each: the inputs every count and
    timing reuses."""

    model: ClipRetrievalModel
    frames: int
    words: int
    tokens: torch.Tensor
    mask: torch.Tensor
    clip: torch.Tensor
    frame_mask: torch.Tensor
    text_feats: Features
    video_feats: Features
    text_flops: int
    video_flops: int


def make_probe(model: ClipRetrievalModel, frames: int, words: int) -> Probe:
    """Encode (and count) one query of `words` tokens and one clip of `frames` frames; call inside `measuring`."""
    tokens, mask = dummy_text(model, 1, words)
    clip, frame_mask = dummy_clips(model, 1, frames)
    outputs: dict[str, Features] = {}
    text = count_flops(lambda: outputs.update(text=model.encode_text(tokens, mask)))
    video = count_flops(lambda: outputs.update(video=model.encode_video(clip, frame_mask)))
    return Probe(
        model, frames, words, tokens, mask, clip, frame_mask, outputs["text"], outputs["video"], text.flops, video.flops
    )


def pair_costs(
    score: Callable[[Features, Features], torch.Tensor],
    text_feats: Features,
    video_feats: Features,
    chunk: tuple[int, int] = SCORE_CHUNK,
) -> dict[str, float]:
    """FLOPs of `score` per pair, per text and per video (beyond the pairs), from one text's and one video's features.

    score() is bilinear in cost, so four chunk sizes (t x v, 2t x v, t x 2v, 2t x 2v) give its terms exactly.
    """
    t, v = chunk

    def cost(n_text: int, n_video: int) -> int:
        texts, videos = repeat_features(text_feats, n_text), repeat_features(video_feats, n_video)
        return count_flops(lambda: score(texts, videos)).flops

    c11, c21, c12, c22 = cost(t, v), cost(2 * t, v), cost(t, 2 * v), cost(2 * t, 2 * v)
    per_pair = (c22 - c21 - c12 + c11) / (t * v)
    return {
        "per_pair": per_pair,
        "score_per_text": (c21 - c11) / t - per_pair * v,
        "score_per_video": (c12 - c11) / v - per_pair * t,
        "score_chunk_per_pair": c11 / (t * v),
    }


def flop_costs(probe: Probe) -> dict[str, float]:
    """FLOPs per video (offline), per text, per pair (online), of the backbone alone, and of the heads outside it."""
    model = probe.model
    image = probe.clip[0, :1]
    per_video, per_text = probe.video_flops, probe.text_flops
    per_frame = count_flops(lambda: model.backbone.encode_frames(image)).flops
    backbone_text = count_flops(lambda: model.backbone.encode_text(probe.tokens, probe.mask)).flops
    return {
        "per_video": per_video,
        "per_text": per_text,
        **pair_costs(model.score, probe.text_feats, probe.video_feats),
        "backbone_image_per_frame": per_frame,
        "backbone_text": backbone_text,
        "video_head": per_video - probe.frames * per_frame,
        "text_head": per_text - backbone_text,
    }


def head_gmacs_1k(per_pair_flops: float) -> float:
    """GLSCL Table I convention: per-pair MACs x 1e6 pairs, in GMACs."""
    return per_pair_flops / 2 * TABLE_PAIRS / 1e9


def published_method(model_name: str) -> str | None:
    """The method name in leaderboard/published.csv that a tvbench model reproduces, or None."""
    for pattern, method in PUBLISHED_METHODS.items():
        if fnmatch.fnmatchcase(model_name, pattern):
            return method
    return None


def published_head_flops(model_name: str, backbone: str, path: Path = PUBLISHED_CSV) -> dict[str, str] | None:
    """The head FLOPs a paper reported for this model's method on the same backbone, with its source, or None."""
    method = published_method(model_name)
    if method is None or not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("method") == method]
    column = "head_flops_reported" if rows and "head_flops_reported" in rows[0] else "head_flops"
    for row in rows:
        value = (row.get(column) or "").strip()
        if value and (row.get("backbone") or "").replace("/", "-") == backbone:
            source = " ".join(filter(None, (row.get("source") or row.get("reported_in"), row.get("table"))))
            return {"value": value, "method": method, "source": source}
    return None


def device_name(device: torch.device) -> str:
    """A human-readable name of the device (GPU model, or CPU model)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def items_per_second(fn: Callable[[], Any], items: int, min_run_time: float) -> float:
    """Throughput of `fn()` processing `items` items (Timer.blocked_autorange; its block sizing warms up)."""
    with torch.no_grad():
        return items / timer(fn).blocked_autorange(min_run_time=min_run_time).median


def encoding_throughput(probe: Probe, *, videos: int = 1, texts: int = 16, min_run_time: float = 0.5) -> dict:
    """Videos/s and texts/s of the offline encoders at the given batch sizes."""
    model = probe.model
    clips, frame_mask = dummy_clips(model, videos, probe.frames)
    tokens, mask = dummy_text(model, texts, probe.words)
    return {
        "videos_per_s": items_per_second(lambda: model.encode_video(clips, frame_mask), videos, min_run_time),
        "texts_per_s": items_per_second(lambda: model.encode_text(tokens, mask), texts, min_run_time),
        "video_batch": videos,
        "text_batch": texts,
    }


@contextlib.contextmanager
def measuring(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters while measuring, both restored afterwards.

    Frozen because FlopCounterMode's module tracker fails under no_grad when a parameter is passed to a submodule.
    """
    was_training = model.training
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)
        model.train(was_training)


def _split_units(flops: dict[str, float]) -> dict[str, dict[str, float]]:
    return {"flops": dict(flops), "macs": {key: value / 2 for key, value in flops.items()}}


GALLERY_NOTE = (
    "Latency over galleries of N videos held in memory: random features of the model's per-video shapes and dtypes "
    "(scoring cost depends on shapes, not values), all measured, none extrapolated. score_ms = score() streamed over "
    "the gallery in blocks plus the running top-k, for one already encoded text; e2e_ms adds encode_text; floor_ms = "
    "reading the same gallery features once, the fastest of a sum, a max and a matrix-vector product over every "
    "tensor (floor_kernel), on the same threads, measured in the same run, so read_gbps is this machine's read "
    "bandwidth at that moment; score_to_floor = score_ms / floor_ms. Throughput: blocks of A queries scored together "
    "over the largest gallery."
)


def _latency(probe: Probe, galleries: Sequence[int], min_run_time: float, top_k: int) -> tuple[Features, list]:
    """(the largest gallery, latency rows of every size) for the probe's model."""
    model = probe.model
    gallery = random_gallery(probe.video_feats, max(galleries))
    rows = gallery_latency(
        model, probe.text_feats, lambda: model.encode_text(probe.tokens, probe.mask), gallery, galleries,
        top_k=top_k, min_run_time=min_run_time,
    )  # fmt: skip
    return gallery, rows


def efficiency_block(
    model: ClipRetrievalModel,
    *,
    frames: int = 12,
    words: int = 32,
    latency: bool = False,
    galleries: Sequence[int] = (1000,),
) -> dict[str, Any]:
    """The compact, JSON-able cost summary stored in a run record (no timing unless `latency`)."""
    device = model_device(model)
    with measuring(model):
        probe = make_probe(model, frames, words)
        flops = flop_costs(probe)
        block: dict[str, Any] = {
            "unit": "MACs = FLOPs / 2 (FlopCounterMode; see convention)",
            "convention": COUNTING_CONVENTION,
            "frames": frames,
            "words": words,
            **{k: v for k, v in parameter_counts(model).items() if k != "params_backbone"},
            "per_pair_macs": flops["per_pair"] / 2,
            "head_gmacs_1k": head_gmacs_1k(flops["per_pair"]),
            "per_video_gflops": flops["per_video"] / 1e9,
            "per_text_gflops": flops["per_text"] / 1e9,
            "device": str(device),
            "device_name": device_name(device),
        }
        if latency:
            block["latency"] = _latency(probe, galleries, 0.5, 10)[1]
    return block


def measure(
    model: ClipRetrievalModel,
    name: str,
    *,
    frames: int = 12,
    words: int = 32,
    galleries: Sequence[int] = (1000, 10000, 100000),
    query_blocks: Sequence[int] = (1, 32, 1000),
    max_block_s: float = 120.0,
    top_k: int = 10,
    min_run_time: float = 0.5,
) -> dict[str, Any]:
    """The full efficiency report of a built model: parameters, FLOPs/MACs, latency against the memory floor per
    gallery size, batched query throughput over the largest gallery, and encoding throughput."""
    device = model_device(model)
    load_start = os.getloadavg()
    with measuring(model):
        probe = make_probe(model, frames, words)
        flops = flop_costs(probe)
        published = published_head_flops(name, model.config.backbone)
        gallery, latency = _latency(probe, galleries, min_run_time, top_k)
        batched = batched_throughput(model, probe.text_feats, gallery, query_blocks, top_k=top_k,
                                     max_block_s=max_block_s)  # fmt: skip
        del gallery
        return {
            "model": name,
            "backbone": model.config.backbone,
            "frames": frames,
            "words": words,
            "device": str(device),
            "device_name": device_name(device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average": {"start": list(load_start), "end": list(os.getloadavg()), "cpus": os.cpu_count()},
            **parameter_counts(model),
            **_split_units(flops),
            "score_chunk": {"texts": SCORE_CHUNK[0], "videos": SCORE_CHUNK[1]},
            "head_gmacs_1k": head_gmacs_1k(flops["per_pair"]),
            "published_head_flops": published["value"] if published else None,
            "published_head_flops_source": published,
            "video_bytes": features_nbytes(probe.video_feats),
            "top_k": top_k,
            "latency": latency,
            "query_throughput": batched,
            "throughput": encoding_throughput(probe, min_run_time=min_run_time),
            "gallery_note": GALLERY_NOTE,
            "convention": COUNTING_CONVENTION,
        }


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3f} {prefix}{unit}"
    return f"{value:.1f} {unit}"


def format_report(report: dict[str, Any]) -> str:
    """The report as tabulate tables for people."""
    from tabulate import tabulate

    macs, flops = report["macs"], report["flops"]
    published = report["published_head_flops"] or "-"
    rows = [
        [
            "model / backbone",
            f"{report['model']} / {report['backbone']} ({report['frames']} frames, {report['words']} words)",
        ],
        ["device", f"{report['device']} ({report['device_name']}, {report['threads']} threads)"],
        ["params total / added", f"{report['params_total'] / 1e6:.2f} M / {report['params_added'] / 1e6:.3f} M"],
        ["per video (offline)", f"{_si(macs['per_video'], 'MAC')} = {_si(flops['per_video'], 'FLOP')}"],
        ["  of which video head", _si(macs["video_head"], "MAC")],
        ["per text (per query)", f"{_si(macs['per_text'], 'MAC')} = {_si(flops['per_text'], 'FLOP')}"],
        ["  of which text head", _si(macs["text_head"], "MAC")],
        ["per pair (online)", f"{macs['per_pair']:,.0f} MAC = {flops['per_pair']:,.0f} FLOP"],
        ["score() per text / per video", f"{macs['score_per_text']:,.0f} / {macs['score_per_video']:,.0f} MAC"],
        ["backbone image per frame", _si(macs["backbone_image_per_frame"], "MAC")],
        ["head @1k x 1k (Table I convention)", f"{report['head_gmacs_1k']:.3f} GMAC (published: {published})"],
        [
            "throughput",
            f"{report['throughput']['videos_per_s']:.2f} videos/s, {report['throughput']['texts_per_s']:.1f} texts/s",
        ],
    ]
    latency = [
        [f"{row['gallery']:,}", f"{row['gallery_bytes'] / 1e6:,.0f}", f"{row['score_ms']:.1f}", f"{row['e2e_ms']:.1f}",
         f"{row['floor_ms']:.1f}", f"{row['score_to_floor']:.2f}", f"{row['read_gbps']:.1f}"]
        for row in report["latency"]
    ]  # fmt: skip
    batched = [
        [f"{row['queries']:,}", f"{row['gallery']:,}", row.get("skipped") or f"{row['queries_per_s']:.2f}",
         "-" if "skipped" in row else f"{row['seconds']:.2f}"]
        for row in report["query_throughput"]
    ]  # fmt: skip
    load = report["load_average"]
    return "\n\n".join(
        [
            tabulate(rows, headers=["quantity", "value"], tablefmt="github"),
            tabulate(latency, headers=["gallery N", "MB", "score ms", "e2e ms", "floor ms", "score/floor", "read GB/s"],
                     tablefmt="github"),  # fmt: skip
            tabulate(batched, headers=["queries / block", "gallery N", "queries/s", "s / block"], tablefmt="github"),
            f"load average (1 min) {load['start'][0]:.2f} at start, {load['end'][0]:.2f} at end, {load['cpus']} CPUs",
            report["gallery_note"],
            report["convention"],
        ]
    )


def parse_galleries(text: str) -> list[int]:
    """'1000,10000' -> [1000, 10000]; every size must be a positive integer."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--gallery wants comma-separated positive integers, got `{text}`.")
    return sizes


def resolve_device(name: str) -> torch.device:
    """`cpu` or `cuda`, refusing CUDA where there is none."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available here; use --device cpu.")
    return torch.device(name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `tvbench efficiency`."""
    parser.add_argument("--model", required=True, help="a registered model name (see `tvbench models`)")
    parser.add_argument("--backbone", default="ViT-B-32", help="open_clip backbone name (default ViT-B-32)")
    parser.add_argument("--frames", type=positive_int, default=12, help="frames per video (default 12)")
    parser.add_argument("--words", type=positive_int, default=32, help="tokens per text, SOT/EOT included (default 32)")
    parser.add_argument(
        "--gallery",
        type=parse_galleries,
        default=[1000, 10000, 100000],
        help="comma-separated gallery sizes for the latency sweep (default 1000,10000,100000)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default cpu)")
    parser.add_argument("--min-run-time", type=positive_float, default=0.5, help="seconds of timing per measurement")
    parser.add_argument(
        "--query-blocks",
        type=parse_galleries,
        default=[1, 32, 1000],
        help="comma-separated numbers of queries scored together for the throughput over the largest gallery "
        "(default 1,32,1000)",
    )
    parser.add_argument("--max-block-s", type=positive_float, default=120.0,
                        help="skip (and say so) a query block estimated to take longer than this (default 120)")
    parser.add_argument("--top-k", type=positive_int, default=10, help="videos kept per query (default 10)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="intra-op threads for every measurement, floor included (default: torch's, all cores); "
                             "on a machine shared with other jobs, fewer threads than cores can be faster")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def run(args: argparse.Namespace) -> int:
    """Build the model with random weights, measure it and print the report."""
    from benchmark.registry import build_model

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = build_model(args.model, backbone=args.backbone, clip_weights="random").to(device)
    report = measure(
        model,
        args.model,
        frames=args.frames,
        words=args.words,
        galleries=args.gallery,
        query_blocks=args.query_blocks,
        max_block_s=args.max_block_s,
        top_k=args.top_k,
        min_run_time=args.min_run_time,
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
