"""`tvbench reproduce --preset P --rehearse`: the real path of a real preset, rehearsed at real scale on a machine
without the data, the weights or a GPU.

It fabricates a miniature copy of the benchmark in its real file layout (`benchmark.data.miniature`: official
annotation formats, videos of varied codecs, rates, sizes and lengths, one unreadable) and random-weight CLIP files
in both supported formats, shows that the input check catches the unreadable video, repairs it, and then runs the
real pipeline unchanged: input checks, plan and GPU-hour estimate, training under torchrun (2 gloo processes on
CPU) of every chosen variant at the preset's real architecture, frames and words (one short epoch: a few steps),
evaluation, efficiency, leaderboard and report. Finally `tvbench evaluate --checkpoint` reloads one trained run in a
fresh process and must reproduce its test metrics exactly.

Every run records its seconds per step and peak memory (`benchmark.engine.step_meter`); the rehearsal tabulates them
per variant with the real study's GPU-hour estimate. On CUDA the headline estimate comes from the measured seconds per
step, scaled per clip to the real run's steps and batch (`benchmark.study.gpu_hours.measured_gpu_hours`), with the
FLOP-based one beside it; on CPU the FLOP-based one stays the estimate (CPU step times say nothing about a GPU).

Only the data are scaled down: the derived preset (`OUT/rehearsal-preset.json`) differs from the shipped one in
its data root and hold-out size, and the run settings add epochs=1, a batch of 2 clips per process (1 for the 64-frame
presets, whose activations for 2 x 64 frames per process got an ActivityNet rehearsal killed for memory next to
other jobs) and no loader workers.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from benchmark.data.miniature import fabricate, repair
from benchmark.engine.backbone import read_state_dict
from benchmark.engine.random_weights import FORMATS, write_random_clip
from benchmark.io import write_json
from benchmark.presets import Preset, load_preset, resolve
from benchmark.registry import model_spec
from benchmark.runs import load_run
from benchmark.study.gpu_hours import REAL_TRAIN_PAIRS, TrainingScale, flop_gpu_hours, flop_note, measured_gpu_hours
from benchmark.study.reproduce import GRID, InputError, check_real_inputs, plan_runs, reproduce

HOLDOUT_VIDEOS = 2


class RehearsalError(RuntimeError):
    """A rehearsal check failed: the input check missed the unreadable video, or a reload changed the metrics."""


@dataclass
class Stopwatch:
    """Seconds per named stage, in order."""

    stages: dict[str, float] = field(default_factory=dict)
    _start: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = round(now - self._start, 1)
        self._start = now


def rehearsal_sets(preset: Preset, nproc: int) -> tuple[str, ...]:
    """The run settings of a rehearsal: one short epoch at 2 clips per process (1 for long clips), evaluation in
    small batches."""
    per_process = 2 if preset.train_config().max_frames <= 16 else 1
    return ("epochs=1", f"batch_size={per_process * nproc}", "eval_batch_size=4", "num_workers=0")


def write_rehearsal_preset(preset: Preset, data_root: Path, path: Path) -> Path:
    """The shipped preset with only its data scaled down: the fabricated data root and a 2-video hold-out. It keeps
    the shipped name, so method recipes (`glscl/presets/<name>.json`) apply as in a real run."""
    raw = json.loads(Path(preset.path).read_text(encoding="utf-8"))
    raw["data"] = {**raw["data"], "root": str(data_root)}
    if raw["data"].get("holdout"):
        raw["data"]["holdout"] = {**raw["data"]["holdout"], "videos": HOLDOUT_VIDEOS}
    raw["notes"] = {**raw.get("notes", {}), "rehearsal": (
        f"Rehearsal copy of {preset.path.name}: fabricated miniature data at {data_root}, hold-out of "
        f"{HOLDOUT_VIDEOS} videos; everything else as shipped.")}
    return write_json(path, raw)


def _weights(out: Path, backbone: str) -> dict[str, Path]:
    """Random-weight CLIP files in every supported format (reused when present), checked to hold equal tensors."""
    paths = {suffix: out / "weights" / f"{backbone}{suffix}" for suffix in FORMATS}
    for path in paths.values():
        if not path.is_file():
            write_random_clip(path, backbone, seed=0)
    states = [read_state_dict(path)[0] for path in paths.values()]
    if any(states[0].keys() != s.keys() or any(not states[0][k].equal(s[k]) for k in s) for s in states[1:]):
        raise RehearsalError(f"The random CLIP files {sorted(map(str, paths.values()))} hold different tensors.")
    return paths


def _catch_unreadable(preset: Preset, data_root: Path, weights: Path, broken: Path) -> str:
    """Run the input check on the data with the unreadable video; it must refuse and name that file."""
    try:
        check_real_inputs(preset, data_root, weights)
    except InputError as err:
        if str(broken) not in str(err):
            raise RehearsalError(f"The input check failed without naming the unreadable video {broken}: {err}") from err
        return str(err)
    raise RehearsalError(f"The input check passed although {broken} is unreadable.")


def check_reload(run_dir: Path, out_dir: Path) -> dict[str, Any]:
    """`tvbench evaluate --checkpoint RUN/checkpoints/best --split test` in a fresh process; its metrics must equal
    the run record's exactly."""
    command = [sys.executable, "-m", "benchmark", "evaluate", "--checkpoint", str(run_dir / "checkpoints" / "best"),
               "--split", "test", "--out", str(out_dir)]
    print("$", shlex.join(command))
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    trained, reloaded = load_run(run_dir / "record").metrics, load_run(out_dir).metrics
    if trained != reloaded:
        raise RehearsalError(f"Reloading {run_dir / 'checkpoints' / 'best'} changed the test metrics: {trained} "
                             f"during the run, {reloaded} after the reload.")
    return {"checkpoint": str(run_dir / "checkpoints" / "best"), "command": shlex.join(command), "metrics": reloaded,
            "identical": True}


