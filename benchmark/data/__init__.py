"""Benchmark loaders: `load_split(name, root, split, **options) -> Split`, one module per benchmark.

Layer: data (annotation files, videos, text, SynthVTT). May import the evaluation core (`benchmark.io`,
`benchmark.registry`, ...) and nothing above it: never `benchmark.engine`, `benchmark.study`, the methods or
`leaderboard`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.data.split import Split, TextRecord, VideoRecord
from benchmark.registry import Registry

__all__ = ["Split", "TextRecord", "VideoRecord", "LoaderSpec", "register_loader", "load_split", "list_benchmarks"]

# Modules whose import registers a loader.
LOADER_MODULES = ("msrvtt", "msvd", "didemo", "lsmdc", "activitynet", "synthvtt")


@dataclass(frozen=True)
class LoaderSpec:
    """A registered benchmark: its loader function, its split names and the split used for reporting."""

    name: str
    load: Callable[..., Split]
    splits: tuple[str, ...]
    test_split: str


LOADERS: Registry[LoaderSpec] = Registry("benchmark")


def register_loader(name: str, *, splits: tuple[str, ...], test_split: str) -> Callable[[Callable], Callable]:
    """Decorator: register `fn(root: Path, split: str, **options) -> Split` as the loader of benchmark `name`."""

    def decorate(fn: Callable[..., Split]) -> Callable[..., Split]:
        LOADERS.add(name, LoaderSpec(name, fn, splits, test_split))
        return fn

    return decorate


def _load_modules() -> None:
    for module in LOADER_MODULES:
        importlib.import_module(f"benchmark.data.{module}")


def loader_spec(name: str) -> LoaderSpec:
    """The registry entry of benchmark `name`."""
    _load_modules()
    return LOADERS.get(name)


def list_benchmarks() -> list[str]:
    """Names of every registered benchmark."""
    _load_modules()
    return LOADERS.names()


def load_split(name: str, root: str | Path, split: str | None = None, **options: Any) -> Split:
    """Load `split` (default: the benchmark's test split) of benchmark `name` from annotation files under `root`.
    An empty split (no text or no video) is an error: it would let checks and evaluations pass on nothing."""
    spec = loader_spec(name)
    split = split or spec.test_split
    if split not in spec.splits:
        raise ValueError(f"Benchmark `{name}` has no split `{split}`. Splits: {', '.join(spec.splits)}.")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Data root `{root}` of benchmark `{name}` does not exist or is not a directory.")
    loaded = spec.load(root, split, **options)
    if not loaded.texts or not loaded.videos:
        files = ", ".join(f"`{f}`" for f in loaded.meta.get("annotations", [])) or "its annotation files"
        raise ValueError(
            f"{name}/{split} under `{root}` is empty ({len(loaded.texts)} texts, {len(loaded.videos)} videos): "
            f"{files} hold no item of this split. Check that they are the complete files of this benchmark."
        )
    return loaded
