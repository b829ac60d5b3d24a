"""torch Datasets over a `Split`: (text, clip) training pairs and the video gallery, with an optional frame cache."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmark.data.randaugment import VideoRandAugment
from benchmark.data.split import Split, VideoRecord
from benchmark.data.text import TextTokenizer
from benchmark.data.video import ClipAugment, VideoConfig, VideoDecodeError, decode_frames, to_tensor

log = logging.getLogger(__name__)

# Decoded, sampled uint8 frames per clip, shared by every dataset of this process (see `cache_frames`).
_FRAME_CACHE: dict[tuple, torch.Tensor] = {}


def clear_frame_cache() -> None:
    """Drop every cached clip (frees the memory of `cache_frames=True`)."""
    _FRAME_CACHE.clear()


def clip_frames(video: VideoRecord, cfg: VideoConfig, cache: bool) -> torch.Tensor:
    """The sampled uint8 frames of one video; with `cache`, decoded once per process and kept in memory."""
    if not cache:
        return decode_frames(video.path, video.start, video.end, cfg)
    key = (video.id, video.path, video.start, video.end, cfg.max_frames, cfg.framerate, cfg.sampling)
    frames = _FRAME_CACHE.get(key)
    if frames is None:
        frames = _FRAME_CACHE[key] = decode_frames(video.path, video.start, video.end, cfg)
    return frames


class PairDataset(Dataset):
    """One item per text of `split`: its tokens and the frames of its video.

    Items are dicts: tokens, mask (int64 [max_words]), frames (float32 [max_frames, 3, size, size]), frame_mask,
    text_index, video_index, skipped (1 when a bad clip was replaced by this item). With on_bad_video="skip" an
    undecodable clip is replaced by the next text (in split order) whose clip decodes; `skipped` counts the
    replacements made in this process and `bad_videos` holds the ids of the clips that failed.
    Augmentation draws come from `seed`, the epoch (`set_epoch`) and the index, so they do not depend on workers.
    """

    def __init__(
        self,
        split: Split,
        video_cfg: VideoConfig,
        tokenizer: TextTokenizer,
        augment: ClipAugment | VideoRandAugment | None = None,
        on_bad_video: Literal["error", "skip"] = "error",
        cache_frames: bool = False,
        seed: int = 0,
    ) -> None:
        if on_bad_video not in ("error", "skip"):
            raise ValueError(f"on_bad_video must be 'error' or 'skip', not `{on_bad_video}`.")
        if not split.texts:
            raise ValueError(f"{split.benchmark}/{split.split} has no texts to train on.")
        self.split = split
        self.video_cfg = video_cfg
        self.tokenizer = tokenizer
        self.augment = augment
        self.on_bad_video = on_bad_video
        self.cache_frames = cache_frames
        self.seed = seed
        self.epoch = 0
        self.text_to_video = split.text_to_video
        self.skipped = 0
        self.bad_videos: set[str] = set()

    def set_epoch(self, epoch: int) -> None:
        """Use the augmentation draws of `epoch`."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split.texts)

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        video_index = int(self.text_to_video[index])
        raw = clip_frames(self.split.videos[video_index], self.video_cfg, self.cache_frames)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.augment is not None else None
        frames, frame_mask = to_tensor(raw, self.video_cfg, self.augment, rng)
        tokens, mask = self.tokenizer([self.split.texts[index].caption])
        return {
            "tokens": tokens[0],
            "mask": mask[0],
            "frames": frames,
            "frame_mask": frame_mask,
            "text_index": torch.tensor(index),
            "video_index": torch.tensor(video_index),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.on_bad_video == "error":
            return {**self._item(index), "skipped": torch.tensor(0)}
        for step in range(len(self)):
            candidate = (index + step) % len(self)
            video = self.split.videos[int(self.text_to_video[candidate])]
            if video.id in self.bad_videos:
                continue
            try:
                item = self._item(candidate)
            except VideoDecodeError as err:
                self.bad_videos.add(video.id)
                log.warning("skipping clip of text %s: %s", self.split.texts[candidate].id, err)
                continue
            self.skipped += int(step > 0)
            return {**item, "skipped": torch.tensor(int(step > 0))}
        raise VideoDecodeError(self.split.videos[0].path, f"no clip of {self.split.benchmark}/{self.split.split} "
                               "decodes; check the videos with `tvbench data check`")


class VideoDataset(Dataset):
    """One item per video of `split` (the evaluation gallery): frames, frame_mask, video_index. Never skips."""

    def __init__(self, split: Split, video_cfg: VideoConfig, cache_frames: bool = False) -> None:
        self.split = split
        self.video_cfg = video_cfg
        self.cache_frames = cache_frames

    def __len__(self) -> int:
        return len(self.split.videos)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        raw = clip_frames(self.split.videos[index], self.video_cfg, self.cache_frames)
        frames, frame_mask = to_tensor(raw, self.video_cfg)
        return {"frames": frames, "frame_mask": frame_mask, "video_index": torch.tensor(index)}