def rehearsal_nproc(nproc: int | None) -> int:
    """The rehearsal's torchrun processes: `nproc`, by default 2, and on a CUDA machine at most its number of GPUs
    (each process trains on its own device)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    chosen = nproc or (min(2, gpus) if gpus else 2)
    if gpus and chosen > gpus:
        raise ValueError(f"--nproc {chosen} exceeds the {gpus} CUDA device(s) of this machine; each process trains on "
                         f"its own GPU, so pass --nproc {gpus} or fewer.")  # fmt: skip
    return chosen


def real_scale(preset: Preset, model: str) -> TrainingScale:
    """How much `model` trains in the real study of the shipped `preset`: its seeds, epochs, batch and frames over
    the published number of training pairs (`REAL_TRAIN_PAIRS`)."""
    cfg = resolve(preset, model).train
    pairs = REAL_TRAIN_PAIRS.get((preset.benchmark, preset.train_split))
    if pairs is None or cfg.train_pairs != "all":
        raise ValueError(f"{preset.name} / {model}: the real training size is known only for the shipped presets' "
                         f"training splits with train_pairs=all, not {preset.train_split} with {cfg.train_pairs}.")
    return TrainingScale(len(preset.train_config().seeds), cfg.epochs, pairs // cfg.batch_size, cfg.batch_size,
                         cfg.max_frames)  # fmt: skip


def speed_rows(scales: dict[str, TrainingScale], timings: dict[str, dict[str, Any]],
               backbone: str) -> list[dict[str, Any]]:
    """Per variant: its measured step timing (`extra.step_timing` of its run), its scale in the real study
    (`real_scale`), and the real study's GPU hours from FLOPs and, for steps timed on CUDA, from the measured seconds
    per step."""
    rows = []
    for model, timing in timings.items():
        scale = scales[model]
        on_gpu = timing["device"].startswith("cuda") and timing["seconds_per_step"] is not None
        measured = (measured_gpu_hours(scale, timing["seconds_per_step"], timing["batch_per_process"])
                    if on_gpu else None)  # fmt: skip
        rows.append({"model": model, **timing, "real": asdict(scale),
                     "gpu_hours_flops": flop_gpu_hours(scale, backbone), "gpu_hours_measured": measured})
    return rows


def gpu_hour_estimate(preset: Preset, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The real study's GPU hours over the rehearsed variants (`speed_rows`): from the measured steps when every
    variant was timed on CUDA, else from FLOPs; with the sentence that states it."""
    flops = sum(r["gpu_hours_flops"] for r in rows)
    timed = bool(rows) and all(r["gpu_hours_measured"] is not None for r in rows)
    measured = sum(r["gpu_hours_measured"] for r in rows) if timed else None
    seeds = rows[0]["real"]["runs"] if rows else 0
    study = f"the real {preset.name} study ({seeds} seed(s) of {', '.join(r['model'] for r in rows) or 'no model'})"
    note = flop_note(preset.backbone["name"])
    if measured is not None:
        headline = (f"Estimate for {study}: ~{measured:.1f} GPU hours from the seconds per step measured here on "
                    f"{rows[0]['device_name']}, scaled per clip from {rows[0]['batch_per_process']} clip(s) per GPU to "
                    "the real batch (an approximation: a larger batch uses a GPU better, the gathered losses grow "
                    f"with the batch, data loading is not timed). FLOP-based: ~{flops:.1f} GPU hours ({note}).")
    elif any(r["device"].startswith("cuda") for r in rows):
        headline = (f"Estimate for {study}: ~{flops:.1f} GPU hours of backbone compute ({note}). No GPU step was "
                    "timed after the warm-up step here, so there is no measured estimate.")
    else:
        headline = (f"Estimate for {study}: ~{flops:.1f} GPU hours of backbone compute ({note}). The step times "
                    "measured here are CPU times, not a GPU estimate; rehearse on a CUDA machine to measure one.")
    return {"gpu_hours_flops": flops, "gpu_hours_measured": measured, "headline": headline}


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_speed(rows: list[dict[str, Any]]) -> None:
    """The per-variant table of measured steps and the real study's estimates, on the console."""
    body = []
    for r in rows:
        real = r["real"]
        body.append([r["model"], r["device_name"], r["batch_per_process"], r["timed_steps"],
                     _number(r["seconds_per_step"], 3),
                     f"{r['peak_memory_bytes'] / 2**30:.2f} ({r['peak_memory_kind']})",
                     f"{real['runs']} x {real['epochs']} x {real['steps_per_epoch']} x {real['batch_size']}",
                     _number(r["gpu_hours_flops"]), _number(r["gpu_hours_measured"])])  # fmt: skip
    print(tabulate(body, headers=["variant", "device", "batch/process", "timed steps", "s/step", "peak GiB (kind)",
                                  "real runs x epochs x steps x batch", "GPU h (FLOPs)", "GPU h (measured)"]))


