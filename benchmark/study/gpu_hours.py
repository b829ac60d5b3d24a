"""GPU-hour estimates of a study's training: from counted FLOPs (the plan, before any run) or from seconds per step
measured on a GPU (a rehearsal on a CUDA machine). Pure arithmetic, unit-tested against hand-computed numbers."""

from __future__ import annotations

from dataclasses import dataclass

# FLOP estimate: fwd+bwd of one frame = 3x the forward GFLOPs of the image tower (FlopCounterMode,
# dependencies.md), at an assumed sustained 100 TFLOP/s per GPU (A100/H100-class, mixed precision).
FRAME_FWD_GFLOPS = {"ViT-B-32": 8.72, "ViT-B-16": 35.1}
SUSTAINED_TFLOPS = 100.0
# Training pairs per epoch of the real training splits (every caption a pair, train_pairs="all"; before any
# hold-out), as published (shared/reference/datasets.md section 3): what a rehearsal scales its measurements to.
REAL_TRAIN_PAIRS = {("msrvtt", "train-9k"): 180_000, ("msvd", "train"): 48_774, ("lsmdc", "train"): 101_079,
                    ("didemo", "train"): 8_392, ("activitynet", "train"): 10_009}  # fmt: skip


@dataclass(frozen=True)
class TrainingScale:
    """How much one variant trains: `runs` (seeds) x `epochs` x `steps_per_epoch` global batches of `batch_size`
    clips of `max_frames` frames."""

    runs: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    max_frames: int

    @property
    def clips(self) -> int:
        """Clips passed forward and backward over all runs."""
        return self.runs * self.epochs * self.steps_per_epoch * self.batch_size


def flop_gpu_hours(scale: TrainingScale, backbone: str) -> float:
    """GPU hours of backbone compute: every frame's fwd+bwd FLOPs at `SUSTAINED_TFLOPS` (unknown backbones count as
    ViT-B/32); data loading, the heads and evaluation are not included."""
    frame_gflops = FRAME_FWD_GFLOPS.get(backbone, FRAME_FWD_GFLOPS["ViT-B-32"])
    flops = scale.clips * scale.max_frames * 3 * frame_gflops * 1e9
    return flops / (SUSTAINED_TFLOPS * 1e12) / 3600


def flop_note(backbone: str) -> str:
    """What the FLOP estimate assumes, for printing beside it."""
    frame_gflops = FRAME_FWD_GFLOPS.get(backbone, FRAME_FWD_GFLOPS["ViT-B-32"])
    return (f"{3 * frame_gflops:.1f} GFLOPs per frame fwd+bwd at {SUSTAINED_TFLOPS:.0f} TFLOP/s sustained; data "
            "loading and evaluation not included")


def measured_gpu_hours(scale: TrainingScale, seconds_per_step: float, batch_per_process: int) -> float:
    """GPU hours from a measured step: one GPU took `seconds_per_step` for `batch_per_process` clips (of the same
    frames), so a clip costs seconds_per_step / batch_per_process GPU seconds, and the real run trains `scale.clips`
    clips, whatever its number of GPUs. Linear in the batch: an approximation (see README)."""
    return scale.clips * seconds_per_step / batch_per_process / 3600
