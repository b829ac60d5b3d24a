"""Accept a run directory or a score matrix into the leaderboard, after recomputing every number it claims.

Verified: the metrics (a score matrix is evaluated with `benchmark.metrics.evaluate_scores` against the canonical split
manifest; a run directory is re-evaluated from its `sim.npy` when present, otherwise its metrics are recomputed from
its per-query ranks and must agree with what it claims), the split (fingerprint, sizes, id order), the ranks file
(sha256), every other field (`leaderboard.schema`), names (`leaderboard.names`), BibTeX (`leaderboard.bibtex`),
duplicates and group ownership. Sanity (`leaderboard.sanity`): ranks no better than chance are accepted only with
`allow_chance`, ranks that nearly copy an entry's only with `allow_duplicate`; both are recorded and labelled. Not
verifiable: how the scores were made; the ground truth is public, so an oracle score matrix reaches R@1 = 100. Every
refusal raises `SubmissionError` before anything is written.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.metrics import ScoreMatrixError, evaluate_scores, summarize
from benchmark.runs import DIRECTIONS, POST_PROCESSING, RANK_FIELDS, RunRecord, RunRecordError, load_run, make_record
from leaderboard.arrays import ArrayFileError, HeaderCheck, member_names, read_npy, read_npz
from leaderboard.bibtex import submitted_entry
from leaderboard.names import check_path_name, normalize_name, skeleton
from leaderboard.sanity import agreement, chance_test
from leaderboard.schema import SchemaError, check_entry, check_extra, check_url
from leaderboard.splits import ManifestError, SplitManifest, load_manifest
from leaderboard.store import Entry, Removal, StoreError, add_entry, slugify, track_of

MATRIX_KEYS = ("scores", "sim")
LEADERBOARD_TIES = "random"
LEADERBOARD_V2T = "max-over-captions"
SUBMIT_KINDS = ("submitted", "reproduced")
ENV_SUBMITTER = "TVBENCH_SUBMITTER"
MAX_ID_CHARS = 256


class SubmissionError(ValueError):
    """A refused submission; the message says exactly what is wrong. Nothing was written."""


class SubmissionWarning(UserWarning):
    """An accepted submission that readers should know about (chance level, near-duplicate, superseded entry)."""


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
    submitter: str | None = None  # None: $TVBENCH_SUBMITTER, else the login name
    maintainer_join: bool = False  # a maintainer adds this run to a group that another submitter owns
    allow_chance: bool = False  # accept ranks no better than chance (labelled chance-level)
    allow_duplicate: bool = False  # accept ranks that nearly copy an existing entry's (labelled near-duplicate)
    supersedes: str | None = None  # id or name of the submitter's own entry that this one replaces (it is removed)


def default_submitter() -> str:
    """Who submits: $TVBENCH_SUBMITTER, else the login name of the process."""
    try:
        return os.environ.get(ENV_SUBMITTER) or getpass.getuser()
    except (KeyError, OSError) as err:
        raise SubmissionError(f"Cannot tell who is submitting; pass --submitter or set ${ENV_SUBMITTER}.") from err


def _normalised(meta: Submission) -> Submission:
    """`meta` with every declared field validated: names normalised, BibTeX re-serialised, the submitter known."""
    for key in ("benchmark", "name"):
        value = getattr(meta, key)
        if not isinstance(value, str) or not value.strip():
            raise SubmissionError(f"Missing required field `{key}`: pass --{key} with a non-empty value.")
    if meta.kind not in SUBMIT_KINDS:
        raise SubmissionError(f"Kind `{meta.kind}` cannot be submitted; use one of {', '.join(SUBMIT_KINDS)}.")
    if meta.post_processing is not None and meta.post_processing not in POST_PROCESSING:
        raise SubmissionError(
            f"Unknown --post-processing `{meta.post_processing}`; use one of {', '.join(POST_PROCESSING)}."
        )
    if meta.seed is not None and (isinstance(meta.seed, bool) or not isinstance(meta.seed, int)):
        raise SubmissionError(f"--seed must be an integer, got {meta.seed!r}.")
    try:
        check_path_name(meta.benchmark)
        name = normalize_name(meta.name, "--name")
        slugify(name)
        group = None if meta.group is None else normalize_name(meta.group, "--group")
        submitter = normalize_name(meta.submitter or default_submitter(), "--submitter")
        bibtex = None if meta.bibtex is None else submitted_entry(meta.bibtex, "The --bibtex file").text()
        check_url(meta.paper, "--paper")
        check_url(meta.code, "--code")
    except ValueError as err:  # InvalidNameError, BibtexError, SchemaError, or slugify's
        raise SubmissionError(str(err)) from err
    return replace(meta, name=name, group=group, submitter=submitter, bibtex=bibtex)


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


def _matrix_check(manifest: SplitManifest) -> HeaderCheck:
    """Header check of a score matrix: numbers, texts x videos of the manifest (checked before reading any data)."""
    expected = (len(manifest.text_ids), len(manifest.video_ids))

    def check(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
        if dtype.kind not in "fiu":
            raise ArrayFileError(f"{where}: the score matrix must hold numbers, not dtype {dtype}.")
        if shape != expected:
            hint = " It looks transposed: rows must be texts, columns videos." if shape == expected[::-1] else ""
            raise ArrayFileError(
                f"{where}: wrong shape {shape}; {manifest.benchmark}/{manifest.split} needs {expected[0]} x "
                f"{expected[1]} (texts x videos, in manifest order).{hint}"
            )

    return check


def _text_check(shape_needed: tuple[int, ...], what: str, manifest: SplitManifest) -> HeaderCheck:
    """Header check of an id array or the fingerprint: strings of bounded length, in the shape the manifest implies."""

    def check(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
        if dtype.kind not in "US" or dtype.itemsize // (4 if dtype.kind == "U" else 1) > MAX_ID_CHARS:
            raise ArrayFileError(f"{where}: `{what}` must be a string array of at most {MAX_ID_CHARS} characters each.")
        if shape != shape_needed and not (what == "fingerprint" and shape == (1,)):
            count = f"{int(np.prod(shape))} ids" if what != "fingerprint" else f"shape {shape}"
            raise ArrayFileError(
                f"{where}: `{what}` has {count} but {manifest.benchmark}/{manifest.split} needs shape {shape_needed}."
            )

    return check


def _load_array(path: Path, manifest: SplitManifest) -> tuple[np.ndarray, dict[str, Any]]:
    """The score matrix and optional `text_ids` / `video_ids` / `fingerprint` of a .npy or .npz, each member's
    header checked against the manifest before its data is read (no pickles, no unbounded allocation)."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise SubmissionError(
            f"{path}: unsupported file type `{suffix or '(none)'}`. Submit a run directory, or a score matrix as "
            ".npy / .npz (pickles, .pt and .pkl files are never loaded)."
        )
    matrix = _matrix_check(manifest)
    try:
        if suffix == ".npy":
            return read_npy(path, matrix), {}
        checks = {key: matrix for key in MATRIX_KEYS}
        checks.update(text_ids=_text_check((len(manifest.text_ids),), "text_ids", manifest),
                      video_ids=_text_check((len(manifest.video_ids),), "video_ids", manifest),
                      fingerprint=_text_check((), "fingerprint", manifest))
        arrays = read_npz(path, checks)
        keys = [k for k in MATRIX_KEYS if k in arrays]
        if not keys:
            raise SubmissionError(f"{path}: no score matrix; store it under the key `scores` (found keys: "
                                  f"{', '.join(member_names(path)) or 'none'}).")
    except ArrayFileError as err:
        raise SubmissionError(str(err)) from err
    return arrays[keys[0]], {k: arrays[k] for k in ("text_ids", "video_ids", "fingerprint") if k in arrays}


