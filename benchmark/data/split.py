"""The `Split` of the DESIGN contract: ordered videos, ordered texts, ground truth and a fingerprint."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VideoRecord:
    """One gallery item: a video file, optionally a [start, end] window in seconds (None = whole video)."""

    id: str
    path: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class TextRecord:
    """One query text and the id of the single video it describes."""

    id: str
    caption: str
    video_id: str


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _safe_id(video_id: str) -> bool:
    """A video id that can name a file inside the video folder: no path separator, NUL, `.` or `..`."""
    return video_id not in (".", "..") and not any(c in video_id for c in "/\\\0")


def _window_problem(video: VideoRecord) -> str | None:
    if video.start is None and video.end is None:
        return None
    start, end = video.start, video.end
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (start, end))
    if not numbers or start < 0 or end <= start:
        return f"video `{video.id}` has the window [{start}, {end}]; it must be finite with 0 <= start < end."
    return None


def split_problem(videos: list[VideoRecord], texts: list[TextRecord]) -> str | None:
    """The first thing that makes (videos, texts) an invalid split, or None: repeated, empty or path-like video ids,
    bad windows, repeated or empty text ids, empty captions, texts of unknown videos."""
    seen: set[str] = set()
    for video in videos:
        if not _nonempty_str(video.id) or not _safe_id(video.id):
            return f"video id {video.id!r} is empty or contains a path separator, NUL or `..`; refusing it."
        if video.id in seen:
            return f"video id `{video.id}` appears more than once."
        seen.add(video.id)
        window = _window_problem(video)
        if window is not None:
            return window
    text_ids: set[str] = set()
    for text in texts:
        if not _nonempty_str(text.id):
            return f"text id {text.id!r} of video `{text.video_id}` is empty."
        if text.id in text_ids:
            return f"text id `{text.id}` appears more than once."
        text_ids.add(text.id)
        if not _nonempty_str(text.caption):
            return f"text `{text.id}` has no caption (found {text.caption!r})."
        if text.video_id not in seen:
            return f"text `{text.id}` refers to video `{text.video_id}`, which is not in the split's video list."
    return None


@dataclass(frozen=True)
class Split:
    """A benchmark split in canonical order; `text_to_video[i]` is the index in `videos` of text i's video."""

    benchmark: str
    split: str
    videos: list[VideoRecord]
    texts: list[TextRecord]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problem = split_problem(self.videos, self.texts)
        if problem is not None:
            files = self.meta.get("annotations")
            source = f" (from {', '.join(map(str, files))})" if files else ""
            raise ValueError(f"{self.benchmark}/{self.split}{source}: {problem}")

    @cached_property
    def text_to_video(self) -> np.ndarray:
        """int64 index of each text's video in `videos` (length n_texts)."""
        index = {v.id: i for i, v in enumerate(self.videos)}
        return np.fromiter((index[t.video_id] for t in self.texts), dtype=np.int64, count=len(self.texts))

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over the ordered video ids and windows, the ordered texts (id, caption) and the ground truth."""
        payload = {
            "videos": [[v.id, v.start, v.end] for v in self.videos],
            "texts": [[t.id, t.caption, t.video_id] for t in self.texts],
        }
        blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    @property
    def video_ids(self) -> list[str]:
        return [v.id for v in self.videos]

    @property
    def text_ids(self) -> list[str]:
        return [t.id for t in self.texts]

    def with_root(self, video_root: str | Path) -> Split:
        """The same split with video paths re-rooted (paths relative to `video_root`); the fingerprint is unchanged."""
        root = Path(video_root)
        videos = [VideoRecord(v.id, str(root / Path(v.path).name), v.start, v.end) for v in self.videos]
        return Split(self.benchmark, self.split, videos, self.texts, dict(self.meta))

    def to_datasets(self) -> tuple[Any, Any]:
        """(texts, videos) as `datasets.Dataset` tables, in split order."""
        from datasets import Dataset

        texts = Dataset.from_dict(
            {
                "id": self.text_ids,
                "caption": [t.caption for t in self.texts],
                "video_id": [t.video_id for t in self.texts],
                "video_index": self.text_to_video.tolist(),
            }
        )
        videos = Dataset.from_dict(
            {
                "id": self.video_ids,
                "path": [v.path for v in self.videos],
                "start": [v.start for v in self.videos],
                "end": [v.end for v in self.videos],
            }
        )
        return texts, videos

    @classmethod
    def from_datasets(cls, benchmark: str, split: str, texts: Any, videos: Any) -> Split:
        """Inverse of `to_datasets`."""
        video_records = [
            VideoRecord(r["id"], r["path"], r["start"], r["end"]) for r in videos.to_list()
        ]
        text_records = [TextRecord(r["id"], r["caption"], r["video_id"]) for r in texts.to_list()]
        return cls(benchmark, split, video_records, text_records)
