"""Accept a run directory or a score matrix into the leaderboard, after recomputing every number it claims.

Nothing submitted is trusted: a score matrix is evaluated with `benchmark.metrics.evaluate_scores` against the
canonical split manifest; a run directory is re-evaluated from its `sim.npy` when present, otherwise its metrics are
recomputed from its per-query ranks and must agree with what it claims. Every refusal raises `SubmissionError`
before anything is written.
"""

from __future__ import annotations

import datetime as _dt
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.metrics import ScoreMatrixError, evaluate_scores, summarize
from benchmark.runs import DIRECTIONS, POST_PROCESSING, RANK_FIELDS, RunRecord, RunRecordError, load_run, make_record
from leaderboard.splits import ManifestError, SplitManifest, load_manifest
from leaderboard.store import Entry, StoreError, add_entry, slugify

MATRIX_KEYS = ("scores", "sim")
LEADERBOARD_TIES = "random"
LEADERBOARD_V2T = "max-over-captions"
SUBMIT_KINDS = ("submitted", "reproduced")


class SubmissionError(ValueError):
    """A refused submission; the message says exactly what is wrong. Nothing was written."""


@dataclass(frozen=True)
class Submission:
    """What the submitter declares about an entry (the numbers are always recomputed)."""

    benchmark: str
    name: str
    split: str | None = None
    paper: str | None = None
    code: str | None = None
    bibtex: str | None = None
    post_processing: str | None = None  # None: the run record's value, or "none" for a score matrix
    seed: int | None = None
    group: str | None = None
    kind: str = "submitted"
    method: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


def _check_fields(meta: Submission) -> None:
    for key in ("benchmark", "name"):
        value = getattr(meta, key)
        if not isinstance(value, str) or not value.strip():
            raise SubmissionError(f"Missing required field `{key}`: pass --{key} with a non-empty value.")
    try:
        slugify(meta.name)
    except ValueError as err:
        raise SubmissionError(str(err)) from err
    if meta.kind not in SUBMIT_KINDS:
        raise SubmissionError(f"Kind `{meta.kind}` cannot be submitted; use one of {', '.join(SUBMIT_KINDS)}.")
    if meta.post_processing is not None and meta.post_processing not in POST_PROCESSING:
        raise SubmissionError(
            f"Unknown --post-processing `{meta.post_processing}`; use one of {', '.join(POST_PROCESSING)}."
        )
    if meta.group is not None and not meta.group.strip():
        raise SubmissionError("--group must not be empty; omit it for a single run.")
    if meta.bibtex is not None and not re.search(r"@\w+\s*\{\s*[^,\s]+\s*,", meta.bibtex):
        raise SubmissionError("The --bibtex file holds no BibTeX entry (expected `@type{key, ...}`).")


def _manifest(meta: Submission, root: str | Path | None) -> SplitManifest:
    try:
        manifest = load_manifest(meta.benchmark, root)
    except ManifestError as err:
        raise SubmissionError(str(err)) from err
    if meta.split is not None and meta.split != manifest.split:
        raise SubmissionError(
            f"The leaderboard ranks {meta.benchmark} on split `{manifest.split}`, not `{meta.split}`; "
            f"evaluate on `{manifest.split}` (or omit --split)."
        )
    return manifest


def _load_array(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The score matrix and optional `text_ids` / `video_ids` / `fingerprint` of a .npy or .npz (no pickles)."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise SubmissionError(
            f"{path}: unsupported file type `{suffix or '(none)'}`. Submit a run directory, or a score matrix as "
            ".npy / .npz (pickles, .pt and .pkl files are never loaded)."
        )
    pickle_hint = (
        f"{path} holds pickled data (an object array or a pickle); tvbench never unpickles submissions. "
        "Save plain numeric arrays with np.save / np.savez (allow_pickle=False) and ids as string arrays."
    )
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False, mmap_mode="r"), {}
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except ValueError as err:
        if "pickle" in str(err).lower() or "python objects" in str(err).lower():
            raise SubmissionError(pickle_hint) from err
        raise SubmissionError(f"{path}: not a readable .npy/.npz file ({err}).") from err
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise SubmissionError(f"{path}: not a readable .npy/.npz file ({err}).") from err
    keys = [k for k in MATRIX_KEYS if k in arrays]
    if not keys:
        raise SubmissionError(
            f"{path}: no score matrix; store it under the key `scores` (found keys: {', '.join(arrays) or 'none'})."
        )
    return arrays[keys[0]], {k: arrays[k] for k in ("text_ids", "video_ids", "fingerprint") if k in arrays}


