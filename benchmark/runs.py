"""Run records: the versioned, self-checking result of one evaluation (``run.json`` + ``ranks.npz`` [+ ``sim.npy``]).

Loading a record validates its schema and recomputes its metrics from its per-query rank counts, so a record whose
numbers were edited, or whose ranks were swapped, fails to load.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import math
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.io import atomic_dir, write_json, write_npy, write_npz
from benchmark.metrics import METRICS, TIE_POLICIES, V2T_PROTOCOLS, QueryRanks, summarize

SCHEMA = "tvbench.run"
SCHEMA_VERSION = 1
POST_PROCESSING = ("none", "dsl", "qb-norm")
DIRECTIONS = ("t2v", "v2t")
RANK_FIELDS = ("greater", "tied_other", "tied_relevant")
PACKAGES = ("tvbench", "torch", "torchvision", "open_clip_torch", "numpy", "scipy", "decord", "av", "datasets")
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema": str, "schema_version": int, "method": str, "config": dict, "benchmark": str, "split": str,
    "fingerprint": str, "n_texts": int, "n_videos": int, "protocol": dict, "metrics": dict, "provenance": dict,
    "ranks_sha256": str,
}


class RunRecordError(ValueError):
    """A run record that is malformed, inconsistent or tampered with; the message names the problem and the file."""


@dataclass
class RunRecord:
    """One evaluation of one method on one benchmark split, with everything needed to trace and re-check it."""

    method: str
    config: dict[str, Any]
    benchmark: str
    split: str
    fingerprint: str
    n_texts: int
    n_videos: int
    protocol: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    ranks: dict[str, QueryRanks]
    provenance: dict[str, Any]
    seed: int | None = None
    efficiency: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, ranks_sha256: str) -> dict[str, Any]:
        """The run.json document (ranks live in ranks.npz, referenced by their sha256)."""
        return {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "method": self.method, "config": self.config,
            "benchmark": self.benchmark, "split": self.split, "fingerprint": self.fingerprint,
            "n_texts": self.n_texts, "n_videos": self.n_videos, "protocol": self.protocol, "metrics": self.metrics,
            "efficiency": self.efficiency, "seed": self.seed, "provenance": self.provenance, "extra": self.extra,
            "ranks_sha256": ranks_sha256,
        }


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"


def provenance(command: str | None = None) -> dict[str, Any]:
    """Where a number came from: git commit, package versions, Python, platform, device, UTC date and command."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "git_commit": _git_commit(),
        "packages": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": _device(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": command if command is not None else " ".join(sys.argv),
    }


def make_record(
    *,
    method: str,
    config: dict[str, Any],
    split: Any,
    result: dict[str, Any],
    seed: int | None = None,
    protocol_extra: dict[str, Any] | None = None,
    efficiency: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    command: str | None = None,
) -> RunRecord:
    """A record from a `Split` and the output of `metrics.evaluate_scores` on its score matrix."""
    if (result["n_texts"], result["n_videos"]) != (len(split.texts), len(split.videos)):
        raise RunRecordError(
            f"The scores are {result['n_texts']} x {result['n_videos']} but split {split.benchmark}/{split.split} has "
            f"{len(split.texts)} texts and {len(split.videos)} videos."
        )
    protocol = {**result["protocol"], "post_processing": "none", "select_on_test": False, **(protocol_extra or {})}
    return RunRecord(
        method=method, config=config, benchmark=split.benchmark, split=split.split, fingerprint=split.fingerprint,
        n_texts=len(split.texts), n_videos=len(split.videos), protocol=protocol,
        metrics={d: result[d] for d in DIRECTIONS}, ranks=dict(result["ranks"]), provenance=provenance(command),
        seed=seed, efficiency=efficiency, extra=dict(extra or {}),
    )


def _rank_arrays(ranks: dict[str, QueryRanks]) -> dict[str, np.ndarray]:
    arrays = {f"{d}_{f}": getattr(ranks[d], f) for d in DIRECTIONS for f in RANK_FIELDS}
    arrays.update({f"{d}_tied_before": ranks[d].tied_before for d in DIRECTIONS if ranks[d].tied_before is not None})
    return arrays


