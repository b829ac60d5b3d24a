"""The rehearsal: a miniature benchmark in its real layout (one unreadable video that the input check must name), and
`tvbench reproduce --rehearse` end to end on the real ViT-B/32 architecture under torchrun with 2 gloo processes."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.data import load_split
from benchmark.data.miniature import fabricate, read_manifest, repair
from benchmark.data.video import VideoDecodeError, probe_video
from benchmark.engine.random_weights import write_random_clip
from benchmark.presets import load_preset
from benchmark.study.rehearsal import RehearsalError, _catch_unreadable, rehearsal_sets, write_rehearsal_preset
from benchmark.study.reproduce import InputError, check_real_inputs


def test_miniature_lsmdc_has_the_real_layout_and_one_unreadable_video(tmp_path: Path) -> None:
    mini = fabricate("lsmdc", tmp_path / "lsmdc", seed=1)
    counts = {split: load_split("lsmdc", mini.root, split) for split in ("train", "val", "test")}
    assert [len(s.videos) for s in counts.values()] == [8, 3, 5]
    assert len(counts["train"].texts) > len(counts["train"].videos)  # several sentences for some clips
    assert all(Path(v.path).parent.parent.name == "avi" for s in counts.values() for v in s.videos)  # avi/<movie>/
    unreadable = []
    for video in (v for s in counts.values() for v in s.videos):
        try:
            probe_video(video.path)
        except VideoDecodeError:
            unreadable.append(video.path)
    assert unreadable == [str(mini.broken.path)] and mini.broken.path in [v.path for v in mini.videos]
    manifest = read_manifest(mini.root)
    assert {v["codec"] for v in manifest["videos"]} <= {"mpeg4", "mjpeg"} and len(manifest["videos"]) == 16
    assert any(v["width"] == 1280 and v["height"] == 720 for v in manifest["videos"])
    weights = write_random_clip(tmp_path / "w.pt", "tvbench-tiny")
    preset = load_preset("lsmdc-vitb32")
    with pytest.raises(InputError, match="1 of 16 videos are missing or unreadable"):
        check_real_inputs(preset, mini.root, weights)
    assert str(mini.broken.path) in _catch_unreadable(preset, mini.root, weights, mini.broken.path)
    repair(mini)
    probe_video(mini.root / manifest["unreadable"])
    with pytest.raises(RehearsalError, match="passed although"):
        _catch_unreadable(preset, mini.root, weights, Path(manifest["unreadable"]))


def test_rehearsal_preset_scales_only_the_data(tmp_path: Path) -> None:
    preset = load_preset("msrvtt-vitb32")
    derived = load_preset(write_rehearsal_preset(preset, tmp_path / "data", tmp_path / "p.json"))
    assert derived.name == preset.name and derived.data["holdout"]["videos"] == 2
    assert derived.data["root"] == str(tmp_path / "data") and derived.training == preset.training
    assert derived.parity == preset.parity and derived.models == preset.models
    assert "batch_size=4" in rehearsal_sets(preset, 2)  # 2 clips of 12 frames per process
    assert "batch_size=2" in rehearsal_sets(load_preset("activitynet-vitb32"), 2)  # 1 clip of 64 frames


@pytest.fixture()
def scratch() -> Iterator[Path]:
    """A folder removed afterwards (ViT-B/32 weights and checkpoints take a few GB)."""
    folder = Path(tempfile.mkdtemp(prefix="tvbench-rehearsal-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_rehearsal_of_msrvtt_end_to_end(scratch: Path) -> None:
    """The smallest real rehearsal: one trained model, 2 processes, ViT-B/32 at 224 px, 12 frames, 32 words."""
    assert main(["reproduce", "--preset", "msrvtt-vitb32", "--rehearse", "--models", "clip4clip-meanp",
                 "--out", str(scratch)]) == 0
    summary = json.loads((scratch / "rehearsal.json").read_text())
    assert summary["reload"]["identical"] and "video9005.mp4" in summary["unreadable_caught"]
    assert (scratch / "msrvtt-vitb32" / "report.md").is_file()
    assert (scratch / "leaderboard" / "index.html").is_file()
    log = (scratch / "msrvtt-vitb32" / "runs" / "clip4clip-meanp" / "seed0" / "train_log.jsonl").read_text()
    start = json.loads(log.splitlines()[0])
    assert start["world_size"] == 2 and start["steps_per_epoch"] >= 2
    record = json.loads((scratch / "msrvtt-vitb32" / "runs" / "clip4clip-meanp" / "seed0" / "record" /
                         "run.json").read_text())
    assert record["config"]["model"]["quick_gelu"] is True and record["config"]["train"]["max_frames"] == 12
    on_gpu = torch.cuda.is_available()  # on a CUDA machine the estimate comes from the measured steps
    (speed,) = summary["speed"]
    assert speed["model"] == "clip4clip-meanp" and speed["device"].startswith("cuda" if on_gpu else "cpu")
    assert speed["timed_steps"] >= 1 and speed["seconds_per_step"] > 0 and speed["peak_memory_bytes"] > 0
    assert speed["real"]["steps_per_epoch"] == 1406 and record["extra"]["step_timing"].items() <= speed.items()
    estimate = summary["estimate"]
    assert (estimate["gpu_hours_measured"] is not None) == on_gpu
    assert ("from the seconds per step measured here" if on_gpu else "not a GPU estimate") in estimate["headline"]
    assert "## Training speed and memory (measured)" in (scratch / "msrvtt-vitb32" / "report.md").read_text()