def _check_ids(found: Any, expected: tuple[str, ...], what: str, manifest: SplitManifest) -> None:
    ids = [str(x) for x in np.asarray(found).reshape(-1)]
    if len(ids) != len(expected):
        raise SubmissionError(
            f"`{what}` has {len(ids)} ids but {manifest.benchmark}/{manifest.split} has {len(expected)}."
        )
    bad = next((i for i, (a, b) in enumerate(zip(ids, expected)) if a != b), None)
    if bad is not None:
        raise SubmissionError(
            f"`{what}`[{bad}] is `{ids[bad]}` but the canonical order of {manifest.benchmark}/{manifest.split} has "
            f"`{expected[bad]}` there; order rows by the manifest's text_ids and columns by its video_ids."
        )


def _check_matrix(scores: np.ndarray, extras: dict[str, Any], manifest: SplitManifest, path: Path) -> None:
    expected = (len(manifest.text_ids), len(manifest.video_ids))
    if scores.dtype.kind not in "fiu":
        raise SubmissionError(f"{path}: the score matrix must hold numbers, not dtype {scores.dtype}.")
    if scores.shape != expected:
        hint = " It looks transposed: rows must be texts, columns videos." if scores.shape == expected[::-1] else ""
        raise SubmissionError(
            f"{path}: wrong shape {tuple(scores.shape)}; {manifest.benchmark}/{manifest.split} needs "
            f"{expected[0]} x {expected[1]} (texts x videos, in manifest order).{hint}"
        )
    if "text_ids" in extras:
        _check_ids(extras["text_ids"], manifest.text_ids, "text_ids", manifest)
    if "video_ids" in extras:
        _check_ids(extras["video_ids"], manifest.video_ids, "video_ids", manifest)
    if "fingerprint" in extras and str(extras["fingerprint"]) != manifest.fingerprint:
        raise SubmissionError(
            f"{path}: fingerprint {str(extras['fingerprint'])[:12]}... is not the fingerprint of "
            f"{manifest.benchmark}/{manifest.split} ({manifest.fingerprint[:12]}...): the scores were computed on "
            "another version of the split."
        )


def _evaluate(scores: np.ndarray, manifest: SplitManifest, where: Path) -> dict[str, Any]:
    try:
        return evaluate_scores(scores, manifest.text_to_video, ties=LEADERBOARD_TIES, v2t=LEADERBOARD_V2T)
    except ScoreMatrixError as err:
        raise SubmissionError(f"{where}: {err}") from err


