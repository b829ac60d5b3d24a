"""Seconds per training step and peak memory of one training process, recorded in the run record
(``extra.step_timing``) and the training log (event ``step_timing``), so that a run says how fast it trained.

The first `WARMUP_STEPS` steps are left out of the timing (lazy initialisation, kernel selection, allocator growth and
the optimizer's state are paid there). On CUDA each timed step is bracketed by ``torch.cuda.synchronize`` so that its
asynchronous kernels are counted, and the peak is CUDA's allocator peak since the start of training (validation
included); on CPU nothing is synchronised (kernels run synchronously) and the peak is the process's peak resident set
size since the process started (``resource.getrusage``), which also counts loading and model building.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

WARMUP_STEPS = 1
CUDA_PEAK = "cuda_max_memory_allocated"  # torch.cuda.max_memory_allocated since the start of training
CPU_PEAK = "cpu_process_peak_rss"  # ru_maxrss of the process since it started (not resettable)


def peak_memory(device: torch.device) -> dict[str, Any]:
    """The peak memory of this process on `device`: bytes and what kind of peak it is (see the module docstring)."""
    if device.type == "cuda":
        return {"peak_memory_kind": CUDA_PEAK, "peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)),
                "peak_memory_reserved_bytes": int(torch.cuda.max_memory_reserved(device))}  # fmt: skip
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB on Linux
    return {"peak_memory_kind": CPU_PEAK, "peak_memory_bytes": maxrss * (1 if sys.platform == "darwin" else 1024)}


class StepMeter:
    """Times each optimiser step of one process (`with meter.step(): ...`) and summarises them with its peak memory."""

    def __init__(self, device: torch.device, warmup: int = WARMUP_STEPS) -> None:
        self.device, self.warmup = device, warmup
        self.seconds: list[float] = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def step(self) -> Iterator[None]:
        """Time the enclosed step (wall clock; on CUDA from an idle device until its kernels have finished)."""
        self._sync()
        began = time.perf_counter()
        yield
        self._sync()
        self.seconds.append(time.perf_counter() - began)

    @property
    def last(self) -> float:
        """Seconds of the latest step."""
        return self.seconds[-1]

    def summary(self, batch_per_process: int, world_size: int) -> dict[str, Any]:
        """Stable keys: device, batch per process, steps timed (after the warm-up), mean and median seconds per step
        (None when no step was left after the warm-up) and the peak memory of this process."""
        timed = self.seconds[self.warmup :]
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {
            "device": str(self.device), "device_name": name, "world_size": world_size,
            "batch_per_process": batch_per_process, "steps": len(self.seconds), "warmup_steps": self.warmup,
            "timed_steps": len(timed), "seconds_per_step": statistics.fmean(timed) if timed else None,
            "seconds_per_step_median": statistics.median(timed) if timed else None, **peak_memory(self.device),
        }  # fmt: skip