def rehearse(preset_name: str, *, out: Path, models: list[str] | None = None, nproc: int | None = None,
             seed: int = 0) -> Path:
    """Rehearse `preset_name` end to end under `out`; returns the study report's path (see the module docstring)."""
    clock = Stopwatch()
    models = list(models or GRID)
    preset = load_preset(preset_name)
    if preset.benchmark == "synthvtt":
        raise ValueError("--rehearse is for the real presets (msrvtt-vitb32, ...); synthvtt is synthetic already.")
    nproc = rehearsal_nproc(nproc)
    scales = {m: real_scale(preset, m) for m in models if model_spec(m).cls.trainable}  # an unknown one fails now
    out.mkdir(parents=True, exist_ok=True)
    data_root = (out / "data" / preset.benchmark).resolve()
    print(f"Rehearsal of {preset.name}: fabricating a miniature {preset.benchmark} under {data_root}")
    miniature = fabricate(preset.benchmark, data_root, seed=seed)
    clock.lap("fabricate data")
    weights = _weights(out.resolve(), preset.backbone["name"])
    clock.lap("random CLIP weights")
    broken = miniature.broken.path
    caught = _catch_unreadable(preset, data_root, weights[".safetensors"], broken)
    print(f"Input check caught the unreadable video as it must:\n{caught}\nRepairing {broken.name} and continuing.")
    repair(miniature, seed)
    clock.lap("input check of the unreadable file")
    derived = write_rehearsal_preset(preset, data_root, out / "rehearsal-preset.json")
    report = reproduce(str(derived), out=out, seeds=1, models=models, data_root=data_root,
                       clip_weights=weights[".safetensors"], nproc=nproc, sets=rehearsal_sets(preset, nproc))
    clock.lap("reproduce (checks, plan, torchrun training, evaluation, efficiency, leaderboard, report)")
    trained = [s for s in plan_runs(models, [0], out / preset.name / "runs") if model_spec(s.model).cls.trainable]
    reload = check_reload(trained[0].directory, out / "reload" / trained[0].model) if trained else None
    clock.lap("checkpoint reload in a fresh process")
    timings = {s.model: load_run(s.record_dir).extra["step_timing"] for s in trained}
    speed = speed_rows(scales, timings, preset.backbone["name"])
    estimate = gpu_hour_estimate(preset, speed)
    summary = {"preset": preset.name, "models": models, "nproc": nproc, "seconds": clock.stages,
               "total_seconds": round(sum(clock.stages.values()), 1), "miniature": miniature.summary(),
               "unreadable_caught": caught, "weights": {k: str(v) for k, v in weights.items()}, "reload": reload,
               "speed": speed, "estimate": estimate, "report": str(report)}
    write_json(out / "rehearsal.json", summary)
    print(f"\nRehearsal of {preset.name} passed in {summary['total_seconds']:.0f} s:")
    for stage, seconds in clock.stages.items():
        print(f"  {seconds:7.1f} s  {stage}")
    if reload:
        print(f"  reload: `tvbench evaluate --checkpoint` reproduced the test metrics of {trained[0].model} exactly")
    print("\nMeasured training steps (rank 0) and the real study's GPU hours:")
    print_speed(speed)
    print(estimate["headline"])
    return report