def _leaderboard_meta(meta: Submission, source: str) -> dict[str, Any]:
    return {
        "name": meta.name.strip(), "kind": meta.kind, "paper": meta.paper, "code": meta.code, "bibtex": meta.bibtex,
        "group": meta.group, "source": source,
        "submitted": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def _from_matrix(path: Path, meta: Submission, manifest: SplitManifest) -> RunRecord:
    scores, extras = _load_array(path)
    _check_matrix(scores, extras, manifest, path)
    result = _evaluate(scores, manifest, path)
    return make_record(
        method=meta.method or meta.name.strip(), config=dict(meta.config), split=manifest, result=result,
        seed=meta.seed, protocol_extra={"post_processing": meta.post_processing or "none"},
        extra={"leaderboard": _leaderboard_meta(meta, "score matrix")},
    )


def _from_run(path: Path, meta: Submission, manifest: SplitManifest) -> RunRecord:
    try:
        record = load_run(path)  # validates the schema and that the claimed metrics match the ranks
    except RunRecordError as err:
        raise SubmissionError(f"The run record is invalid: {err}") from err
    for key, want in (("benchmark", manifest.benchmark), ("split", manifest.split),
                      ("fingerprint", manifest.fingerprint), ("n_texts", len(manifest.text_ids)),
                      ("n_videos", len(manifest.video_ids))):
        if getattr(record, key) != want:
            raise SubmissionError(
                f"{path}: run.json `{key}` is {getattr(record, key)!r} but {manifest.benchmark}/{manifest.split} "
                f"needs {want!r}; evaluate on the canonical test split."
            )
    protocol = dict(record.protocol)
    if protocol["v2t"] != LEADERBOARD_V2T:
        raise SubmissionError(
            f"{path}: v2t protocol `{protocol['v2t']}`; the leaderboard ranks v2t with `{LEADERBOARD_V2T}`."
        )
    post = protocol["post_processing"]
    if meta.post_processing is not None and meta.post_processing != post:
        raise SubmissionError(
            f"{path}: run.json says post_processing `{post}` but --post-processing is `{meta.post_processing}`."
        )
    ranks = record.ranks
    if (path / "sim.npy").is_file():
        scores, _ = _load_array(path / "sim.npy")
        _check_matrix(scores, {}, manifest, path / "sim.npy")
        result = _evaluate(scores, manifest, path / "sim.npy")
        for d in DIRECTIONS:
            if any(not np.array_equal(getattr(ranks[d], f), getattr(result["ranks"][d], f)) for f in RANK_FIELDS):
                raise SubmissionError(f"{path}: ranks.npz ({d}) does not match the ranks recomputed from sim.npy.")
        ranks = result["ranks"]
    # The ranks are tie-policy free counts: the leaderboard re-summarises them under its own tie policy.
    metrics = {d: summarize(ranks[d], LEADERBOARD_TIES) for d in DIRECTIONS}
    protocol.update(ties=LEADERBOARD_TIES, submitted_ties=record.protocol["ties"])
    extra = {**record.extra, "leaderboard": _leaderboard_meta(meta, "run directory")}
    seed = meta.seed if meta.seed is not None else record.seed
    return replace(record, protocol=protocol, metrics=metrics, ranks=dict(ranks), extra=extra, seed=seed)


def _same_ranks(a: RunRecord, b: RunRecord) -> bool:
    return all(
        np.array_equal(getattr(a.ranks[d], f), getattr(b.ranks[d], f)) for d in DIRECTIONS for f in RANK_FIELDS
    )


def _same_run(a: RunRecord, b: RunRecord) -> bool:
    """Identical per-query ranks are a resubmission, unless both are reproduced runs of different methods, configs
    or seeds (small test sets can make two genuinely different runs rank every query alike)."""
    reproduced = all(r.extra.get("leaderboard", {}).get("kind") == "reproduced" for r in (a, b))
    if reproduced and (a.method, a.config, a.seed) != (b.method, b.config, b.seed):
        return False
    return _same_ranks(a, b)


def _duplicate_check(record: RunRecord, entry_id: str) -> Any:
    name = record.extra["leaderboard"]["name"]

    def check(existing: list[Entry]) -> None:
        for entry in existing:
            if entry.id == entry_id or entry.name.strip().lower() == name.lower():
                raise SubmissionError(
                    f"Duplicate: an entry named `{entry.name}` already exists ({entry.path}); choose another --name."
                )
            if _same_run(entry.record, record):
                raise SubmissionError(
                    f"Duplicate: the per-query ranks are identical to those of entry `{entry.name}` ({entry.path}); "
                    "the same run cannot be submitted twice."
                )

    return check


def prepare(path: str | Path, meta: Submission, root: str | Path | None = None) -> RunRecord:
    """The run record a submission would add (every check except duplicates), without writing anything."""
    _check_fields(meta)
    manifest = _manifest(meta, root)
    path = Path(path)
    if path.is_dir():
        if not (path / "run.json").is_file():
            raise SubmissionError(f"{path}: a run directory needs run.json + ranks.npz (and optionally sim.npy).")
        return _from_run(path, meta, manifest)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file or directory.")
    return _from_matrix(path, meta, manifest)


def submit(path: str | Path, meta: Submission, root: str | Path | None = None) -> Path:
    """Validate and recompute a submission, then add it to the store atomically; returns the entry folder."""
    record = prepare(path, meta, root)
    entry_id = slugify(meta.name)
    try:
        return add_entry(record, entry_id, _duplicate_check(record, entry_id), root)
    except StoreError as err:
        raise SubmissionError(str(err)) from err
