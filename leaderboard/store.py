"""The leaderboard store: one folder per entry (`<root>/entries/<benchmark>/<entry>/run.json + ranks.npz`).

Entries are plain files so a submission can be a pull request. Every write happens under a file lock and through
`benchmark.runs.write_run` (temporary folder + rename), so concurrent submitters never leave a half-written entry,
and the temporaries of a killed writer are removed by the next one. Every read validates each entry
(`benchmark.runs.load_run` and `leaderboard.schema.check_entry`); an invalid entry is skipped and reported.

Removing an entry (or superseding it by a new one) moves its folder, under the lock, into
`<root>/removed/<benchmark>/<id>--<UTC time>/entry/` beside a `removal.json` (date, id, reason, who, its metrics):
a hidden staging folder receives the record first, then the entry (one rename: the moment it leaves the boards),
then takes its final name; an interrupted removal is completed by the next writer.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from benchmark.io import remove_stale_temporaries, write_json
from benchmark.paths import data_dir
from benchmark.runs import RunRecord, RunRecordError, load_run, write_run
from leaderboard.names import check_path_name
from leaderboard.schema import SchemaError, check_entry

ENV_ROOT = "TVBENCH_LEADERBOARD"
LOCK_NAME = ".tvbench.lock"
TRACKS = {"none": "raw", "dsl": "post-processed", "qb-norm": "post-processed"}
LOCK_TIMEOUT_S = 300
REMOVED = "removed"
REMOVAL_RECORD = "removal.json"
REMOVAL_SCHEMA = "tvbench.removal"
STAGING_SUFFIX = ".staging"
MAX_SLUG_BYTES = 200  # file names are limited to 255 bytes, and temporaries add a prefix and a suffix


class StoreError(RuntimeError):
    """An unreadable or invalid store; the message names the entry and how to fix it."""


def track_of(post_processing: str) -> str:
    """The leaderboard track of a post-processing protocol: `raw` for none, `post-processed` for DSL / QB-Norm."""
    try:
        return TRACKS[post_processing]
    except KeyError:
        raise ValueError(f"Unknown post-processing `{post_processing}`; use one of {', '.join(TRACKS)}.") from None


def resolve_root(root: str | Path | None = None) -> Path:
    """The leaderboard root: `root`, else $TVBENCH_LEADERBOARD, else `leaderboard/` in tvbench's user data folder
    (never inside the installed package). A root that exists but is not a folder is refused."""
    path = Path(root or os.environ.get(ENV_ROOT) or data_dir() / "leaderboard")
    if path.exists() and not path.is_dir():
        raise StoreError(f"The leaderboard root {path} is a file; pass --root (or ${ENV_ROOT}) a folder.")
    return path


def slugify(name: str) -> str:
    """The folder name of an entry: the name casefolded, each run of characters other than letters (any script),
    digits, `.`, `_` and `-` replaced by one `-`."""
    slug = re.sub(r"[^\w.-]+", "-", unicodedata.normalize("NFKC", name).strip().casefold()).strip("-.")
    if not slug:
        raise ValueError(f"Entry name {name!r} has no letters or digits; choose a descriptive name.")
    if len(slug.encode()) > MAX_SLUG_BYTES:
        raise ValueError(f"Entry name {name!r} is too long for a folder name; shorten it.")
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


@contextmanager
def lock(root: str | Path | None = None) -> Iterator[None]:
    """Hold the store's write lock (a file in the root, shared by every process that writes to it)."""
    path = resolve_root(root)
    path.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path / LOCK_NAME), timeout=LOCK_TIMEOUT_S):
            yield
    except Timeout as err:
        raise StoreError(
            f"Another process has held the leaderboard lock {path / LOCK_NAME} for over {LOCK_TIMEOUT_S} s; wait for "
            "it to finish and retry (a lock left by a killed process is released by the system)."
        ) from err


def _load_entry(path: Path, benchmark: str) -> Entry:
    try:
        record = load_run(path)
        check_entry(record)
    except (RunRecordError, SchemaError) as err:
        raise StoreError(f"Leaderboard entry {path} is invalid: {err} Fix or remove the entry folder.") from err
    if record.benchmark != benchmark:
        raise StoreError(f"Leaderboard entry {path} is a `{record.benchmark}` run filed under `{benchmark}`.")
    return Entry(path.name, path, record)


def scan_entries(root: str | Path | None = None, benchmark: str | None = None) -> tuple[list[Entry], list[str]]:
    """Every valid entry of the store (or of one benchmark), sorted by benchmark and id, and one message per
    invalid entry, which is skipped so that one bad entry never breaks a board."""
    base = resolve_root(root) / "entries"
    if benchmark is not None:
        check_path_name(benchmark)
    if not base.is_dir():
        return [], []
    benchmarks = [benchmark] if benchmark else sorted(p.name for p in base.iterdir() if _visible_dir(p))
    entries, skipped = [], []
    for bench in benchmarks:
        folder = base / bench
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            if _visible_dir(path):
                try:
                    entries.append(_load_entry(path, bench))
                except StoreError as err:
                    skipped.append(str(err))
    return entries, skipped


def load_entries(root: str | Path | None = None, benchmark: str | None = None) -> list[Entry]:
    """Every valid entry of the store (or of one benchmark); invalid ones are left out (see `scan_entries`)."""
    return scan_entries(root, benchmark)[0]


def entry_benchmarks(entry_id: str, root: str | Path | None = None) -> list[str]:
    """Benchmarks that hold an entry folder named `entry_id`, valid or not."""
    base = resolve_root(root) / "entries"
    folders = base.iterdir() if base.is_dir() else ()
    return sorted(p.name for p in folders if _visible_dir(p) and (p / entry_id).is_dir())