def _check_ids(found: Any, expected: tuple[str, ...], what: str, manifest: SplitManifest, path: Path) -> None:
    ids = [str(x) for x in np.asarray(found).reshape(-1)]
    bad = next((i for i, (a, b) in enumerate(zip(ids, expected, strict=True)) if a != b), None)
    if bad is not None:
        raise SubmissionError(
            f"{path}: `{what}`[{bad}] is `{ids[bad]}` but the canonical order of {manifest.benchmark}/{manifest.split} "
            f"has `{expected[bad]}` there; order rows by the manifest's text_ids and columns by its video_ids."
        )


def _check_matrix(extras: dict[str, Any], manifest: SplitManifest, path: Path) -> None:
    """The ids and fingerprint stored beside a score matrix agree with the manifest (shapes were checked on read)."""
    if "text_ids" in extras:
        _check_ids(extras["text_ids"], manifest.text_ids, "text_ids", manifest, path)
    if "video_ids" in extras:
        _check_ids(extras["video_ids"], manifest.video_ids, "video_ids", manifest, path)
    fingerprint = str(np.asarray(extras.get("fingerprint", manifest.fingerprint)).reshape(-1)[0])
    if fingerprint != manifest.fingerprint:
        raise SubmissionError(
            f"{path}: fingerprint {fingerprint[:12]}... is not the fingerprint of "
            f"{manifest.benchmark}/{manifest.split} ({manifest.fingerprint[:12]}...): the scores were computed on "
            "another version of the split."
        )