def write_run(record: RunRecord, out_dir: str | Path, scores: np.ndarray | None = None) -> Path:
    """Write `record` (and optionally its score matrix) into `out_dir` atomically; returns the directory."""
    validate(record.to_json("0" * 64), record.ranks, where=str(out_dir))
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        ranks_path = write_npz(tmp / "ranks.npz", **_rank_arrays(record.ranks))
        digest = hashlib.sha256(ranks_path.read_bytes()).hexdigest()
        if scores is not None:
            write_npy(tmp / "sim.npy", np.asarray(scores))
        write_json(tmp / "run.json", record.to_json(digest))
    return out_dir


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def validate(doc: dict[str, Any], ranks: dict[str, QueryRanks], where: str) -> None:
    """Check a run.json document against the schema and its metrics against the per-query counts."""

    def fail(message: str) -> None:
        raise RunRecordError(f"{where}: {message}")

    for key, kind in REQUIRED.items():
        if key not in doc:
            fail(f"missing required field `{key}`.")
        if not isinstance(doc[key], kind) or (kind is int and isinstance(doc[key], bool)):
            fail(f"field `{key}` must be {getattr(kind, '__name__', kind)}, got {type(doc[key]).__name__}.")
    if doc["schema"] != SCHEMA or doc["schema_version"] != SCHEMA_VERSION:
        fail(f"schema {doc['schema']!r} v{doc['schema_version']} is not {SCHEMA} v{SCHEMA_VERSION}.")
    if not re.fullmatch(r"[0-9a-f]{64}", doc["fingerprint"]):
        fail("`fingerprint` must be the split's sha256 (64 lowercase hex digits).")
    protocol = doc["protocol"]
    for key, allowed in (("ties", TIE_POLICIES), ("v2t", V2T_PROTOCOLS), ("post_processing", POST_PROCESSING)):
        if protocol.get(key) not in allowed:
            fail(f"protocol `{key}` is {protocol.get(key)!r}; allowed: {', '.join(allowed)}.")
    if not isinstance(protocol.get("select_on_test"), bool):
        fail("protocol `select_on_test` must be true or false.")
    expected = {"t2v": doc["n_texts"], "v2t": doc["n_videos"]}
    candidates = {"t2v": doc["n_videos"],
                  "v2t": doc["n_videos"] if protocol["v2t"] == "max-over-captions" else doc["n_texts"]}
    for direction in DIRECTIONS:
        if direction not in ranks or len(ranks[direction]) != expected[direction]:
            found = len(ranks[direction]) if direction in ranks else "no"
            fail(f"{direction} ranks hold {found} queries; expected {expected[direction]}.")
        q = ranks[direction]
        if ((q.greater + q.tied_other + q.tied_relevant) > candidates[direction]).any():
            fail(f"{direction} rank counts exceed the {candidates[direction]} candidates of a query.")
        single = direction == "t2v" or protocol["v2t"] == "max-over-captions"
        if single and (q.tied_relevant != 1).any():
            fail(f"{direction} queries have one relevant item, but `tied_relevant` is not 1 everywhere.")
        claimed = doc["metrics"].get(direction)
        if not isinstance(claimed, dict) or set(claimed) != set(METRICS):
            fail(f"metrics.{direction} must have exactly {', '.join(METRICS)}.")
        recomputed = summarize(ranks[direction], protocol["ties"])
        for name, value in recomputed.items():
            if not isinstance(claimed[name], int | float) or not _close(float(claimed[name]), value):
                fail(f"metrics.{direction}.{name} = {claimed[name]} but the ranks give {value}.")


def load_run(path: str | Path) -> RunRecord:
    """Read and validate a run directory (or its run.json)."""
    path = Path(path)
    run_dir = path.parent if path.name == "run.json" else path
    json_path, ranks_path = run_dir / "run.json", run_dir / "ranks.npz"
    for needed in (json_path, ranks_path):
        if not needed.is_file():
            raise RunRecordError(f"{run_dir}: `{needed.name}` is missing; a run record is run.json + ranks.npz.")
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunRecordError(f"{json_path}: not valid JSON ({err}).") from err
    if not isinstance(doc, dict):
        raise RunRecordError(f"{json_path}: expected a JSON object.")
    digest = hashlib.sha256(ranks_path.read_bytes()).hexdigest()
    if doc.get("ranks_sha256") != digest:
        raise RunRecordError(f"{ranks_path}: sha256 {digest[:12]}... does not match run.json's `ranks_sha256`.")
    try:
        with np.load(ranks_path, allow_pickle=False) as data:
            ranks = {d: QueryRanks(*(data[f"{d}_{f}"] for f in RANK_FIELDS),
                                   tied_before=data[f"{d}_tied_before"] if f"{d}_tied_before" in data.files else None)
                     for d in DIRECTIONS}
    except (KeyError, ValueError, OSError) as err:
        raise RunRecordError(f"{ranks_path}: unreadable or incomplete per-query ranks ({err}).") from err
    validate(doc, ranks, where=str(run_dir))
    return RunRecord(
        method=doc["method"], config=doc["config"], benchmark=doc["benchmark"], split=doc["split"],
        fingerprint=doc["fingerprint"], n_texts=doc["n_texts"], n_videos=doc["n_videos"], protocol=doc["protocol"],
        metrics=doc["metrics"], ranks=ranks, provenance=doc["provenance"], seed=doc.get("seed"),
        efficiency=doc.get("efficiency"), extra=doc.get("extra") or {},
    )


def load_scores(run_dir: str | Path) -> np.ndarray | None:
    """The run's saved score matrix (sim.npy, read without pickles), or None when it was not saved."""
    path = Path(run_dir) / "sim.npy"
    return np.load(path, allow_pickle=False, mmap_mode="r") if path.is_file() else None
