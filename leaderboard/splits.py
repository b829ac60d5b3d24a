"""Canonical test-split manifests: each benchmark's ordered text and video ids, ground truth and fingerprint.

The leaderboard checks a submission against a manifest, so it needs no videos and no caption files. Shipped
manifests live in `leaderboard/splits/<benchmark>.json`; a local leaderboard root may register its own (SynthVTT)
under `<root>/splits/` (`tvbench leaderboard add-split`). Regenerate the shipped ones with
`python -m leaderboard.splits --data DIR`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import load_split
from benchmark.data.split import Split
from benchmark.io import write_json
from leaderboard.names import InvalidNameError, check_path_name

PACKAGE_SPLITS = Path(__file__).resolve().parent / "splits"
MANIFEST_SCHEMA = "tvbench.split-manifest"
# Benchmarks whose test annotations ship with the project data (LSMDC's csv files are distributed by MPII on request).
SHIPPED = ("msrvtt", "msvd", "didemo", "activitynet")


class ManifestError(ValueError):
    """A missing or malformed split manifest; the message says which file and how to fix it."""


@dataclass(frozen=True)
class SplitManifest:
    """A test split without captions or videos: ordered ids, ground truth (`text_to_video`) and fingerprint."""

    benchmark: str
    split: str
    text_ids: tuple[str, ...]
    video_ids: tuple[str, ...]
    text_to_video: np.ndarray
    fingerprint: str

    @property
    def texts(self) -> tuple[str, ...]:
        """Text ids (the length is what `benchmark.runs.make_record` reads from a split)."""
        return self.text_ids

    @property
    def videos(self) -> tuple[str, ...]:
        """Video ids (the length is what `benchmark.runs.make_record` reads from a split)."""
        return self.video_ids


def build_manifest(split: Split) -> dict[str, Any]:
    """The JSON manifest of a loaded split (ids in split order, ground truth, fingerprint)."""
    return {
        "schema": MANIFEST_SCHEMA,
        "benchmark": split.benchmark,
        "split": split.split,
        "n_texts": len(split.texts),
        "n_videos": len(split.videos),
        "fingerprint": split.fingerprint,
        "text_ids": split.text_ids,
        "video_ids": split.video_ids,
        "text_to_video": split.text_to_video.tolist(),
    }


def parse_manifest(doc: Any, where: str) -> SplitManifest:
    """Validate a manifest document and return it as a `SplitManifest`."""

    def fail(message: str) -> ManifestError:
        return ManifestError(f"{where}: {message} Regenerate it with `python -m leaderboard.splits`.")

    if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA:
        raise fail(f"not a split manifest (expected \"schema\": \"{MANIFEST_SCHEMA}\").")
    for key in ("benchmark", "split", "fingerprint", "text_ids", "video_ids", "text_to_video"):
        if key not in doc:
            raise fail(f"missing field `{key}`.")
    try:
        check_path_name(doc["benchmark"])
    except InvalidNameError as err:
        raise fail(str(err)) from err
    if not isinstance(doc["split"], str) or not isinstance(doc["fingerprint"], str):
        raise fail("`split` and `fingerprint` must be strings.")
    for key in ("text_ids", "video_ids"):
        if not isinstance(doc[key], list) or not all(isinstance(i, str) for i in doc[key]):
            raise fail(f"`{key}` must be a list of strings.")
    try:
        texts, videos, t2v = doc["text_ids"], doc["video_ids"], np.asarray(doc["text_to_video"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as err:
        raise fail("`text_to_video` must be a list of video indices.") from err
    if t2v.ndim != 1:
        raise fail("`text_to_video` must be a flat list of video indices.")
    if len(texts) != len(t2v) or len(set(videos)) != len(videos):
        raise fail("text_to_video must have one entry per text id and video ids must be unique.")
    if len(t2v) and (t2v.min() < 0 or t2v.max() >= len(videos)):
        raise fail("text_to_video holds an index outside the video list.")
    return SplitManifest(doc["benchmark"], doc["split"], tuple(texts), tuple(videos), t2v, doc["fingerprint"])


def manifest_path(root: str | Path, benchmark: str) -> Path:
    """Where a leaderboard root keeps the manifest of `benchmark` (a name that cannot leave the folder)."""
    return Path(root) / "splits" / f"{check_path_name(benchmark)}.json"


def register_split_manifest(root: str | Path, split: Split) -> Path:
    """Write `split`'s manifest into the leaderboard `root` (atomically), so entries on it can be submitted there."""
    return write_json(manifest_path(root, split.benchmark), build_manifest(split))