def _visible_dir(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".")  # temporary folders of atomic writes start with "."


@dataclass(frozen=True)
class Removal:
    """Why an entry leaves the store, and who removes it (recorded in its removal.json)."""

    entry_id: str
    reason: str | None
    removed_by: str
    superseded_by: str | None = None  # name of the entry that replaces it


def add_entry(
    benchmark: str, entry_id: str, admit: Callable[[list[Entry]], RunRecord], root: str | Path | None = None,
    supersedes: Removal | None = None,
) -> Path:
    """Write the record that `admit(existing entries of benchmark)` returns as entry `entry_id`, under the lock,
    removing the entry that it `supersedes` in the same locked step (restored if the write fails).

    `admit` runs once before the lock is taken, so that a refusal leaves the store untouched (no lock file, no
    folder), and again under the lock, where it is authoritative; then stale temporaries of killed writers go.
    """
    if slugify(entry_id) != entry_id:
        raise StoreError(f"Entry id {entry_id!r} is not a folder name made by `slugify`.")
    folder = resolve_root(root) / "entries" / check_path_name(benchmark)
    admit(load_entries(root, benchmark))
    with lock(root):
        _complete_removals(root)
        record = admit(load_entries(root, benchmark))
        if record.benchmark != benchmark:
            raise StoreError(f"A `{record.benchmark}` run cannot be filed under `{benchmark}`.")
        staged = None if supersedes is None else _stage_removal(root, benchmark, supersedes)
        try:
            if (folder / entry_id).exists():
                raise StoreError(f"Entry folder {folder / entry_id} already exists; choose another name.")
            remove_stale_temporaries(folder, locked=True)
            path = write_run(record, folder / entry_id)
        except BaseException:
            if staged is not None:
                os.replace(staged / "entry", folder / supersedes.entry_id)
                shutil.rmtree(staged)
            raise
        if staged is not None:
            _finish_removal(staged)
        return path


def remove_entry(benchmark: str, removal: Removal, root: str | Path | None = None) -> Path:
    """Remove entry `removal.entry_id` of `benchmark` atomically, under the lock, keeping its files and a
    `removal.json` under `<root>/removed/<benchmark>/`; returns that folder. Invalid entries can be removed too."""
    _entry_path(root, benchmark, removal.entry_id)  # a refusal leaves the store untouched (not even a lock file)
    with lock(root):
        _complete_removals(root)
        return _finish_removal(_stage_removal(root, benchmark, removal))


def _removal_record(path: Path, benchmark: str, removal: Removal) -> dict[str, Any]:
    """What `removal.json` keeps: date, id, reason, who, and the entry's name, kind, submitter and metrics (read
    leniently from run.json when the entry is invalid, with the reason it is)."""
    doc: dict[str, Any] = {
        "schema": REMOVAL_SCHEMA, "benchmark": benchmark, "id": removal.entry_id,
        "removed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "reason": removal.reason,
        "removed_by": removal.removed_by, "superseded_by": removal.superseded_by,
    }
    try:
        entry = _load_entry(path, benchmark)
    except StoreError as err:
        doc["invalid"] = str(err)
        try:
            raw = json.loads((path / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = {}
        raw = raw if isinstance(raw, dict) else {}
        block = (raw.get("extra") or {}).get("leaderboard") if isinstance(raw.get("extra"), dict) else None
        block = block if isinstance(block, dict) else {}
        doc.update(name=block.get("name"), kind=block.get("kind"), submitter=block.get("submitter"),
                   metrics=raw.get("metrics"), fingerprint=raw.get("fingerprint"))
        return doc
    doc.update(name=entry.name, kind=entry.meta["kind"], submitter=entry.meta.get("submitter"),
               group=entry.meta.get("group"), metrics=entry.record.metrics, fingerprint=entry.record.fingerprint)
    return doc


def _entry_path(root: str | Path | None, benchmark: str, entry_id: str) -> Path:
    """The folder of entry `entry_id` (valid or not) of `benchmark`; refuses ids that are not one visible folder."""
    path = resolve_root(root) / "entries" / check_path_name(benchmark) / entry_id
    if Path(entry_id).name != entry_id or entry_id.startswith(".") or not path.is_dir():
        folder = path.parent
        known = ", ".join(sorted(p.name for p in folder.iterdir() if _visible_dir(p))) if folder.is_dir() else ""
        raise StoreError(f"No entry `{entry_id}` on {benchmark} (entries: {known or 'none'}).")
    return path


def _stage_removal(root: str | Path | None, benchmark: str, removal: Removal) -> Path:
    """Move the entry into a hidden staging folder that already holds its removal.json; returns the staging folder.
    Call under the lock."""
    path = _entry_path(root, benchmark, removal.entry_id)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    staging = resolve_root(root) / REMOVED / benchmark / f".{removal.entry_id}--{stamp}{STAGING_SUFFIX}"
    staging.mkdir(parents=True)
    write_json(staging / REMOVAL_RECORD, _removal_record(path, benchmark, removal))
    os.replace(path, staging / "entry")
    return staging


def _finish_removal(staging: Path) -> Path:
    """Give a staging folder that holds the removed entry its final name."""
    final = staging.with_name(staging.name[1:-len(STAGING_SUFFIX)])
    os.replace(staging, final)
    return final


def _complete_removals(root: str | Path | None = None) -> None:
    """Finish removals that a killed process left staged (the entry already moved) and drop staging folders that
    never received their entry. Call under the lock."""
    base = resolve_root(root) / REMOVED
    for folder in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else ():
        for staging in sorted(folder.glob(f".*{STAGING_SUFFIX}")):
            if (staging / "entry").is_dir():
                _finish_removal(staging)
            else:
                shutil.rmtree(staging)
