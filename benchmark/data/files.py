"""Finding and reading a benchmark's annotation files and video files under a data root, with errors that say where."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Sub-folders of a data root where downloads commonly keep their annotation files ("" = the root itself).
ANNOTATION_DIRS: tuple[str, ...] = ("", "anns", "annotations", "annotation", "data")
# Extensions of video files found by stem; anything else (`.info`, `.json`, `.part`, ...) never stands for a video.
VIDEO_EXTENSIONS = frozenset({"mp4", "avi", "mkv", "webm", "mov", "m4v", "mpg", "mpeg", "flv", "wmv", "3gp", "ogv",
                              "ts", "mts", "m2ts", "vob", "asf"})  # fmt: skip


class AnnotationError(ValueError):
    """An annotation file exists but its content is not in the expected format."""


def find_annotation(
    root: Path, names: Sequence[str], benchmark: str, extra_dirs: Sequence[str] = (), hint: str = ""
) -> Path:
    """The first of `names` found in `root` or one of its usual annotation sub-folders; else a FileNotFoundError
    that lists every place looked at (and `hint`: what the file is for and where to get it)."""
    tried: list[Path] = []
    for sub in (*ANNOTATION_DIRS, *extra_dirs):
        for name in names:
            path = root / sub / name if sub else root / name
            if path.is_file():
                return path
            tried.append(path)
    looked = "\n  ".join(str(p) for p in tried)
    raise FileNotFoundError(
        f"{benchmark}: annotation file `{names[0]}` not found under `{root}`. Put it in the data root "
        f"(or one of its sub-folders {', '.join(repr(d) for d in ANNOTATION_DIRS if d)}). {hint + ' ' if hint else ''}"
        f"Looked at:\n  {looked}"
    )


def read_json(path: Path) -> Any:
    """Parse a JSON file; a syntax error names the file and the position."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AnnotationError(f"`{path}` is not valid JSON ({err}); re-download the file.") from err


def read_lines(path: Path) -> list[str]:
    """The non-empty lines of a text file, stripped of surrounding whitespace (one id per line)."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def text_field(value: object, path: Path, item: str, name: str, number_ok: bool = False) -> str:
    """Field `name` of annotation `item` as non-empty text (integers too when `number_ok`, for ids); otherwise an
    AnnotationError naming the file and the item, so that a missing field never becomes the text "None"."""
    if number_ok and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    raise AnnotationError(f"`{path}`: {item}: `{name}` must be non-empty text, found {repr(value)[:80]}.")


def expect(condition: bool, path: Path, message: str) -> None:
    """Raise AnnotationError naming `path` when a format check fails."""
    if not condition:
        raise AnnotationError(f"`{path}`: {message}")


def pick_dir(root: Path, video_dir: str | Path | None, candidates: Sequence[str]) -> Path:
    """The video folder: `video_dir` when given (as is), else the first existing candidate under `root`, else the
    first candidate (so a missing folder shows up in `tvbench data check` rather than at load time)."""
    if video_dir is not None:
        return Path(video_dir)
    for sub in candidates:
        if (root / sub).is_dir():
            return root / sub
    return root / candidates[0]


def index_videos(video_dir: Path) -> dict[str, Path]:
    """Map each video file's stem (name minus its last extension) to its path, searching `video_dir` recursively.

    Used where a benchmark's files may carry any video extension (MSVD `.avi`/`.mp4`, LSMDC per-movie folders); other
    files beside them (a `vid.info` sidecar) are ignored, so they never shadow the video. Returns {} when the folder
    does not exist: loading needs only annotations.
    """
    found: dict[str, Path] = {}
    if not video_dir.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(video_dir):
        dirnames.sort()
        for name in sorted(filenames):
            stem, dot, extension = name.rpartition(".")
            if name.startswith(".") or not dot or extension.lower() not in VIDEO_EXTENSIONS:
                continue
            found.setdefault(stem, Path(dirpath) / name)
    return found
