"""Clip decoding with decord: frame sampling over a time window, resize + centre crop, normalisation, padding.

`decode_frames` returns the sampled frames as uint8 (cacheable); `to_tensor` turns them into the model input;
`load_clip` does both. Every decoding failure is a `VideoDecodeError` that names the file and the cause.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from benchmark.data.randaugment import VideoRandAugment

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class VideoDecodeError(RuntimeError):
    """A video file is missing, empty or cannot be decoded."""

    def __init__(self, path: str | Path, cause: str) -> None:
        super().__init__(f"cannot decode video `{path}`: {cause}")
        self.path = str(path)
        self.cause = cause

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # survives pickling (multiprocessing, DataLoader workers)
        return (type(self), (self.path, self.cause))


@dataclass(frozen=True)
class VideoConfig:
    """How a clip becomes model input.

    sampling="fps" (CLIP4Clip/GLSCL): one frame every round(video_fps / framerate) frames over [start, end], then
    uniformly subsampled to `max_frames` if more. sampling="uniform" (X-Pool): `max_frames` segments of equal length
    over the window, the middle frame of each (all frames when the window is shorter). Short clips are zero-padded.
    """

    max_frames: int = 12
    framerate: float = 1.0
    size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    sampling: Literal["fps", "uniform"] = "fps"

    def __post_init__(self) -> None:
        if self.max_frames < 1 or self.size < 1 or self.framerate <= 0:
            raise ValueError(f"VideoConfig needs max_frames >= 1, size >= 1 and framerate > 0, got {self}.")
        if self.sampling not in ("fps", "uniform"):
            raise ValueError(f"VideoConfig.sampling must be 'fps' or 'uniform', not `{self.sampling}`.")

    @classmethod
    def from_preprocess(cls, preprocess_cfg: dict[str, Any], **overrides: Any) -> VideoConfig:
        """Size, mean and std from an open_clip `model.visual.preprocess_cfg`; other fields from `overrides`."""
        size = preprocess_cfg.get("size", 224)
        size = size if isinstance(size, int) else int(size[0])
        fields = {"size": size, "mean": tuple(preprocess_cfg["mean"]), "std": tuple(preprocess_cfg["std"])}
        return cls(**{**fields, **overrides})


@dataclass(frozen=True)
class ClipAugment:
    """Train-time augmentation, one draw per clip applied to every frame: random resized crop, horizontal flip."""

    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5


def sample_indices(n_frames: int, fps: float, start: float | None, end: float | None, cfg: VideoConfig) -> np.ndarray:
    """Frame indices (int64, ascending) to read from a video of `n_frames` frames at `fps` for window [start, end]."""
    last = n_frames - 1
    first = 0 if start is None else min(max(int(start * fps), 0), last)
    stop = last if end is None else min(max(int(end * fps), first), last)
    if cfg.sampling == "uniform":
        span = stop - first + 1
        if span <= cfg.max_frames:
            return np.arange(first, stop + 1, dtype=np.int64)
        return first + ((np.arange(cfg.max_frames) + 0.5) * span / cfg.max_frames).astype(np.int64)
    stride = max(1, round(fps / cfg.framerate)) if fps > 0 else 1
    positions = np.arange(first, stop + 1, stride, dtype=np.int64)
    if len(positions) > cfg.max_frames:
        positions = positions[np.linspace(0, len(positions) - 1, cfg.max_frames).astype(np.int64)]
    return positions


def _reason(err: Exception) -> str:
    """decord's error message without its log prefix (`[hh:mm:ss] file.cc:line: `), first line only."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return re.sub(r"^(\[[\d:]+\] \S+?:\d+: )+", "", lines[0])


