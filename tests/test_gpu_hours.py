"""The GPU-hour arithmetic against hand-computed numbers, the real training sizes against the real annotation files,
and the rehearsal's estimate: measured on CUDA, FLOP-based on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmark.data import load_split
from benchmark.presets import list_presets, load_preset
from benchmark.study.gpu_hours import REAL_TRAIN_PAIRS, TrainingScale, flop_gpu_hours, measured_gpu_hours
from benchmark.study.rehearsal import gpu_hour_estimate, real_scale, rehearsal_nproc, speed_rows

# MSR-VTT 9k at the paper's recipe: 3 seeds x 5 epochs x 1,406 steps of 128 clips of 12 frames = 2,699,520 clips.
MSRVTT = TrainingScale(runs=3, epochs=5, steps_per_epoch=1406, batch_size=128, max_frames=12)


def test_gpu_hours_by_hand() -> None:
    assert MSRVTT.clips == 2_699_520
    # 2,699,520 clips x 12 frames x 3 x 8.72 GFLOPs = 8.474333184e17 FLOPs; / 1e14 FLOP/s = 8,474.333184 s.
    assert flop_gpu_hours(MSRVTT, "ViT-B-32") == pytest.approx(8474.333184 / 3600, rel=1e-12)
    # 0.5 s per step of 2 clips on one GPU = 0.25 s per clip; x 2,699,520 clips = 674,880 s = 187.466... h.
    assert measured_gpu_hours(MSRVTT, 0.5, 2) == pytest.approx(674_880 / 3600, rel=1e-12)
    assert measured_gpu_hours(MSRVTT, 0.5, 1) == pytest.approx(2 * 674_880 / 3600, rel=1e-12)


def test_every_real_preset_has_its_real_training_size() -> None:
    for name in list_presets():
        preset = load_preset(name)
        if preset.benchmark != "synthvtt":
            assert (preset.benchmark, preset.train_split) in REAL_TRAIN_PAIRS, name
    assert real_scale(load_preset("msrvtt-vitb32"), "clip4clip-meanp") == MSRVTT
    with pytest.raises(ValueError, match="train_pairs=all, not train with one-per-video"):
        real_scale(load_preset("synthvtt"), "clip4clip-meanp")


def test_real_training_sizes_match_the_real_annotation_files(realdata: Path) -> None:
    assert len(load_split("msvd", realdata / "msvd", "train").texts) == REAL_TRAIN_PAIRS[("msvd", "train")]
    assert len((realdata / "didemo" / "train_list.txt").read_text().split()) == REAL_TRAIN_PAIRS[("didemo", "train")]
    msrvtt_videos = len((realdata / "msrvtt" / "MSRVTT_train.9k.csv").read_text().split()) - 1  # header
    assert 20 * msrvtt_videos == REAL_TRAIN_PAIRS[("msrvtt", "train-9k")]  # 20 captions per video


def _timing(device: str, seconds: float | None) -> dict:
    return {"device": device, "device_name": "NVIDIA H100" if device.startswith("cuda") else "cpu", "world_size": 2,
            "batch_per_process": 2, "steps": 4, "warmup_steps": 1, "timed_steps": 3, "seconds_per_step": seconds,
            "seconds_per_step_median": seconds, "peak_memory_kind": "x", "peak_memory_bytes": 3 * 2**30}


def test_rehearsal_estimate_from_cuda_steps_replaces_the_flop_one() -> None:
    preset = load_preset("msrvtt-vitb32")
    rows = speed_rows({"clip4clip-meanp": MSRVTT}, {"clip4clip-meanp": _timing("cuda:0", 0.5)}, "ViT-B-32")
    assert rows[0]["gpu_hours_measured"] == pytest.approx(674_880 / 3600)
    assert rows[0]["real"]["steps_per_epoch"] == 1406 and rows[0]["batch_per_process"] == 2
    estimate = gpu_hour_estimate(preset, rows)
    assert estimate["gpu_hours_measured"] == pytest.approx(187.4667, abs=1e-4)
    assert estimate["headline"].startswith("Estimate for the real msrvtt-vitb32 study (3 seed(s) of clip4clip-meanp):"
                                           " ~187.5 GPU hours from the seconds per step measured here on NVIDIA H100")
    assert "FLOP-based: ~2.4 GPU hours" in estimate["headline"]
    json.dumps(rows)  # goes into rehearsal.json


def test_rehearsal_on_cpu_keeps_the_flop_estimate() -> None:
    preset = load_preset("msrvtt-vitb32")
    cases = {"not a GPU estimate": _timing("cpu", 40.0), "No GPU step was timed": _timing("cuda:0", None)}
    for why, timing in cases.items():  # CPU steps, or no GPU step timed after the warm-up
        scales = {m: real_scale(preset, m) for m in ("clip4clip-meanp", "glscl")}
        rows = speed_rows(scales, dict.fromkeys(scales, timing), preset.backbone["name"])
        estimate = gpu_hour_estimate(preset, rows)
        assert rows[0]["gpu_hours_measured"] is None and estimate["gpu_hours_measured"] is None
        assert estimate["gpu_hours_flops"] == pytest.approx(sum(r["gpu_hours_flops"] for r in rows))
        assert f"~{estimate['gpu_hours_flops']:.1f} GPU hours of backbone compute" in estimate["headline"]
        assert why in estimate["headline"]


def test_rehearsal_processes_on_a_cuda_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert rehearsal_nproc(None) == 2 and rehearsal_nproc(3) == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert rehearsal_nproc(None) == 1
    with pytest.raises(ValueError, match="--nproc 2 exceeds the 1 CUDA device"):
        rehearsal_nproc(2)
