"""Precomputed video galleries on disk: one .npy per feature plus `gallery.json`, written block by block and read back
memory-mapped, so a gallery larger than memory is encoded once and scored in blocks (`benchmark.engine.scoring`).

Floating features are stored as float32 unless float16 storage is asked for explicitly (half the bytes to read;
`tvbench evaluate --gallery-storage float16` measures and records its rank agreement with float32). Blocks are always
handed to `score` as float32.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.io import atomic_dir, write_json
from benchmark.metrics import QueryRanks, summarize
from benchmark.retrieval_model import Features

GALLERY_FORMAT = "tvbench-gallery"
GALLERY_VERSION = 1
STORAGE = ("float32", "float16")
META_FILE = "gallery.json"
WRITE_BLOCK = 4096  # videos converted and written at a time by `store_features`


class GalleryError(ValueError):
    """A gallery that cannot be written or read; the message says what is wrong and how to fix it."""


def _stored(name: str, value: torch.Tensor, storage: str) -> np.ndarray:
    array = value.detach().cpu().numpy()
    if not value.is_floating_point():
        return array
    if storage == "float16":
        peak, limit = float(np.abs(array).max(initial=0.0)), float(np.finfo(np.float16).max)
        if peak > limit:
            raise GalleryError(
                f"Feature `{name}` holds values up to {peak:.4g}, beyond float16's {limit:.0f}; store this gallery as "
                "float32."
            )
    return array.astype(storage, copy=False)


def write_gallery(
    path: str | Path,
    blocks: Iterable[Features],
    n_videos: int,
    *,
    storage: str = "float32",
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write `n_videos` videos' features, arriving as consecutive blocks, to the gallery folder `path` (replaced
    atomically: a failure leaves no half-written gallery). `meta` (JSON-able) is recorded beside the layout."""
    if storage not in STORAGE:
        raise GalleryError(f"Gallery storage must be one of {', '.join(STORAGE)}, got `{storage}`.")
    path = Path(path)
    with atomic_dir(path) as tmp:
        arrays: dict[str, np.memmap] = {}
        written = 0
        for block in blocks:
            stored = {name: _stored(name, value, storage) for name, value in block.items()}
            count = len(next(iter(stored.values())))
            if written + count > n_videos:
                raise GalleryError(f"More than the announced {n_videos} videos were written to the gallery.")
            if not arrays:
                arrays = {
                    name: np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", a.dtype, (n_videos, *a.shape[1:]))
                    for name, a in stored.items()
                }
            if set(stored) != set(arrays) or any(arrays[n].shape[1:] != a.shape[1:] for n, a in stored.items()):
                raise GalleryError("Gallery blocks disagree on the feature names or their per-video shapes.")
            for name, array in stored.items():
                arrays[name][written : written + count] = array
            written += count
        if written != n_videos:
            raise GalleryError(f"The gallery announced {n_videos} videos but {written} were written.")
        layout = {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in arrays.items()}
        for array in arrays.values():
            array.flush()
        del arrays
        doc = {"format": GALLERY_FORMAT, "version": GALLERY_VERSION, "n_videos": n_videos, "storage": storage,
               "features": layout, "meta": meta or {}}  # fmt: skip
        (tmp / META_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


@dataclass
class MappedGallery:
    """A gallery folder opened memory-mapped: a block reads only its own rows (float16 storage upcast per block)."""

    path: Path
    arrays: dict[str, np.ndarray]
    storage: str
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    @property
    def nbytes(self) -> int:
        """Bytes stored (and read by one pass over the gallery)."""
        return sum(array.nbytes for array in self.arrays.values())

    def block(self, start: int, stop: int) -> Features:
        out = {}
        for name, array in self.arrays.items():
            value = torch.from_numpy(array[start:stop])
            out[name] = value.float() if value.is_floating_point() else value
        return out


def open_gallery(path: str | Path) -> MappedGallery:
    """Open a gallery folder written by `write_gallery` (copy-on-write maps: nothing is ever written back)."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise GalleryError(f"{path} is not a gallery folder (no {META_FILE}); write one with `tvbench evaluate "
                           "--save-gallery DIR`.")  # fmt: skip
    doc = json.loads(meta_path.read_text(encoding="utf-8"))
    if doc.get("format") != GALLERY_FORMAT or doc.get("version") != GALLERY_VERSION:
        raise GalleryError(f"{meta_path} is not a version-{GALLERY_VERSION} {GALLERY_FORMAT} file.")
    arrays = {}
    for name, layout in doc["features"].items():
        array = np.load(path / f"{name}.npy", mmap_mode="c", allow_pickle=False)
        if str(array.dtype) != layout["dtype"] or list(array.shape) != layout["shape"]:
            raise GalleryError(f"{path / (name + '.npy')} does not match {META_FILE} (dtype or shape changed).")
        arrays[name] = array
    return MappedGallery(path, arrays, doc["storage"], doc.get("meta", {}))


def store_features(path: str | Path, videos: Features, *, storage: str = "float32", meta: dict | None = None) -> Path:
    """Write in-memory video features (e.g. a split encoded by `tvbench evaluate`) as a gallery folder."""
    n_videos = len(next(iter(videos.values())))
    blocks = ({k: v[i : i + WRITE_BLOCK] for k, v in videos.items()} for i in range(0, n_videos, WRITE_BLOCK))
    return write_gallery(path, blocks, n_videos, storage=storage, meta=meta)


def record_in_gallery(path: str | Path, key: str, value: Any) -> None:
    """Add `key: value` to a gallery's recorded `meta` (rewritten atomically)."""
    meta_path = Path(path) / META_FILE
    doc = json.loads(meta_path.read_text(encoding="utf-8"))
    doc["meta"][key] = value
    write_json(meta_path, doc)


def rank_agreement(reference: QueryRanks, other: QueryRanks, ties: str = "random") -> dict[str, Any]:
    """How far the text-to-video ranks of `other` (e.g. float16 storage) move from `reference` (float32): the share of
    queries with the same rank, the largest and mean rank shift (expected ranks under random tie-breaking) and each
    metric's change under the run's tie policy."""
    ref_rank, rank = reference.rank("random"), other.rank("random")
    shift = np.abs(rank - ref_rank)
    before, after = summarize(reference, ties), summarize(other, ties)
    return {
        "queries": len(reference),
        "same_rank": float(np.mean(shift == 0)),
        "max_rank_shift": float(shift.max(initial=0.0)),
        "mean_rank_shift": float(shift.mean()) if len(shift) else 0.0,
        "metrics_delta": {name: after[name] - before[name] for name in before},
        "ties": ties,
    }