def _evaluate(scores: np.ndarray, manifest: SplitManifest, where: Path) -> dict[str, Any]:
    try:
        return evaluate_scores(scores, manifest.text_to_video, ties=LEADERBOARD_TIES, v2t=LEADERBOARD_V2T)
    except ScoreMatrixError as err:
        raise SubmissionError(f"{where}: {err}") from err


def _leaderboard_meta(meta: Submission, source: str) -> dict[str, Any]:
    """The `extra.leaderboard` block (the group owner is settled under the store lock, in `_admit`)."""
    return {
        "name": meta.name, "kind": meta.kind, "paper": meta.paper, "code": meta.code, "bibtex": meta.bibtex,
        "group": meta.group, "source": source, "submitter": meta.submitter,
        "submitted": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def _from_matrix(path: Path, meta: Submission, manifest: SplitManifest) -> RunRecord:
    scores, extras = _load_array(path, manifest)
    _check_matrix(extras, manifest, path)
    result = _evaluate(scores, manifest, path)
    return make_record(
        method=meta.method or meta.name, config=dict(meta.config), split=manifest, result=result,
        seed=meta.seed, protocol_extra={"post_processing": meta.post_processing or "none"},
        extra={"leaderboard": _leaderboard_meta(meta, "score matrix")},
    )


def _from_run(path: Path, meta: Submission, manifest: SplitManifest) -> RunRecord:
    try:
        record = load_run(path)  # validates the schema and that the claimed metrics match the ranks
        check_extra(record.extra)
    except (RunRecordError, SchemaError) as err:
        raise SubmissionError(f"The run record {path / 'run.json'} is invalid: {err}") from err
    if meta.seed is not None and record.seed is not None and meta.seed != record.seed:
        raise SubmissionError(f"{path}: run.json says seed {record.seed} but --seed is {meta.seed}; omit --seed.")
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
        scores, _ = _load_array(path / "sim.npy", manifest)
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


def _distinct_runs(a: RunRecord, b: RunRecord) -> bool:
    """Reproduced run directories of different methods, configs or seeds: alike ranks are no sign of a copy (small
    test sets can make genuinely different runs rank every query alike). A score matrix never gets that benefit of
    the doubt: its method is only the name its submitter chose."""
    reproduced = all(
        r.extra["leaderboard"]["kind"] == "reproduced" and r.extra["leaderboard"].get("source") == "run directory"
        for r in (a, b)
    )
    return reproduced and (a.method, a.config, a.seed) != (b.method, b.config, b.seed)


def _near_duplicates(record: RunRecord, others: list[Entry], allow: bool) -> list[str]:
    """Names of the entries whose ranks `record` nearly copies; an identical copy is always refused, a near one
    unless `allow` (then it is labelled). Entries of another split version are not comparable and are skipped."""
    near = []
    for entry in others:
        if entry.record.fingerprint != record.fingerprint or _distinct_runs(entry.record, record):
            continue
        alike = agreement(entry.record.ranks, record.ranks)
        if alike.identical:
            raise SubmissionError(
                f"Duplicate: the per-query ranks are identical to those of entry `{entry.name}` ({entry.path}); "
                "the same run cannot be submitted twice (to replace your own entry, use --supersedes)."
            )
        if alike.near_duplicate and not allow:
            raise SubmissionError(
                f"Near-duplicate: the per-query ranks agree with those of entry `{entry.name}` ({entry.path}) on "
                f"{alike.observed:.1%} of queries (Cohen's kappa {alike.kappa:.2f}). To replace your own entry use "
                "--supersedes; if this is a distinct system, resubmit with --allow-duplicate and it is labelled "
                "near-duplicate in every table."
            )
        if alike.near_duplicate:
            near.append(entry.name)
    return near


def _superseded(meta: dict[str, Any], target_id: str | None, existing: list[Entry]) -> Entry | None:
    """The entry that a submission replaces (its submitter's own), or None."""
    if target_id is None:
        return None
    target = next((e for e in existing if e.id == target_id), None)
    if target is None:
        known = ", ".join(e.id for e in existing) or "none"
        raise SubmissionError(f"--supersedes: no valid entry `{target_id}` on this benchmark (entries: {known}).")
    owner = target.meta.get("submitter")
    if owner != meta["submitter"]:
        raise SubmissionError(
            f"--supersedes: entry `{target.name}` was submitted by {owner or 'an unrecorded submitter'}, not "
            f"{meta['submitter']}; only its submitter replaces it (a maintainer removes it with "
            "`tvbench leaderboard remove`)."
        )
    return target


def _system(meta: dict[str, Any]) -> str:
    """The row an entry is shown in: its group, else its own name (as in `leaderboard.board`)."""
    return meta.get("group") or meta["name"]


def _group_owner(meta: dict[str, Any], members: list[Entry], maintainer: bool) -> dict[str, Any]:
    """`meta` with the owner of its group: its submitter for a new group; joining an existing one needs the same
    submitter, or a maintainer's explicit `maintainer_join`."""
    if not members:
        return {**meta, "group_owner": meta["submitter"]}
    owner = members[0].meta.get("group_owner")
    if owner != meta["submitter"] and not maintainer:
        raise SubmissionError(
            f"The group `{meta['group']}` belongs to {owner or 'a submitter that was not recorded'}, not to "
            f"{meta['submitter']}; only its owner adds seeds to it (a maintainer can, with --maintainer-join). "
            "Choose another --group for your own runs."
        )
    block = {**meta, "group_owner": owner}
    if owner != meta["submitter"]:
        block["group_joined_by_maintainer"] = True
    return block


def _admit(
    record: RunRecord, entry_id: str, meta_in: Submission, target_id: str | None
) -> Callable[[list[Entry]], RunRecord]:
    """The store check of a new entry against the entries of its benchmark: no look-alike name, no row it would join
    without owning it, no identical run, no near-copy unless allowed, no BibTeX key that means another paper, and
    only one's own entry superseded. An entry being superseded is left out of the checks that compare with it.
    Returns the record to write."""
    meta = record.extra["leaderboard"]

    def admit(existing: list[Entry]) -> RunRecord:
        target = _superseded(meta, target_id, existing)
        others = [e for e in existing if e is not target]
        for entry in others:
            if entry.id == entry_id or skeleton(entry.name) == skeleton(meta["name"]):
                raise SubmissionError(f"Duplicate: an entry named `{entry.name}` already exists ({entry.path}); "
                                      "choose another --name.")
        members = [e for e in existing if e.meta.get("group") == meta["group"]] if meta["group"] else []
        for entry in others:
            joins = entry.id in {e.id for e in members}
            if not joins and skeleton(_system(entry.meta)) == skeleton(_system(meta)):
                raise SubmissionError(
                    f"`{_system(meta)}` looks like the existing row `{_system(entry.meta)}` ({entry.path}); "
                    "choose a distinct --name or --group."
                )
        near = _near_duplicates(record, others, meta_in.allow_duplicate)
        track = track_of(record.protocol["post_processing"])
        other_track = next((e for e in members if e.track != track), None)
        if other_track is not None:
            raise SubmissionError(
                f"Group `{meta['group']}` holds {other_track.track} runs (`{other_track.name}`); a {track} run "
                "cannot join it. Use another --group for post-processed runs."
            )
        key = meta["bibtex"] and submitted_entry(meta["bibtex"]).key
        for entry in others:
            other = entry.meta.get("bibtex")
            if key and other and submitted_entry(other).key == key and other != meta["bibtex"]:
                raise SubmissionError(f"The BibTeX key `{key}` already cites another paper (entry `{entry.name}`); "
                                      "choose another key.")
        block = _group_owner(meta, members, meta_in.maintainer_join) if meta["group"] else dict(meta)
        if near:
            block["near_duplicate_of"] = near
        if target is not None:
            block["supersedes"] = target.name
        return replace(record, extra={**record.extra, "leaderboard": block})

    return admit


def prepare(path: str | Path, meta: Submission, root: str | Path | None = None) -> RunRecord:
    """The run record a submission would add (every check except those against the store), writing nothing."""
    meta = _normalised(meta)
    manifest = _manifest(meta, root)
    path = Path(path)
    if path.is_dir() and not (path / "run.json").is_file() and (path / "record" / "run.json").is_file():
        path = path / "record"  # the folder `tvbench train --out` wrote
    if path.is_dir():
        if not (path / "run.json").is_file():
            raise SubmissionError(f"{path}: a run directory needs run.json + ranks.npz (and optionally sim.npy).")
        record = _from_run(path, meta, manifest)
    elif path.is_file():
        record = _from_matrix(path, meta, manifest)
    else:
        raise SubmissionError(f"{path}: no such file or directory.")
    chance = chance_test(record.ranks["t2v"], manifest.text_to_video, len(manifest.video_ids))
    if chance.at_chance and not meta.allow_chance:
        raise SubmissionError(
            f"{path}: the ranks are indistinguishable from chance ({chance.describe()}). If the rows and columns may "
            f"be out of order, compare them with `tvbench leaderboard order {manifest.benchmark}` (a .npz with "
            "`text_ids` / `video_ids` has its order checked). If a chance-level entry is intended (a baseline), "
            "resubmit with --allow-chance; it is labelled chance-level in every table."
        )
    block = {**record.extra["leaderboard"], "chance_p": chance.p}
    if chance.at_chance:
        block["chance_level"] = True
    record = replace(record, extra={**record.extra, "leaderboard": block})
    try:
        check_entry(record)
    except SchemaError as err:
        raise SubmissionError(f"{path}: {err}") from err
    return record


def notes(block: dict[str, Any]) -> list[str]:
    """What readers of an accepted entry should know: chance level, near-duplicate, the entry it replaced."""
    name = block["name"]
    out = []
    if block.get("chance_level"):
        out.append(f"`{name}` is no better than chance (p = {block['chance_p']:.2g}); it is labelled chance-level.")
    if block.get("near_duplicate_of"):
        others = ", ".join(f"`{n}`" for n in block["near_duplicate_of"])
        out.append(f"`{name}` nearly copies the ranks of {others}; it is labelled near-duplicate.")
    if block.get("supersedes"):
        out.append(f"`{name}` supersedes `{block['supersedes']}`, which was removed (its record is kept under "
                   "removed/).")
    return out


def submit(path: str | Path, meta: Submission, root: str | Path | None = None) -> Path:
    """Validate and recompute a submission, then add it to the store atomically; returns the entry folder. Notes
    on an accepted entry (see `notes`) are issued as `SubmissionWarning`s."""
    record = prepare(path, meta, root)
    block = record.extra["leaderboard"]
    entry_id = slugify(block["name"])
    target_id = None if meta.supersedes is None else _entry_id(meta.supersedes)
    removal = None if target_id is None else Removal(
        target_id, f"superseded by `{block['name']}`", block["submitter"], superseded_by=block["name"])
    try:
        path = add_entry(record.benchmark, entry_id, _admit(record, entry_id, meta, target_id), root, removal)
    except StoreError as err:
        raise SubmissionError(str(err)) from err
    for note in notes(load_run(path).extra["leaderboard"]):
        warnings.warn(note, SubmissionWarning, stacklevel=2)
    return path


def _entry_id(text: str) -> str:
    """The entry id of `--supersedes` given as an id or a display name."""
    try:
        return slugify(text)
    except ValueError as err:
        raise SubmissionError(f"--supersedes: {err}") from err