def _open(path: str | Path) -> Any:
    """A decord VideoReader, or VideoDecodeError for a missing, empty, unreadable or frameless file."""
    import decord

    path = str(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    try:
        reader = decord.VideoReader(path, num_threads=1)
    except (RuntimeError, decord.DECORDError) as err:
        raise VideoDecodeError(path, f"decord cannot open it ({_reason(err)})") from err
    if len(reader) == 0:
        raise VideoDecodeError(path, "the video stream has no frames")
    return reader


def _read(reader: Any, path: str | Path, indices: np.ndarray) -> np.ndarray:
    import decord

    try:
        return reader.get_batch(indices.tolist()).asnumpy()
    except (RuntimeError, decord.DECORDError) as err:
        raise VideoDecodeError(path, f"damaged frames ({_reason(err)})") from err


def decode_frames(path: str | Path, start: float | None, end: float | None, cfg: VideoConfig) -> torch.Tensor:
    """The sampled frames of window [start, end] (seconds; None = video start/end) as uint8 [T, H, W, 3]."""
    reader = _open(path)
    fps = float(reader.get_avg_fps() or 0.0)
    return torch.from_numpy(_read(reader, path, sample_indices(len(reader), fps, start, end, cfg)))


def probe_video(path: str | Path) -> None:
    """Raise VideoDecodeError unless `path` opens and its first and last frames decode."""
    reader = _open(path)
    _read(reader, path, np.array(sorted({0, len(reader) - 1}), dtype=np.int64))


def _augment_frames(frames: torch.Tensor, size: int, augment: ClipAugment, rng: np.random.Generator) -> torch.Tensor:
    """Random resized crop (one box for the whole clip) to `size`, then an optional flip of every frame."""
    height, width = frames.shape[-2:]
    area = height * width
    box = (0, 0, height, width)
    for _ in range(10):
        target = area * rng.uniform(*augment.scale)
        aspect = float(np.exp(rng.uniform(np.log(augment.ratio[0]), np.log(augment.ratio[1]))))
        w, h = round((target * aspect) ** 0.5), round((target / aspect) ** 0.5)
        if 0 < w <= width and 0 < h <= height:
            box = (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
            break
    out = TF.resized_crop(frames, *box, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return TF.horizontal_flip(out) if rng.uniform() < augment.flip else out


def to_tensor(
    frames: torch.Tensor,
    cfg: VideoConfig,
    augment: ClipAugment | VideoRandAugment | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [T, H, W, 3] frames -> (float32 [max_frames, 3, size, size] normalised and zero-padded, int64 mask).
    RandAugment runs first, at the video's own resolution, then the usual resize + centre crop (official order)."""
    frames = frames[: cfg.max_frames]
    if isinstance(augment, VideoRandAugment):
        frames = augment(frames, rng if rng is not None else np.random.default_rng())
        augment = None
    clip = frames.permute(0, 3, 1, 2)
    if augment is not None:
        clip = _augment_frames(clip, cfg.size, augment, rng if rng is not None else np.random.default_rng())
    else:
        if min(clip.shape[-2:]) != cfg.size:  # frames already at the input size (SynthVTT) skip the resampling
            clip = TF.resize(clip, [cfg.size], interpolation=InterpolationMode.BICUBIC, antialias=True)
        clip = TF.center_crop(clip, [cfg.size, cfg.size])
    clip = TF.normalize(clip.float().div_(255.0), list(cfg.mean), list(cfg.std))
    out = torch.zeros(cfg.max_frames, 3, cfg.size, cfg.size, dtype=torch.float32)
    mask = torch.zeros(cfg.max_frames, dtype=torch.int64)
    out[: len(clip)] = clip
    mask[: len(clip)] = 1
    return out, mask


def load_clip(
    path: str | Path,
    start: float | None,
    end: float | None,
    cfg: VideoConfig,
    augment: ClipAugment | VideoRandAugment | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode, sample, transform and pad one clip: (frames float32 [max_frames, 3, size, size], mask int64)."""
    return to_tensor(decode_frames(path, start, end, cfg), cfg, augment, rng)
