"""Run records: round trip, schema validation, and tamper detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.split import Split, TextRecord, VideoRecord
from benchmark.metrics import evaluate_scores
from benchmark.runs import RunRecordError, load_run, load_scores, make_record, write_run


@pytest.fixture()
def split() -> Split:
    videos = [VideoRecord(f"v{i}", f"v{i}.mp4") for i in range(6)]
    texts = [TextRecord(f"t{i}", f"caption {i}", f"v{i % 6}") for i in range(9)]
    return Split("toy", "test", videos, texts)


@pytest.fixture()
def run_dir(tmp_path: Path, split: Split) -> Path:
    scores = np.random.default_rng(0).standard_normal((9, 6)).astype(np.float32)
    record = make_record(method="toy-model", config={"d": 4}, split=split,
                         result=evaluate_scores(scores, split.text_to_video), seed=3)
    return write_run(record, tmp_path / "run", scores=scores)


def test_round_trip(run_dir: Path, split: Split) -> None:
    record = load_run(run_dir)
    assert record.fingerprint == split.fingerprint and record.seed == 3 and record.method == "toy-model"
    assert len(record.ranks["t2v"]) == 9 and len(record.ranks["v2t"]) == 6
    assert record.protocol == {"ties": "random", "v2t": "max-over-captions", "post_processing": "none",
                               "select_on_test": False}
    assert set(record.provenance) >= {"git_commit", "packages", "device", "date", "command"}
    assert load_scores(run_dir).shape == (9, 6)
    assert sorted(p.name for p in run_dir.iterdir()) == ["ranks.npz", "run.json", "sim.npy"]


def _edit(run_dir: Path, change) -> None:  # noqa: ANN001
    doc = json.loads((run_dir / "run.json").read_text())
    change(doc)
    (run_dir / "run.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["metrics"]["t2v"].__setitem__("R@1", 99.0), "the ranks give"),
        (lambda d: d.pop("fingerprint"), "missing required field `fingerprint`"),
        (lambda d: d.__setitem__("fingerprint", "abc"), "64 lowercase hex"),
        (lambda d: d.__setitem__("n_texts", 10), "expected 10"),
        (lambda d: d["protocol"].__setitem__("ties", "median"), "protocol `ties`"),
        (lambda d: d.__setitem__("schema_version", 99), "is not tvbench.run v1"),
        (lambda d: d["metrics"]["v2t"].pop("MnR"), "exactly R@1"),
    ],
)
def test_tampered_run_json_fails(run_dir: Path, change, message: str) -> None:  # noqa: ANN001
    _edit(run_dir, change)
    with pytest.raises(RunRecordError, match=message):
        load_run(run_dir)


def test_swapped_ranks_fail(run_dir: Path, tmp_path: Path, split: Split) -> None:
    other = make_record(method="x", config={}, split=split,
                        result=evaluate_scores(np.ones((9, 6)), split.text_to_video))
    other_dir = write_run(other, tmp_path / "other")
    (run_dir / "ranks.npz").write_bytes((other_dir / "ranks.npz").read_bytes())
    with pytest.raises(RunRecordError, match="does not match"):
        load_run(run_dir)


def test_missing_and_invalid_files(run_dir: Path) -> None:
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(RunRecordError, match="not valid JSON"):
        load_run(run_dir)
    (run_dir / "ranks.npz").unlink()
    with pytest.raises(RunRecordError, match="ranks.npz` is missing"):
        load_run(run_dir)


def test_shape_mismatch_with_split_is_refused(split: Split) -> None:
    with pytest.raises(RunRecordError, match="has 9 texts and 6 videos"):
        make_record(method="m", config={}, split=split, result=evaluate_scores(np.eye(6)))


def test_rewriting_a_run_replaces_it_atomically(run_dir: Path, split: Split) -> None:
    record = load_run(run_dir)
    record.seed = 4
    write_run(record, run_dir)
    assert load_run(run_dir).seed == 4 and not (run_dir / "sim.npy").exists()
    assert [p.name for p in run_dir.parent.iterdir() if p.name.startswith(".")] == []


def test_impossible_rank_counts_are_refused(split: Split, tmp_path: Path) -> None:
    from benchmark.metrics import QueryRanks

    result = evaluate_scores(np.eye(6)[np.arange(9) % 6], split.text_to_video)
    record = make_record(method="m", config={}, split=split, result=result)
    record.ranks["v2t"] = QueryRanks(np.full(6, 7), np.zeros(6, dtype=np.int64), np.ones(6, dtype=np.int64))
    with pytest.raises(RunRecordError, match="exceed the 6 candidates"):
        write_run(record, tmp_path / "bad")
    with pytest.raises(ValueError, match="integer arrays"):
        QueryRanks(np.array([0.9]), np.array([0]), np.array([1]))
