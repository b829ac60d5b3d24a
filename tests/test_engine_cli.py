# ruff: noqa: F811  (pytest fixtures imported from fixtures_synth are parameters by name)
"""`tvbench pretrain`, `tvbench train` and `tvbench evaluate` end to end on a tiny SynthVTT (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fixtures_synth import TINY_PRETRAIN, synth_cache, synth_clip_weights, synth_root  # noqa: F401 (fixtures)

from benchmark.runs import load_run


def _tvbench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_pretrain_train_evaluate_cli(tmp_path: Path, synth_root: Path, synth_cache: Path,
                                     synth_clip_weights: Path) -> None:
    done = _tvbench("pretrain", "--data", str(synth_root), "--steps", str(TINY_PRETRAIN.steps),
                    "--batch-size", str(TINY_PRETRAIN.batch_size), "--cache-dir", str(synth_cache.parent))
    weights = Path(done.stdout.strip().splitlines()[-1])
    assert weights == synth_clip_weights and weights.suffix == ".safetensors"  # same settings -> cache hit
    assert "i2t_R@1" in done.stdout

    out = tmp_path / "run"
    _tvbench("train", "--preset", "synthvtt", "--model", "clip4clip-meanp", "--seed", "3", "--out", str(out),
             "--data-root", str(synth_root), "--clip-weights", str(weights), "--set", "batch_size=8",
             "--set", "max_frames=2", "--max-steps", "2", "--select-on-test", "--quiet")
    trained = load_run(out / "record")
    assert trained.seed == 3 and trained.protocol["select_on_test"] is True
    # --keep-checkpoints best (the default): the resumable state goes once the record is written
    assert (out / "checkpoints" / "best").is_dir() and not (out / "checkpoints" / "last").exists()
    assert trained.extra["selection"]["split"] == "test"

    evaluated = tmp_path / "eval"
    _tvbench("evaluate", "--checkpoint", str(out / "checkpoints" / "best"), "--split", "test", "--out",
             str(evaluated), "--save-scores", "--set", "chunk_texts=3")
    again = load_run(evaluated)
    assert again.metrics == trained.metrics and again.fingerprint == trained.fingerprint
    assert (evaluated / "sim.npy").is_file()



def test_train_glscl_from_the_cli(tmp_path: Path, synth_root: Path, synth_clip_weights: Path) -> None:
    out = tmp_path / "glscl"
    _tvbench("train", "--preset", "synthvtt", "--model", "glscl", "--seed", "0", "--out", str(out),
             "--data-root", str(synth_root), "--clip-weights", str(synth_clip_weights), "--set", "batch_size=8",
             "--set", "max_frames=2", "--max-steps", "2", "--quiet")
    record = load_run(out / "record")
    assert record.method == "glscl" and record.extra["trained"] is True
    assert record.config["model"]["num_queries"] == 4  # glscl/presets/synthvtt.json was merged
    logged = [json.loads(line) for line in (out / "train_log.jsonl").open()]
    terms = {key.split("/", 1)[1] for entry in logged for key in entry if key.startswith("loss/")}
    assert terms == {"nce", "icl", "idl"}
