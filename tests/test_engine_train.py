# ruff: noqa: F811  (pytest fixtures imported from fixtures_synth are parameters by name)
"""Training on a tiny SynthVTT: resume equals an uninterrupted run, same seed -> same weights, different seed ->
different weights, a valid run record; evaluation is invariant to the scoring chunk sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_synth import synth_cache, synth_clip_weights, synth_root  # noqa: F401 (pytest fixtures)
from safetensors.torch import load_file

import benchmark.engine.train as train_module
from benchmark.engine.evaluate import encode_split
from benchmark.engine.run_setup import TrainError, carve_holdout, prepare_model_run
from benchmark.engine.scoring import score_matrix
from benchmark.engine.train import BEST, LAST, train_run
from benchmark.runs import load_run

SETS = ["batch_size=8", "max_frames=2", "eval_batch_size=16"]


def _run(out: Path, root: Path, weights: Path, seed: int = 0, epochs: int = 2, **kw) -> Path:
    kw.setdefault("keep_checkpoints", "all")  # the tests compare both checkpoints of finished runs
    return train_run("synthvtt", "clip4clip-meanp", seed, out, [*SETS, f"epochs={epochs}"], data_root=root,
                     clip_weights=str(weights), progress=False, **kw)


def _weights(run_dir: Path, which: str = LAST) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / which / "model.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Interrupted(Exception):
    pass


def test_resume_equals_uninterrupted_run(tmp_path: Path, synth_root: Path, synth_clip_weights: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    straight = tmp_path / "straight"
    record = _run(straight, synth_root, synth_clip_weights)
    run = load_run(record)
    assert run.method == "clip4clip-meanp" and run.split == "test" and run.n_texts == 10
    assert run.protocol["select_on_test"] is False and run.protocol["loss_terms"] == ["nce"]
    assert run.extra["selection"]["split"] == "val" and run.extra["selection"]["steps"] == 6
    assert (straight / "train_log.jsonl").read_text().count('"event": "validation"') == 2

    real_save = train_module.save_checkpoint

    def save_then_die(directory, *args, **kwargs):
        out = real_save(directory, *args, **kwargs)
        if str(directory).endswith(LAST):
            raise Interrupted
        return out

    interrupted = tmp_path / "interrupted"
    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        _run(interrupted, synth_root, synth_clip_weights)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    with pytest.raises(TrainError, match="--resume"):
        _run(interrupted, synth_root, synth_clip_weights)
    _run(interrupted, synth_root, synth_clip_weights, resume=True)
    assert _same(_weights(straight), _weights(interrupted))
    assert _same(_weights(straight, BEST), _weights(interrupted, BEST))
    assert load_run(interrupted / "record").metrics == run.metrics
    log = (interrupted / "train_log.jsonl").read_text()
    assert log.count('"event": "step"') == 6  # no duplicated steps after the resume


def test_other_seed_differs_and_zero_shot_skips_training(tmp_path: Path, synth_root: Path,
                                                         synth_clip_weights: Path) -> None:
    # Same seed -> identical weights is shown by the resume test (two runs of seed 0 end bit-identical).
    a, c = tmp_path / "a", tmp_path / "c"
    _run(a, synth_root, synth_clip_weights, seed=0, epochs=1)
    _run(c, synth_root, synth_clip_weights, seed=1, epochs=1)
    assert not _same(_weights(a), _weights(c))
    zero = train_run("synthvtt", "clip-zeroshot", 0, tmp_path / "zs", SETS, data_root=synth_root,
                     clip_weights=str(synth_clip_weights), progress=False)
    record = load_run(zero)
    assert record.extra["trained"] is False and not (tmp_path / "zs" / "checkpoints").exists()


def test_scores_invariant_to_chunk_sizes(synth_root: Path, synth_clip_weights: Path) -> None:
    setup = prepare_model_run(model_name="clip4clip-seqtransf", preset="synthvtt", sets=["max_frames=2"],
                              data_root=synth_root, clip_weights=str(synth_clip_weights), seed=0)
    split = setup.split("test")
    texts, videos = encode_split(setup.model, split, setup.video_cfg, setup.tokenizer, 4, "cpu")
    assert len(texts["text"] if "text" in texts else next(iter(texts.values()))) == len(split.texts)
    full = score_matrix(setup.model, texts, videos, 1000, 1000)
    for chunks in ((1, 1), (3, 4), (7, 2)):
        np.testing.assert_allclose(score_matrix(setup.model, texts, videos, *chunks), full, rtol=1e-5, atol=1e-6)
    again_t, again_v = encode_split(setup.model, split, setup.video_cfg, setup.tokenizer, 3, "cpu")
    np.testing.assert_allclose(score_matrix(setup.model, again_t, again_v, 5, 5), full, rtol=1e-5, atol=1e-6)


def test_holdout_is_deterministic_and_disjoint(synth_root: Path) -> None:
    from benchmark.data import load_split

    train = load_split("synthvtt", synth_root, "train")
    a_train, a_val = carve_holdout(train, 5, captions_per_video=1, seed=0)
    b_train, b_val = carve_holdout(train, 5, captions_per_video=1, seed=0)
    assert a_val.fingerprint == b_val.fingerprint and a_train.fingerprint == b_train.fingerprint
    assert len(a_val.videos) == 5 and len(a_val.texts) == 5
    assert not set(a_val.video_ids) & set(a_train.video_ids)
    assert len(a_train.texts) + sum(1 for t in train.texts if t.video_id in set(a_val.video_ids)) == len(train.texts)
    assert carve_holdout(train, 5, seed=1)[1].fingerprint != a_val.fingerprint


def test_resume_drops_a_torn_log_tail_and_names_the_file_otherwise(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    log = tmp_path / train_module.LOG_FILE
    whole = '{"event": "step", "step": 1}\n{"event": "step", "step": 2}\n{"event": "step", "step": 3}\n'
    log.write_text(whole + '{"event": "st')  # a write cut short by kill -9
    train_module.JsonlLog(log, True, keep_until_step=2)
    entries = [entry for _, entry in train_module.read_log(log)[0]]
    assert [e["step"] for e in entries] == [1, 2, 2] and entries[-1]["event"] == "torn_line_dropped"
    assert "dropped a torn last line" in capsys.readouterr().err
    log.write_text('{"event": "step", "step": 1}\n{"event": \n{"event": "step", "step": 2}\n')
    with pytest.raises(TrainError, match=rf"`{log}` line 2 is not JSON"):
        train_module.JsonlLog(log, True, keep_until_step=2)
