"""Submissions: recomputed metrics, every refusal with the store left byte-identical, concurrency, tracks."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import benchmark.runs
from benchmark.data.split import Split, TextRecord, VideoRecord
from benchmark.metrics import evaluate_scores
from benchmark.runs import load_run, make_record, write_run
from leaderboard.board import build_board
from leaderboard.splits import build_manifest, load_manifest, register_split_manifest
from leaderboard.stats import StatsSettings
from leaderboard.store import LOCK_NAME, load_entries
from leaderboard.submit import Submission, SubmissionError, submit

N = 40


def _split() -> Split:
    videos = [VideoRecord(f"v{i}", f"v{i}.mp4") for i in range(N)]
    texts = [TextRecord(f"t{i}", f"caption {i}", f"v{i}") for i in range(N)]
    return Split("toyvtt", "test", videos, texts)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    lb = tmp_path / "lb"
    register_split_manifest(lb, _split())
    return lb


def _scores(seed: int, signal: float = 1.5) -> np.ndarray:
    s = np.random.default_rng(seed).standard_normal((N, N))
    s[np.arange(N), np.arange(N)] += signal
    return s


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _meta(name: str, **kw) -> Submission:
    return Submission(benchmark="toyvtt", name=name, **kw)


def test_manifest_roundtrip(root: Path) -> None:
    manifest = load_manifest("toyvtt", root)
    assert manifest.fingerprint == _split().fingerprint and manifest.text_ids[3] == "t3"
    assert build_manifest(_split())["text_to_video"] == list(range(N))


def test_matrix_submission_recomputes_metrics(root: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", _scores(0))
    path = submit(tmp_path / "s.npy", _meta("Model A", paper="https://example.org/a", seed=3), root)
    record = load_run(path)
    expected = evaluate_scores(_scores(0))
    assert record.metrics["t2v"] == pytest.approx(expected["t2v"]) and record.seed == 3
    assert record.extra["leaderboard"]["kind"] == "submitted"
    assert [e.name for e in load_entries(root)] == ["Model A"]


def test_run_directory_with_and_without_scores(root: Path, tmp_path: Path) -> None:
    split = _split()
    for i, with_sim in enumerate((True, False)):
        s = _scores(10 + i)
        record = make_record(method="toy", config={"backbone": "none"}, split=split, result=evaluate_scores(s),
                             seed=i, protocol_extra={"post_processing": "qb-norm" if with_sim else "none"},
                             efficiency={"head_gmacs_1k": 0.5})
        run_dir = write_run(record, tmp_path / f"run{i}", scores=s if with_sim else None)
        submit(run_dir, _meta(f"run {i}", kind="reproduced"), root)
    tracks = {e.name: e.track for e in load_entries(root)}
    assert tracks == {"run 0": "post-processed", "run 1": "raw"}
    raw = build_board("toyvtt", "raw", root, StatsSettings(n_resamples=199), published=False)
    assert [r["name"] for r in raw["rows"]] == ["run 1"] and raw["rows"][0]["head_gflops"] == 0.5


def _refusals(root: Path, tmp: Path) -> dict[str, tuple]:
    """name -> (path, Submission, expected message fragment) of every refusal."""
    good = _scores(1)
    np.save(tmp / "wrong_shape.npy", good[:, :-1])
    np.save(tmp / "transposed.npy", np.random.default_rng(0).standard_normal((N, N + 1)).T)
    nan, inf = good.copy(), good.copy()
    nan[2, 5], inf[7, 1] = np.nan, np.inf
    np.save(tmp / "nan.npy", nan)
    np.save(tmp / "inf.npy", inf)
    ids = [f"t{i}" for i in range(N)]
    np.savez(tmp / "ids.npz", scores=good, text_ids=np.array(ids[::-1]))
    np.savez(tmp / "fp.npz", scores=good, fingerprint=np.array("0" * 64))
    np.savez(tmp / "nokey.npz", other=good)
    np.save(tmp / "object.npy", np.array([good, "x"], dtype=object), allow_pickle=True)
    (tmp / "scores.pkl").write_bytes(pickle.dumps(good))
    (tmp / "pickle.npy").write_bytes(pickle.dumps(good))
    (tmp / "random.npy").write_bytes(np.random.default_rng(0).bytes(1000))
    np.save(tmp / "dup.npy", _scores(0))  # same scores as the existing entry -> identical ranks
    np.save(tmp / "ok.npy", _scores(5))
    np.save(tmp / "shuffled.npy", _scores(5)[:, np.random.default_rng(2).permutation(N)])
    bad_run = write_run(make_record(method="m", config={}, split=_split(), result=evaluate_scores(good)), tmp / "bad")
    doc = json.loads((bad_run / "run.json").read_text())
    doc["metrics"]["t2v"]["R@1"] += 10
    (bad_run / "run.json").write_text(json.dumps(doc))
    missing = write_run(make_record(method="m", config={}, split=_split(), result=evaluate_scores(good)), tmp / "m")
    doc = json.loads((missing / "run.json").read_text())
    del doc["method"]
    (missing / "run.json").write_text(json.dumps(doc))
    other = Split("toyvtt", "test", _split().videos, [TextRecord(f"t{i}", "other", f"v{i}") for i in range(N)])
    fp_run = write_run(make_record(method="m", config={}, split=other, result=evaluate_scores(good)), tmp / "fp")
    ok = tmp / "ok.npy"
    ok_record = make_record(method="m", config={}, split=_split(), result=evaluate_scores(_scores(6)))
    ok_run = write_run(ok_record, tmp / "r")
    return {
        "shape": (tmp / "wrong_shape.npy", _meta("x"), "wrong shape"),
        "transposed": (tmp / "transposed.npy", _meta("x"), "transposed"),
        "nan": (tmp / "nan.npy", _meta("x"), "NaN/inf"),
        "inf": (tmp / "inf.npy", _meta("x"), "NaN/inf"),
        "ids": (tmp / "ids.npz", _meta("x"), "text_ids`[0] is `t39`"),
        "fingerprint": (tmp / "fp.npz", _meta("x"), "fingerprint"),
        "run fingerprint": (fp_run, _meta("x"), "`fingerprint`"),
        "no matrix key": (tmp / "nokey.npz", _meta("x"), "no score matrix"),
        "object array": (tmp / "object.npy", _meta("x"), "pickled data"),
        "pickle file": (tmp / "scores.pkl", _meta("x"), "pickles"),
        "pickle as npy": (tmp / "pickle.npy", _meta("x"), "pickled data"),
        "duplicate name": (ok, _meta("model a"), "already exists"),
        "duplicate ranks": (tmp / "dup.npy", _meta("Other name"), "identical"),
        "claimed metrics": (bad_run, _meta("x"), "but the ranks give"),
        "missing run field": (missing, _meta("x"), "missing required field `method`"),
        "missing name": (ok, _meta(" "), "Missing required field `name`"),
        "missing benchmark": (ok, Submission(benchmark="", name="x"), "Missing required field `benchmark`"),
        "unknown benchmark": (ok, Submission(benchmark="nope", name="x"), "No test-split manifest"),
        "wrong split": (ok, _meta("x", split="val"), "not `val`"),
        "post-processing mismatch": (ok_run, _meta("x", post_processing="dsl"), "--post-processing is `dsl`"),
        "bad bibtex": (ok, _meta("x", bibtex="not bibtex"), "no BibTeX entry"),
        "unbalanced bibtex": (ok, _meta("x", bibtex="@article{k, title = {x}"), "unbalanced braces"),
        "reserved bibtex key": (ok, _meta("x", bibtex="@article{zhang2024glscl, title = {x}}"), "reserved"),
        "random bytes": (tmp / "random.npy", _meta("x"), "not a NumPy .npy array"),
        "benchmark path": (ok, Submission(benchmark="../x", name="x"), "Invalid benchmark name"),
        "long name": (ok, _meta("x" * 300), "at most 100"),
        "bidi name": (ok, _meta("\u202emodel"), "U+202E"),
        "look-alike name": (ok, _meta("Model \u0410"), "already exists"),
        "no such file": (tmp / "absent.npy", _meta("x"), "no such file"),
        "chance level": (tmp / "shuffled.npy", _meta("x"), "indistinguishable from chance"),
        "supersede another's": (ok, _meta("x", supersedes="model-a", submitter="mallory"), "only its submitter"),
        "supersede nothing": (ok, _meta("x", supersedes="nothing"), "no valid entry `nothing`"),
    }


def test_every_refusal_leaves_the_store_byte_identical(root: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", _scores(0))
    submit(tmp_path / "a.npy", _meta("Model A"), root)
    (root / LOCK_NAME).unlink()  # a store fresh from git has no lock file, and a refusal must not create one
    before = _tree_hash(root)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for case, (path, meta, message) in _refusals(root, inputs).items():
        with pytest.raises(SubmissionError) as err:
            submit(path, meta, root)
        assert message in str(err.value), f"{case}: {err.value}"
        assert _tree_hash(root) == before, case
    assert len(load_entries(root)) == 1 and not (root / LOCK_NAME).exists()


def _submit_one(args: tuple[str, int]) -> str:
    root, i = args
    path = Path(root).parent / f"c{i}.npy"
    np.save(path, _scores(100 + i))
    return str(submit(path, _meta(f"concurrent {i}", seed=i, group="conc"), root))


def test_eight_concurrent_submissions(root: Path) -> None:
    with multiprocessing.get_context("fork").Pool(8) as pool:
        paths = pool.map(_submit_one, [(str(root), i) for i in range(8)])
    assert len(set(paths)) == 8
    entries = load_entries(root)  # validates every entry
    assert sorted(e.name for e in entries) == [f"concurrent {i}" for i in range(8)]
    assert not [p for p in (root / "entries" / "toyvtt").iterdir() if p.name.startswith(".")]
    board = build_board("toyvtt", "raw", root, StatsSettings(n_resamples=99), published=False)
    (row,) = board["rows"]
    assert row["name"] == "conc" and row["n_seeds"] == 8 and row["sd"]["t2v"]["R@1"] is not None


def test_identical_ranks_of_different_reproduced_runs_are_kept(root: Path, tmp_path: Path) -> None:
    # Two different methods that happen to rank every query alike are distinct runs; the same run twice is not.
    split, s = _split(), _scores(7)
    for method in ("method-a", "method-b"):
        record = make_record(method=method, config={}, split=split, result=evaluate_scores(s), seed=0)
        write_run(record, tmp_path / method)
        submit(tmp_path / method, _meta(f"{method} seed 0", kind="reproduced", seed=0), root)
    assert len(load_entries(root)) == 2
    before = _tree_hash(root)
    with pytest.raises(SubmissionError, match="identical to those of entry `method-a seed 0`"):
        submit(tmp_path / "method-a", _meta("method-a again", kind="reproduced", seed=0), root)
    with pytest.raises(SubmissionError, match="identical"):
        submit(tmp_path / "method-b", _meta("method-b as submitted"), root)
    assert _tree_hash(root) == before


def _submit_and_hang(root: str, marker: str) -> None:
    """Submit, but stop for good halfway through writing the entry (the parent kills this process there)."""

    def hang(path: Path, obj: object) -> None:
        Path(marker).write_text(str(path))
        time.sleep(60)

    benchmark.runs.write_json = hang  # in this forked child only: ranks.npz is written, run.json never is
    np.save(Path(root).parent / "k.npy", _scores(200))
    submit(Path(root).parent / "k.npy", _meta("killed"), root)


def test_kill_9_inside_a_submit_leaves_no_entry_and_the_next_submit_cleans_up(root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "writing"
    child = multiprocessing.get_context("fork").Process(target=_submit_and_hang, args=(str(root), str(marker)))
    child.start()
    deadline = time.monotonic() + 60
    while not marker.exists() and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the child never reached the write"
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    folder = root / "entries" / "toyvtt"
    leftovers = [p.name for p in folder.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".killed.") and leftovers[0].endswith(".tmp")
    assert load_entries(root) == []  # the partial entry is invisible
    np.save(tmp_path / "next.npy", _scores(201))
    submit(tmp_path / "next.npy", _meta("killed"), root)  # same name: the lock was released by the kill
    assert [p.name for p in folder.iterdir()] == ["killed"] and [e.name for e in load_entries(root)] == ["killed"]