def add_split(root: str | Path, split: Split, replace: bool = False) -> tuple[Path, bool]:
    """Register `split` in the leaderboard `root` unless the manifest in force (the root's or the shipped one) is
    already this version; a different version is replaced only with `replace`. Returns (manifest path, written)."""
    current = None
    if split.benchmark in known_benchmarks(root):
        try:
            current = load_manifest(split.benchmark, root)
        except ManifestError as err:  # a malformed manifest: overwrite it only when asked to
            if not replace:
                raise ManifestError(f"{err} Or pass --replace to overwrite it with this split.") from err
    if current is not None and current.fingerprint == split.fingerprint:
        return manifest_path(root, split.benchmark), False
    if current is not None and not replace:
        raise ManifestError(
            f"Benchmark `{split.benchmark}` already has a split manifest ({current.split}, fingerprint "
            f"{current.fingerprint[:12]}...) and `{split.split}` here is another version "
            f"({split.fingerprint[:12]}...). "
            "Entries evaluated on the registered version would no longer match it; pass --replace to register "
            "this one anyway."
        )
    return register_split_manifest(root, split), True


def split_order(manifest: SplitManifest) -> dict[str, Any]:
    """A manifest's canonical order as a JSON document: rows of a score matrix are `text_ids`, columns `video_ids`."""
    return {
        "benchmark": manifest.benchmark, "split": manifest.split, "fingerprint": manifest.fingerprint,
        "n_texts": len(manifest.text_ids), "n_videos": len(manifest.video_ids),
        "text_ids": list(manifest.text_ids), "video_ids": list(manifest.video_ids),
    }


def load_manifest(benchmark: str, root: str | Path | None = None) -> SplitManifest:
    """The manifest of `benchmark`: `<root>/splits/` first, then the ones shipped with the package."""
    candidates = [manifest_path(root, benchmark)] if root is not None else []
    candidates.append(manifest_path(PACKAGE_SPLITS.parent, benchmark))
    for path in candidates:
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ManifestError(f"{path}: not valid JSON ({err}). Regenerate it.") from err
            manifest = parse_manifest(doc, str(path))
            if manifest.benchmark != benchmark:
                raise ManifestError(f"{path}: the manifest is for benchmark `{manifest.benchmark}`, not `{benchmark}`.")
            return manifest
    known = ", ".join(known_benchmarks(root)) or "none"
    raise ManifestError(
        f"No test-split manifest for benchmark `{benchmark}` (looked in {', '.join(map(str, candidates))}). "
        f"Known benchmarks: {known}. Register one with `tvbench leaderboard add-split {benchmark} --root DATA_DIR`."
    )


def known_benchmarks(root: str | Path | None = None) -> list[str]:
    """Benchmarks with a manifest in `root` or in the package."""
    folders = [PACKAGE_SPLITS] + ([Path(root) / "splits"] if root is not None else [])
    return sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.json")})


def regenerate(data_root: str | Path, benchmarks: Sequence[str] = SHIPPED, out: Path = PACKAGE_SPLITS) -> list[Path]:
    """Rebuild the shipped manifests from the annotation files under `data_root/<benchmark>/` (test splits)."""
    written = []
    for name in benchmarks:
        split = load_split(name, Path(data_root) / name)
        written.append(write_json(out / f"{name}.json", build_manifest(split)))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m leaderboard.splits --data DIR [--benchmark B ...]`: regenerate the shipped manifests."""
    parser = argparse.ArgumentParser(prog="python -m leaderboard.splits", description=regenerate.__doc__)
    parser.add_argument("--data", required=True, help="folder with one annotation folder per benchmark")
    parser.add_argument("--benchmark", action="append", help=f"benchmark(s) to rebuild (default: {', '.join(SHIPPED)})")
    parser.add_argument("--out", type=Path, default=PACKAGE_SPLITS, help="output folder (default: the package's)")
    args = parser.parse_args(argv)
    for path in regenerate(args.data, args.benchmark or SHIPPED, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
