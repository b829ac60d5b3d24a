"""Atomic file output: write to a temporary sibling, then rename, so a crash never leaves a half-written file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# Temporaries are hidden siblings of their target: `.<name>.<random>.tmp` (being written) and `.<name>.<random>.old`
# (a replaced folder being removed); a process killed mid-write leaves them behind.
TMP_SUFFIX, OLD_SUFFIX = ".tmp", ".old"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates owner-only files; outputs are meant to be shared
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write `text` (UTF-8) to `path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write `data` to `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write `obj` as indented JSON."""
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Atomically write one array as .npy (no pickles)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
    return Path(path)


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Atomically write named arrays as a compressed .npz (no pickles)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})
    return Path(path)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; on success it becomes `path` (replacing an old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=OLD_SUFFIX, dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries that `atomic_path` / `atomic_dir` left in `folder` when their process was killed.

    Call it only while holding the lock that every writer of `folder` takes: then no temporary there is in use.
    """
    folder = Path(folder)
    stale = [p for p in (folder.iterdir() if folder.is_dir() else ())
             if p.name.startswith(".") and p.name.endswith((TMP_SUFFIX, OLD_SUFFIX))]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return stale
