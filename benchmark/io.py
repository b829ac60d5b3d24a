"""Atomic file output: write to a temporary sibling, then rename, so a crash never leaves a half-written file.

Temporary siblings are named `.<name>.<host>-<pid>.<random>.tmp` (`.old` for a replaced folder), so a later write of
the same path can tell the leftovers of a killed process (same host, pid no longer alive) from a live writer's and
remove only those. Outputs get the modes the umask gives ordinary files and folders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# Temporaries are hidden siblings of their target: `.<name>.<host>-<pid>.<random>.tmp` (being written) and `...old`
# (a replaced folder being removed); a process killed mid-write leaves them behind.
TMP_SUFFIX, OLD_SUFFIX = ".tmp", ".old"


def current_umask() -> int:
    """The process umask, read from /proc where possible (setting it to read it back races other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def _temp_prefix(path: Path) -> str:
    """`.<name>.<host>-<pid>.`: the start of this process's temporary siblings of `path`."""
    return f".{path.name}.{_host()}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _in_use(name: str) -> bool:
    """Whether the temporary `name` may belong to a live writer: unless it names a process of this host that is gone."""
    match = re.fullmatch(r"\..+\.(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)\.[^.]+\.(tmp|old)", name)
    return match is None or match["host"] != _host() or _pid_alive(int(match["pid"]))


def remove_stale_temporaries(folder: str | Path, target: str | None = None, *, locked: bool = False) -> list[Path]:
    """Remove the temporaries `atomic_path` / `atomic_dir` left in `folder` (only those of the entry named `target`
    when given) because their process was killed: those naming a process of this host that is gone, or every one
    when `locked` (the caller holds the lock every writer of `folder` takes, so none is in use). Returns them."""
    folder = Path(folder)
    start = f".{target}." if target is not None else "."
    stale = [p for p in (folder.iterdir() if folder.is_dir() else ())
             if p.name.startswith(start) and p.name.endswith((TMP_SUFFIX, OLD_SUFFIX))
             and (locked or not _in_use(p.name))]  # fmt: skip
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp creates owner-only files
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
    """Yield a temporary directory next to `path`; on success it becomes `path` (replacing an old one). Leftovers of
    killed earlier writes of `path` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=TMP_SUFFIX, dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates owner-only folders
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=OLD_SUFFIX, dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

