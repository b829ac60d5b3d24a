"""The leaderboard store: one folder per entry (`<root>/entries/<benchmark>/<entry>/run.json + ranks.npz`).

Entries are plain files so a submission can be a pull request. Every write happens under a file lock and through
`benchmark.runs.write_run` (temporary folder + rename), so concurrent submitters never leave a half-written entry;
every read validates each entry with `benchmark.runs.load_run`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from benchmark.runs import RunRecord, RunRecordError, load_run, write_run

ENV_ROOT = "TVBENCH_LEADERBOARD"
PACKAGE_ROOT = Path(__file__).resolve().parent
LOCK_NAME = ".tvbench.lock"
KINDS = ("reported", "reproduced", "submitted")
TRACKS = {"none": "raw", "dsl": "post-processed", "qb-norm": "post-processed"}
LOCK_TIMEOUT_S = 300


class StoreError(RuntimeError):
    """An unreadable or invalid store; the message names the entry and how to fix it."""


def track_of(post_processing: str) -> str:
    """The leaderboard track of a post-processing protocol: `raw` for none, `post-processed` for DSL / QB-Norm."""
    try:
        return TRACKS[post_processing]
    except KeyError:
        raise ValueError(f"Unknown post-processing `{post_processing}`; use one of {', '.join(TRACKS)}.") from None


def resolve_root(root: str | Path | None = None) -> Path:
    """The leaderboard root: `root`, else $TVBENCH_LEADERBOARD, else the package's own `leaderboard/` folder."""
    return Path(root or os.environ.get(ENV_ROOT) or PACKAGE_ROOT)


def slugify(name: str) -> str:
    """The folder name of an entry: lowercase letters, digits, `.`, `_` and `-`."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-.")
    if not slug:
        raise ValueError(f"Entry name {name!r} has no letters or digits; choose a descriptive name.")
    return slug


@dataclass(frozen=True)
class Entry:
    """A validated leaderboard entry: its folder and its run record (leaderboard fields in `extra["leaderboard"]`)."""

    id: str
    path: Path
    record: RunRecord

    @property
    def meta(self) -> dict[str, Any]:
        """Leaderboard fields: name, kind, paper, code, bibtex, group, submitted."""
        return self.record.extra["leaderboard"]

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def track(self) -> str:
        return track_of(self.record.protocol["post_processing"])


def lock(root: str | Path | None = None) -> FileLock:
    """The store's write lock (a file in the root, shared by every process that writes to it)."""
    path = resolve_root(root)
    path.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path / LOCK_NAME), timeout=LOCK_TIMEOUT_S)


def _load_entry(path: Path, benchmark: str) -> Entry:
    try:
        record = load_run(path)
    except RunRecordError as err:
        raise StoreError(f"Leaderboard entry {path} is invalid: {err} Fix or remove the entry folder.") from err
    meta = record.extra.get("leaderboard")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or meta.get("kind") not in KINDS:
        raise StoreError(
            f"Leaderboard entry {path} lacks the `extra.leaderboard` block (name, kind); add it with "
            "`tvbench leaderboard submit`, never by hand."
        )
    if record.benchmark != benchmark:
        raise StoreError(f"Leaderboard entry {path} is a `{record.benchmark}` run filed under `{benchmark}`.")
    return Entry(path.name, path, record)


def load_entries(root: str | Path | None = None, benchmark: str | None = None) -> list[Entry]:
    """Every entry of the store (or of one benchmark), each validated; sorted by benchmark and id."""
    base = resolve_root(root) / "entries"
    if not base.is_dir():
        return []
    benchmarks = [benchmark] if benchmark else sorted(p.name for p in base.iterdir() if _visible_dir(p))
    entries = []
    for bench in benchmarks:
        folder = base / bench
        if folder.is_dir():
            entries += [_load_entry(p, bench) for p in sorted(folder.iterdir()) if _visible_dir(p)]
    return entries


def _visible_dir(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".")  # temporary folders of atomic writes start with "."


def add_entry(
    record: RunRecord, entry_id: str, check: Callable[[list[Entry]], None], root: str | Path | None = None
) -> Path:
    """Write `record` as entry `entry_id` under the lock, after `check(existing entries of its benchmark)` passes."""
    with lock(root):
        check(load_entries(root, record.benchmark))
        target = resolve_root(root) / "entries" / record.benchmark / entry_id
        if target.exists():
            raise StoreError(f"Entry folder {target} already exists; choose another name.")
        return write_run(record, target)
