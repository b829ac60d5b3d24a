"""A leaderboard people can trust: splits registered and their order exported from the command line, chance-level
and near-duplicate submissions refused unless asked for (then labelled), entries removed or superseded with a record."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

import leaderboard.store as store
from benchmark.cli import main
from benchmark.data.split import Split, TextRecord, VideoRecord
from benchmark.metrics import rank_counts
from leaderboard.board import build_board
from leaderboard.sanity import CHANCE_ALPHA, agreement, chance_test
from leaderboard.splits import register_split_manifest
from leaderboard.stats import StatsSettings
from leaderboard.store import REMOVED, Removal, load_entries, lock
from leaderboard.submit import Submission, SubmissionError, SubmissionWarning, submit

N = 300
FAST = StatsSettings(n_resamples=99)


def _split(n: int = N) -> Split:
    videos = [VideoRecord(f"v{i}", f"v{i}.mp4") for i in range(n)]
    texts = [TextRecord(f"t{i}", f"caption {i}", f"v{i}") for i in range(n)]
    return Split("toyvtt", "test", videos, texts)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    lb = tmp_path / "lb"
    register_split_manifest(lb, _split())
    return lb


def _scores(seed: int, signal: float = 2.0, n: int = N) -> np.ndarray:
    s = np.random.default_rng(seed).standard_normal((n, n))
    s[np.arange(n), np.arange(n)] += signal
    return s


def _save(tmp_path: Path, name: str, scores: np.ndarray) -> Path:
    path = tmp_path / f"{name}.npy"
    np.save(path, scores)
    return path


def _meta(name: str, **kw) -> Submission:
    return Submission(benchmark="toyvtt", name=name, **kw)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- add-split and order ---------------------------------------------------------------------------------------


def _annotations(folder: Path, n: int, drop: int | None = None) -> Path:
    """An MSR-VTT-style test csv (the format SynthVTT uses) listing n clips in a scrambled order."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(1).permutation(n)
    with open(folder / "MSRVTT_JSFUSION_test.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "vid_key", "video_id", "sentence"])
        for i in order:
            if i != drop:
                writer.writerow([f"ret{i}", f"msr{i}", f"video{i}", f"clip {i} described"])
    return folder


def test_add_split_and_order_let_a_user_submit_without_python(tmp_path: Path, capsys) -> None:
    data, lb = _annotations(tmp_path / "data", 60), tmp_path / "lb"
    add = ["leaderboard", "add-split", "synthvtt", "--root", str(data), "--split", "test", "--leaderboard", str(lb)]
    assert main(add) == 0 and "Registered synthvtt/test (60 texts, 60 videos" in capsys.readouterr().out
    assert main(add) == 0 and "Already registered" in capsys.readouterr().out
    assert main(["leaderboard", "order", "synthvtt", "--root", str(lb)]) == 0
    order = json.loads(capsys.readouterr().out)
    assert order["n_texts"] == order["n_videos"] == 60 and len(order["fingerprint"]) == 64
    assert order["text_ids"][0] != "ret0"  # the manifest keeps the file's (scrambled) order, which the user needs
    assert main(["leaderboard", "order", "synthvtt", "--root", str(lb), "--format", "videos"]) == 0
    assert capsys.readouterr().out.split("\n")[:-1] == order["video_ids"]
    out = tmp_path / "texts.txt"
    assert main(["leaderboard", "order", "synthvtt", "--root", str(lb), "--format", "texts", "--out", str(out)]) == 0
    assert out.read_text().split() == order["text_ids"]

    # The user scores their captions against their videos, rows and columns in that order, and submits a .npy.
    video_of = {f"ret{i}": f"video{i}" for i in range(60)}
    column = {v: j for j, v in enumerate(order["video_ids"])}
    scores = np.random.default_rng(0).standard_normal((60, 60))
    scores[np.arange(60), [column[video_of[t]] for t in order["text_ids"]]] += 3.0
    sub = ["leaderboard", "submit", str(_save(tmp_path, "mine", scores)), "--benchmark", "synthvtt", "--root",
           str(lb)]
    assert main([*sub, "--name", "Mine"]) == 0
    (entry,) = load_entries(lb)
    assert entry.record.metrics["t2v"]["R@1"] > 50 and not entry.meta.get("chance_level")
    # The same scores with the columns sorted by video id instead of the canonical order: chance level, refused.
    shuffled = scores[:, np.argsort(order["video_ids"])]
    assert main(["leaderboard", "submit", str(_save(tmp_path, "sorted", shuffled)), "--benchmark", "synthvtt",
                 "--root", str(lb), "--name", "Sorted"]) == 2
    assert "indistinguishable from chance" in capsys.readouterr().err

    # Another version of the split is not registered over the first without --replace.
    changed = _annotations(tmp_path / "changed", 60, drop=7)
    again = ["leaderboard", "add-split", "synthvtt", "--root", str(changed), "--leaderboard", str(lb)]
    assert main(again) == 2 and "pass --replace" in capsys.readouterr().err
    assert main([*again, "--replace"]) == 0 and "Registered synthvtt/test (59 texts" in capsys.readouterr().out
    assert main(["leaderboard", "order", "nosuchbench", "--root", str(lb)]) == 2
    assert "add-split nosuchbench" in capsys.readouterr().err


# --- chance -----------------------------------------------------------------------------------------------------


def test_chance_test_is_calibrated_even_when_captions_of_a_video_rank_alike() -> None:
    # 30 videos x 10 captions; every caption of a video has the same score row (the worst case for MSVD-like splits),
    # and the columns are shuffled: a chance-level matrix. The test must rarely call it better than chance.
    n_videos, per_video, rng = 30, 10, np.random.default_rng(0)
    t2v = np.repeat(np.arange(n_videos), per_video)
    good = rng.standard_normal((n_videos, n_videos)) + 3 * np.eye(n_videos)
    passed = 0
    for _ in range(300):
        shuffled = good[:, rng.permutation(n_videos)][t2v]
        result = chance_test(rank_counts(shuffled, t2v), t2v, n_videos)
        passed += not result.at_chance
    assert passed <= 3  # about CHANCE_ALPHA x 300 = 0.3 expected (a test over independent captions passes ~1/6)
    real = good[t2v] + rng.standard_normal((len(t2v), n_videos))
    result = chance_test(rank_counts(real, t2v), t2v, n_videos)
    assert not result.at_chance and result.p < CHANCE_ALPHA and result.n_units == n_videos
    constant = np.zeros((len(t2v), n_videos))
    result = chance_test(rank_counts(constant, t2v), t2v, n_videos)
    assert result.at_chance and result.mean_rank == pytest.approx((n_videos + 1) / 2)


def test_a_chance_level_matrix_needs_allow_chance_and_is_labelled(root: Path, tmp_path: Path) -> None:
    good = _scores(0, signal=0.8)  # weak but real: accepted without a flag
    submit(_save(tmp_path, "weak", good), _meta("Weak"), root)
    (weak,) = load_entries(root)
    assert weak.meta["chance_p"] < CHANCE_ALPHA and "chance_level" not in weak.meta
    before = _files(root)
    shuffled = _save(tmp_path, "shuffled", good[:, np.random.default_rng(1).permutation(N)])
    with pytest.raises(SubmissionError, match="indistinguishable from chance.*--allow-chance"):
        submit(shuffled, _meta("Shuffled"), root)
    assert _files(root) == before
    with pytest.warns(SubmissionWarning, match="no better than chance"):
        path = submit(shuffled, _meta("Shuffled", allow_chance=True), root)
    meta = json.loads((path / "run.json").read_text())["extra"]["leaderboard"]
    assert meta["chance_level"] is True and meta["chance_p"] > CHANCE_ALPHA
    rows = {r["name"]: r for r in build_board("toyvtt", "raw", root, FAST, published=False)["rows"]}
    assert rows["Shuffled"]["chance_level"] and not rows["Weak"]["chance_level"]


# --- near-duplicates --------------------------------------------------------------------------------------------


def _near_copy(scores: np.ndarray, rows: int = 2) -> np.ndarray:
    """`scores` with the target score of a few text queries lowered: their ranks change, the rest stay."""
    copy = scores * 1.5 + 0.1  # a monotone transform keeps every rank
    copy[np.arange(rows), np.arange(rows)] -= 10.0
    return copy


def test_a_near_duplicate_needs_allow_duplicate_and_is_labelled(root: Path, tmp_path: Path, capsys) -> None:
    scores = _scores(0)
    submit(_save(tmp_path, "a", scores), _meta("Model A"), root)
    near = _save(tmp_path, "near", _near_copy(scores))
    before = _files(root)
    with pytest.raises(SubmissionError, match=r"Near-duplicate.*`Model A`.*9\d\.\d% of queries.*--allow-duplicate"):
        submit(near, _meta("Model B"), root)
    with pytest.raises(SubmissionError, match="identical"):  # the same ranks stay refused, flag or not
        submit(_save(tmp_path, "same", scores * 2), _meta("Model C", allow_duplicate=True), root)
    assert _files(root) == before
    cli = ["leaderboard", "submit", str(near), "--benchmark", "toyvtt", "--name", "Model B", "--root", str(root),
           "--allow-duplicate"]
    assert main(cli) == 0
    assert "warning: `Model B` nearly copies the ranks of `Model A`" in capsys.readouterr().err
    rows = {r["name"]: r for r in build_board("toyvtt", "raw", root, FAST, published=False)["rows"]}
    assert rows["Model B"]["near_duplicate_of"] == ["Model A"] and rows["Model A"]["near_duplicate_of"] == []


def test_agreement_is_corrected_for_models_that_rank_almost_everything_first() -> None:
    # Two different near-perfect models: they agree on > 99% of queries only because both rank nearly all first.
    n = 1000
    a, b = np.eye(n) * 10, np.eye(n) * 10
    a[np.arange(4), np.arange(4) + 1] = 20  # model A misses text queries 0..3 (and video queries 1..4)
    b[np.arange(4, 8), np.arange(4, 8) + 1] = 20  # model B misses text queries 4..7 (and video queries 5..8)
    t2v = np.arange(n)
    ranks = [{"t2v": rank_counts(s, t2v), "v2t": rank_counts(s.T, t2v)} for s in (a, b)]
    alike = agreement(*ranks)
    assert alike.observed >= 0.99 and alike.kappa < 0.5 and not alike.near_duplicate
    original, copy = _scores(0, n=n), _near_copy(_scores(0, n=n), 3)
    ranks = [{"t2v": rank_counts(s, t2v), "v2t": rank_counts(s.T, t2v)} for s in (original, copy)]
    assert agreement(*ranks).near_duplicate


# --- remove and supersede ---------------------------------------------------------------------------------------


def _removed(root: Path) -> list[Path]:
    return sorted((root / REMOVED / "toyvtt").iterdir()) if (root / REMOVED / "toyvtt").is_dir() else []


def test_remove_keeps_a_record_of_what_was_removed(root: Path, tmp_path: Path, capsys) -> None:
    for i, name in enumerate(("Model A", "Model B")):
        submit(_save(tmp_path, f"s{i}", _scores(i)), _meta(name, submitter="alice"), root)
    metrics = {e.name: e.record.metrics for e in load_entries(root)}
    before = _files(root)
    assert main(["leaderboard", "remove", "no-such-entry", "--root", str(root)]) == 2
    assert "is on any benchmark" in capsys.readouterr().err and _files(root) == before
    assert main(["leaderboard", "remove", "Model A", "--reason", "wrong split   used", "--submitter", "maintainer",
                 "--root", str(root)]) == 0
    assert "Removed `model-a` from toyvtt" in capsys.readouterr().out
    assert [e.name for e in load_entries(root)] == ["Model B"]
    (folder,) = _removed(root)
    assert folder.name.startswith("model-a--")
    record = json.loads((folder / "removal.json").read_text())
    assert record["id"] == "model-a" and record["name"] == "Model A" and record["reason"] == "wrong split used"
    assert record["removed_by"] == "maintainer" and record["submitter"] == "alice" and record["removed"]
    assert record["metrics"] == metrics["Model A"]  # JSON keeps every float exactly
    assert (folder / "entry" / "run.json").is_file() and (folder / "entry" / "ranks.npz").is_file()
    # An invalid entry (edited by hand) can be removed too; its record says why it was invalid.
    run_json = root / "entries" / "toyvtt" / "model-b" / "run.json"
    run_json.write_text(run_json.read_text().replace('"kind": "submitted"', '"kind": "bogus"'))
    assert main(["leaderboard", "remove", "model-b", "--benchmark", "toyvtt", "--root", str(root)]) == 0
    record = json.loads((_removed(root)[-1] / "removal.json").read_text())
    assert "invalid" in record and record["name"] == "Model B" and record["metrics"]["t2v"]["R@1"] > 0
    assert load_entries(root) == [] and len(_removed(root)) == 2


def test_an_interrupted_removal_is_completed_by_the_next_writer(root: Path, tmp_path: Path) -> None:
    submit(_save(tmp_path, "a", _scores(0)), _meta("Model A"), root)
    with lock(root):  # a removal killed right after moving the entry: staged, not yet given its final name
        staging = store._stage_removal(root, "toyvtt", Removal("model-a", "test", "me"))
    assert staging.name.startswith(".") and load_entries(root) == []  # off the boards at once
    (root / REMOVED / "toyvtt" / ".orphan--x.staging").mkdir()  # killed before the move: nothing to keep
    submit(_save(tmp_path, "b", _scores(1)), _meta("Model B"), root)
    (folder,) = _removed(root)
    assert not folder.name.startswith(".") and (folder / "entry" / "run.json").is_file()
    assert json.loads((folder / "removal.json").read_text())["reason"] == "test"


def test_supersedes_replaces_ones_own_entry_atomically(root: Path, tmp_path: Path, monkeypatch) -> None:
    scores = _scores(0)
    submit(_save(tmp_path, "a", scores), _meta("Model A", submitter="alice", paper="https://example.org/a"), root)
    before = _files(root)
    better = _save(tmp_path, "better", _scores(1, signal=3.0))
    for meta, message in ((_meta("Model A v2", submitter="bob", supersedes="model-a"), "only its submitter"),
                          (_meta("Model A v2", submitter="alice", supersedes="nothing"), "no valid entry `nothing`")):
        with pytest.raises(SubmissionError, match=message):
            submit(better, meta, root)
    assert _files(root) == before

    # A failed write puts the superseded entry back.
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "write_run", fail)
    with pytest.raises(OSError, match="disk full"):
        submit(better, _meta("Model A v2", submitter="alice", supersedes="Model A"), root)
    monkeypatch.undo()
    assert [e.name for e in load_entries(root)] == ["Model A"] and _removed(root) == []

    # A near copy of the entry it replaces needs no --allow-duplicate; the same name can be kept.
    with pytest.warns(SubmissionWarning, match="supersedes `Model A`"):
        path = submit(_save(tmp_path, "fix", _near_copy(scores)), _meta("Model A", submitter="alice",
                                                                         supersedes="model-a"), root)
    (entry,) = load_entries(root)
    assert entry.path == path and entry.meta["supersedes"] == "Model A" and "near_duplicate_of" not in entry.meta
    (folder,) = _removed(root)
    record = json.loads((folder / "removal.json").read_text())
    assert record["superseded_by"] == "Model A" and record["reason"] == "superseded by `Model A`"
    assert json.loads((folder / "entry" / "run.json").read_text())["extra"]["leaderboard"]["paper"]
    assert not [p for p in (root / REMOVED / "toyvtt").iterdir() if p.name.startswith(".")]
    assert os.listdir(root / "entries" / "toyvtt") == ["model-a"]
