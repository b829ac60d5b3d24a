# ruff: noqa: F811  (pytest fixtures imported from fixtures_synth are parameters by name)
"""Step timing and peak memory: the warm-up is left out, CPU steps are never synchronised, a tiny run records its
timing in the run record (which the leaderboard accepts) and the training log, and (on a CUDA machine only) the CUDA
peak is reset at the start."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from fixtures_synth import synth_cache, synth_clip_weights, synth_root  # noqa: F401 (pytest fixtures)

from benchmark.data import load_split
from benchmark.engine import step_meter
from benchmark.engine.step_meter import CPU_PEAK, CUDA_PEAK, StepMeter
from benchmark.engine.train import LOG_FILE, train_run
from benchmark.runs import load_run
from leaderboard.splits import register_split_manifest
from leaderboard.submit import Submission, SubmissionWarning, submit


def test_meter_leaves_out_the_warmup_and_never_synchronises_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 5.0, 10.0, 11.0, 20.0, 23.0])  # steps of 5 s (warm-up), 1 s and 3 s
    monkeypatch.setattr(step_meter.time, "perf_counter", lambda: next(clock))

    def no_sync(*args: object) -> None:
        raise AssertionError("a CPU step must not synchronise")

    monkeypatch.setattr(torch.cuda, "synchronize", no_sync)
    meter = StepMeter(torch.device("cpu"))
    for _ in range(3):
        with meter.step():
            pass
    assert meter.last == 3.0
    summary = meter.summary(batch_per_process=4, world_size=2)
    assert summary["steps"] == 3 and summary["timed_steps"] == 2 and summary["warmup_steps"] == 1
    assert summary["seconds_per_step"] == 2.0 and summary["seconds_per_step_median"] == 2.0
    assert summary["device"] == "cpu" and summary["batch_per_process"] == 4 and summary["world_size"] == 2
    assert summary["peak_memory_kind"] == CPU_PEAK and summary["peak_memory_bytes"] > 2**20
    only_warmup = StepMeter(torch.device("cpu"))
    only_warmup.seconds.append(1.0)
    assert only_warmup.summary(1, 1)["seconds_per_step"] is None


def test_a_tiny_run_records_step_times_and_peak_memory(tmp_path: Path, synth_root: Path,
                                                       synth_clip_weights: Path) -> None:
    record = train_run("synthvtt", "clip4clip-meanp", 0, tmp_path, ["batch_size=8", "max_frames=2", "epochs=1",
                       "eval_batch_size=16"], data_root=synth_root, clip_weights=str(synth_clip_weights),
                       progress=False)  # fmt: skip
    timing = load_run(record).extra["step_timing"]
    assert timing["steps"] == 3 and timing["timed_steps"] == 2 and timing["batch_per_process"] == 8
    assert timing["seconds_per_step"] > 0 and timing["seconds_per_step_median"] > 0
    assert timing["device"] == "cpu" and timing["peak_memory_kind"] == CPU_PEAK and timing["peak_memory_bytes"] > 0
    events = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert all(e["seconds"] > 0 for e in events if e["event"] == "step")
    logged = [e for e in events if e["event"] == "step_timing"]
    assert len(logged) == 1 and {k: v for k, v in logged[0].items() if k not in ("event", "step")} == timing
    board = tmp_path / "leaderboard"  # the leaderboard accepts the record with its timing, as `reproduce` submits it
    register_split_manifest(board, load_split("synthvtt", synth_root, "test"))
    meta = Submission(benchmark="synthvtt", name="timed", seed=0, kind="reproduced", method="clip4clip-meanp",
                      allow_chance=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SubmissionWarning)  # a 3-step run may be at chance level
        submit(record, meta, board)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_is_reset_at_the_start_and_counts_the_step() -> None:
    device = torch.device("cuda")
    before = torch.empty(64 * 2**20, dtype=torch.uint8, device=device)  # 64 MiB, freed before the meter starts
    del before
    held = torch.cuda.memory_allocated(device)  # whatever else this process still holds
    meter = StepMeter(device)
    with meter.step():
        a = torch.ones(1024, 1024, device=device)  # 4 MiB
        (a @ a).sum().item()
    summary = meter.summary(1, 1)
    assert summary["peak_memory_kind"] == CUDA_PEAK and summary["device"].startswith("cuda")
    assert held + 4 * 2**20 <= summary["peak_memory_bytes"] < held + 64 * 2**20
    assert summary["peak_memory_reserved_bytes"] >= summary["peak_memory_bytes"] and meter.last > 0
