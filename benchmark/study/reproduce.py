"""``tvbench reproduce``: the whole study for a preset, end to end and resumable.

SynthVTT (default): generate the data, pretrain the tiny backbone, train and evaluate the grid of methods and
ablations over seeds (at every encoder of the preset's `encoders` axis, when it has one), measure efficiency, fill a
local leaderboard and write the study report with its calibration table (`benchmark.study.calibration`). Real presets:
check every input first, print the plan and a GPU-hour estimate, then run each training under torchrun (DDP).
`--models A,B,...` runs the grid of the chosen models instead (plugins included, with `--include`); caches
(pretrained backbones, efficiency counts) live in the cache folder (`$XDG_CACHE_HOME/tvbench` or `--cache-dir`).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from benchmark.data import load_split
from benchmark.data.video import VideoDecodeError, probe_video
from benchmark.io import write_json, write_text
from benchmark.paths import cache_dir
from benchmark.presets import PRESET_DIR, Preset, load_preset, resolve
from benchmark.registry import model_spec
from benchmark.runs import RunRecord, load_run, write_run
from benchmark.study.gpu_hours import TrainingScale, flop_gpu_hours, flop_note
from benchmark.study.run_pool import RUN_THREADS, run_all, usable_cpus

if TYPE_CHECKING:
    from benchmark.study.calibration import Row

GRID = (
    "clip-zeroshot", "clip4clip-meanp", "clip4clip-seqtransf", "xpool",
    "glscl", "glscl-no-icl", "glscl-no-idl", "glscl-no-aux", "glscl-global-only",
    "glccl", "glccl-no-csc", "glccl-video-only",
)  # fmt: skip
SYNTH_PRESET = "synthvtt"
# --quick: a small SynthVTT and short training, for the end-to-end test (numbers are not meaningful).
QUICK_DATA = {"n_train": 64, "n_val": 12, "n_test": 24, "n_images": 256}
QUICK_PRETRAIN_STEPS = 15
QUICK_SETS = ("epochs=1", "batch_size=16")


class InputError(FileNotFoundError):
    """Inputs of a real preset are missing or unreadable; the message lists every problem found."""


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: a model, a seed, and the folder its run lives in."""

    model: str
    seed: int
    directory: Path

    @property
    def record_dir(self) -> Path:
        return self.directory / "record"


def plan_runs(models: list[str], seeds: list[int] | Callable[[str], list[int]], runs_dir: Path) -> list[RunSpec]:
    """The grid: every model with every seed (`seeds`, or `seeds(model)` per model), untrained models (zero-shot)
    once."""
    specs = []
    for model in models:
        all_seeds = seeds(model) if callable(seeds) else seeds
        model_seeds = all_seeds if model_spec(model).cls.trainable else all_seeds[:1]
        specs += [RunSpec(model, s, runs_dir / model / f"seed{s}") for s in model_seeds]
    return specs


def run_key(preset: Preset, spec: RunSpec, sets: tuple[str, ...], weights: str | None, in_process: bool = False) -> str:
    """What makes a run: the preset's data/eval/backbone settings, the merged model and training config (not the
    study's list of seeds: adding seeds never redoes a finished run), the seed, the weights (not the preset's notes)
    and, for in-process runs, their thread count; a finished run with the same key is not redone."""
    resolved = resolve(preset, spec.model, list(sets))
    train = {k: v for k, v in asdict(resolved.train).items() if k != "seeds"}
    blob = json.dumps(
        {"benchmark": preset.benchmark, "data": preset.data, "eval": preset.eval, "backbone": preset.backbone,
         "model": spec.model, "config": resolved.model, "train": train, "seed": spec.seed,
         "weights": weights, **({"threads": RUN_THREADS} if in_process else {})},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()


FINISHED_KEY, STARTED_KEY = "run_key.txt", "started_key.txt"


def _has_key(path: Path, key: str) -> bool:
    return path.is_file() and path.read_text().strip() == key


def finished(spec: RunSpec, key: str) -> bool:
    """Whether `spec` already has a valid record made with `key`."""
    if not _has_key(spec.directory / FINISHED_KEY, key):
        return False
    try:
        load_run(spec.record_dir)
    except ValueError:
        return False
    return True


def begin_run(spec: RunSpec, key: str) -> bool:
    """Prepare `spec`'s folder for a run with `key`; returns whether an interrupted run with the same key can be
    resumed from its checkpoints. A folder left by a different key (changed preset or config) is cleared first."""
    resumable = _has_key(spec.directory / STARTED_KEY, key) and (spec.directory / "checkpoints" / "last").is_dir()
    if not resumable and spec.directory.exists():
        shutil.rmtree(spec.directory)
    spec.directory.mkdir(parents=True, exist_ok=True)
    (spec.directory / STARTED_KEY).write_text(key + "\n")
    return resumable


def prepare_synthvtt(out: Path, quick: bool, preset: Preset, cache: Path) -> tuple[Path, str]:
    """Generate SynthVTT (if absent) and pretrain the tiny backbone (cached by config hash in `cache`/backbones):
    (data root, weights)."""
    from dataclasses import replace

    from benchmark.data.synthvtt import generate
    from benchmark.engine.pretrain import backbone_cache, ensure_pretrained, pretrain_config

    data_root = out / "data" / ("synthvtt-quick" if quick else Path(preset.data["root"]).name)
    result = generate(data_root, **(QUICK_DATA if quick else preset.data.get("generate", {})))
    print(f"SynthVTT at {data_root} ({'reused' if result.skipped else f'generated in {result.seconds:.0f} s'})")
    config = pretrain_config(preset)
    config = replace(config, steps=QUICK_PRETRAIN_STEPS) if quick else config
    weights = ensure_pretrained(data_root, config, cache=backbone_cache(cache))
    return data_root, str(weights)


def check_real_inputs(preset: Preset, data_root: Path | None, clip_weights: Path | None, probe: bool = True) -> dict:
    """Every input of a real preset, checked before any work: annotation files of each split, every video readable,
    the weights file. Raises InputError listing all problems; returns the loaded splits."""
    from benchmark.engine.backbone import weights_download_hint
    from benchmark.engine.weights_file import WeightsFileError, require_loadable

    problems = []
    if data_root is None or not Path(data_root).is_dir():
        problems.append(f"data root `{data_root}` does not exist: pass --data-root DIR with the {preset.benchmark} "
                        f"files (see README 'Pointing a loader at a real download').")  # fmt: skip
    if clip_weights is None or not Path(clip_weights).is_file():
        problems.append(f"CLIP weights file `{clip_weights}` does not exist: pass --clip-weights FILE. "
                        + weights_download_hint(preset.backbone.get("name", "ViT-B-32")))  # fmt: skip
    else:
        try:
            require_loadable(clip_weights)  # format only (cheap); refuses TorchScript archives with the conversion
        except WeightsFileError as err:
            problems.append(str(err))
    splits: dict[str, Any] = {}
    if data_root is not None and Path(data_root).is_dir():
        roles = (preset.data.get("train"), preset.data.get("val"), preset.test_split)
        for role in dict.fromkeys(r for r in roles if r):
            try:
                splits[role] = load_split(preset.benchmark, data_root, role)
            except (OSError, ValueError, KeyError) as err:
                problems.append(f"split `{role}`: {err}")
    if probe and not problems:
        videos = {v.id: v for split in splits.values() for v in split.videos}
        bad = []
        for video in tqdm(videos.values(), desc="checking videos", unit="video"):
            try:
                probe_video(video.path)
            except VideoDecodeError as err:
                bad.append(str(err))
        if bad:
            problems.append(f"{len(bad)} of {len(videos)} videos are missing or unreadable, e.g.: "
                            + "; ".join(bad[:5]))
    if problems:
        raise InputError("Cannot start the study:\n  - " + "\n  - ".join(problems))
    return splits


def print_plan(preset: Preset, specs: list[RunSpec], train_split: Any, nproc: int,
               sets: tuple[str, ...] = ()) -> None:
    """Runs, seeds and steps of every run (its merged recipe: per-model batch sizes and `--set` values included), and
    an estimate of GPU hours from the backbone's counted FLOPs."""
    from benchmark.engine.train import steps_per_epoch

    backbone = preset.backbone["name"]
    trained = [s for s in specs if model_spec(s.model).cls.trainable]
    print(f"Plan for preset {preset.name}: {len(specs)} runs ({len(trained)} trained), seeds "
          f"{sorted({s.seed for s in specs})}, on {nproc} GPU(s):")  # fmt: skip
    gpu_hours = 0.0
    for model in dict.fromkeys(s.model for s in trained):
        cfg = resolve(preset, model, list(sets)).train
        scale = TrainingScale(sum(s.model == model for s in trained), cfg.epochs, steps_per_epoch(train_split, cfg),
                              cfg.batch_size, cfg.max_frames)
        gpu_hours += flop_gpu_hours(scale, backbone)
        print(f"  {model}: {scale.runs} run(s) x {cfg.epochs} epoch(s) x {scale.steps_per_epoch} steps of batch "
              f"{cfg.batch_size}, {cfg.max_frames} frames, {cfg.max_words} words")
    print(f"Estimate: ~{gpu_hours:.1f} GPU hours of backbone compute ({flop_note(backbone)}).")


@dataclass(frozen=True)
class Launch:
    """How each run of a study is launched: in this process (`nproc` None) or under torchrun, and the options every
    run shares (plugin files, checkpoints kept)."""

    nproc: int | None = None
    includes: tuple[str, ...] = ()
    keep_checkpoints: str = "best"


@dataclass(frozen=True)
class RunTask:
    """A run still to do, with everything a worker process needs to do it."""

    spec: RunSpec
    key: str
    resume: bool
    preset: Preset
    data_root: Path
    weights: str | None
    sets: tuple[str, ...]
    launch: Launch

    def label(self) -> str:
        return f"{self.spec.model} seed {self.spec.seed}{' (resumed)' if self.resume else ''}"


def run_task(task: RunTask) -> None:
    """Do one pending run and mark it finished with its key (module level: worker processes call it)."""
    execute(task.spec, task.preset, task.data_root, task.weights, task.sets, task.launch, task.resume)
    (task.spec.directory / FINISHED_KEY).write_text(task.key + "\n")


def execute(spec: RunSpec, preset: Preset, data_root: Path, weights: str | None, sets: tuple[str, ...],
            launch: Launch, resume: bool) -> None:
    """Train and evaluate one run: in this process, or under torchrun with `launch.nproc` processes."""
    if launch.nproc is None:
        from benchmark.engine.train import train_run

        train_run(preset, spec.model, spec.seed, spec.directory, sets, data_root=data_root, clip_weights=weights,
                  resume=resume, progress=False, keep_checkpoints=launch.keep_checkpoints)  # fmt: skip
        return
    shipped = preset.path is None or preset.path.parent.resolve() == PRESET_DIR.resolve()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={launch.nproc}",
               "-m", "benchmark", "train", "--preset", preset.name if shipped else str(preset.path),
               "--model", spec.model, "--seed", str(spec.seed), "--out", str(spec.directory),
               "--data-root", str(data_root), "--quiet", "--keep-checkpoints", launch.keep_checkpoints]  # fmt: skip
    command += ["--clip-weights", weights] if weights else []
    command += [arg for path in launch.includes for arg in ("--include", path)]
    command += [arg for s in sets for arg in ("--set", s)]
    command += ["--resume"] if resume else []
    print("$", shlex.join(command))
    subprocess.run(command, check=True)


def cached_efficiency(model: str, config: dict[str, Any], frames: int, words: int, cache: Path) -> dict[str, Any]:
    """The efficiency block of `model` built with `config` (random weights), cached by model, config and sizes."""
    from benchmark.engine.efficiency import efficiency_block
    from benchmark.registry import build_model

    config = {**config, "clip_weights": "random"}
    digest = hashlib.sha256(json.dumps([model, config, frames, words], sort_keys=True).encode()).hexdigest()[:12]
    path = cache / f"{model}-{digest}.json"
    if not path.is_file():
        write_json(path, efficiency_block(build_model(model, **config), frames=frames, words=words))
    return json.loads(path.read_text())


def attach_efficiency(record_dir: Path, model: str, cache: Path) -> RunRecord:
    """Add the efficiency block (measured on the run's own model configuration) to a finished record."""
    record = load_run(record_dir)
    if record.efficiency is None:
        train = record.config["train"]
        record.efficiency = cached_efficiency(model, record.config["model"], train["max_frames"], train["max_words"],
                                              cache)  # fmt: skip
        write_run(record, record_dir)
    return record


def paper_setting_costs(models: list[str], cache: Path) -> dict[str, dict]:
    """Head cost of every model at the paper's setting (ViT-B/32, 12 frames, 32 words), cached per model."""
    return {model: cached_efficiency(model, {"backbone": "ViT-B-32"}, 12, 32, cache)
            for model in tqdm(models, desc="efficiency at ViT-B/32", unit="model")}  # fmt: skip


def publish(records: dict[str, list[tuple[RunSpec, RunRecord]]], test_split: Any, root: Path) -> None:
    """Replace this study's entries on the local leaderboard with the current run records (other entries stay),
    then render it. A run at chance level is a result of the study: it is kept, labelled chance-level on the boards."""
    from leaderboard.board import build_boards
    from leaderboard.render import write_site
    from leaderboard.splits import register_split_manifest
    from leaderboard.store import slugify
    from leaderboard.submit import Submission, SubmissionWarning, submit

    register_split_manifest(root, test_split)
    for model, runs in records.items():
        for spec, _ in runs:
            meta = Submission(benchmark=test_split.benchmark, name=f"{model} seed {spec.seed}", seed=spec.seed,
                              group=model, kind="reproduced", method=model, allow_chance=True)  # fmt: skip
            shutil.rmtree(root / "entries" / test_split.benchmark / slugify(meta.name), ignore_errors=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SubmissionWarning)  # the label is on the boards
                submit(spec.record_dir, meta, root)
    write_site(build_boards(root), root)


def run_grid(specs: list[RunSpec], preset: Preset, data_root: Path, weights: str | None, sets: tuple[str, ...],
             launch: Launch, jobs: int, costs_cache: Path) -> dict[str, list[tuple[RunSpec, RunRecord]]]:
    """Run every cell of `specs` not finished with its key (`jobs` at a time) and attach efficiency; the records
    grouped by model."""
    in_process = launch.nproc is None
    keys = [run_key(preset, spec, sets, Path(weights).name if weights else None, in_process=in_process)
            for spec in specs]  # fmt: skip
    pending = [RunTask(spec, key, begin_run(spec, key), preset, data_root, weights, sets, launch)
               for spec, key in zip(specs, keys, strict=True) if not finished(spec, key)]  # fmt: skip
    run_all(pending, run_task, jobs=jobs, label=RunTask.label, includes=launch.includes,
            desc=f"study {preset.name} ({preset.backbone['name']})")
    records: dict[str, list[tuple[RunSpec, RunRecord]]] = {}
    for spec in specs:
        record = attach_efficiency(spec.record_dir, spec.model, costs_cache)
        records.setdefault(spec.model, []).append((spec, record))
    return records


def study_seeds(preset: Preset, model: str, seeds: int | None, quick: bool) -> list[int]:
    """The seeds of one model's runs at one encoder: 0..seeds-1 when `seeds` is given, else its first seed for a quick
    study, else all of them: the preset's `training.seeds`, which an `encoders` entry's `training` or a `models`
    entry's `train` may replace (more seeds where the variance is)."""
    model_seeds = list(resolve(preset, model).train.seeds)
    return list(range(seeds)) if seeds else model_seeds[:1] if quick else model_seeds


def encoder_grids(preset: Preset, models: list[str] | None) -> dict[str, list[str]]:
    """The models run at each encoder of the study (`Preset.encoder_presets`): `models` when given, else the
    encoder entry's `models`, else GRID; every name is checked now (an unknown one names the registered models)."""
    grids = {encoder: list(dict.fromkeys(models or preset.encoders.get(encoder, {}).get("models") or GRID))
             for encoder in preset.encoder_presets()}  # fmt: skip
    for model in {m for grid in grids.values() for m in grid}:
        model_spec(model)
    return grids


def synthvtt_calibration(
    preset: Preset, by_encoder: dict[str, dict[str, list[tuple[RunSpec, RunRecord]]]], test_split: Any,
    data_root: Path,
) -> list[Row]:
    """The calibration table of a SynthVTT study from its runs at every encoder; the encoder-scale comparison takes
    the entries marked `scale` (all encoders when none is)."""
    from benchmark.engine.backbone import count_parameters
    from benchmark.study.calibration import calibration_table
    from benchmark.study.design import load_design
    from benchmark.study.variants import Variant, synthvtt_subsets

    encoders = preset.encoder_presets()
    scale = [e for e, entry in preset.encoders.items() if entry.get("scale")] or list(encoders)
    runs = {e: {m: Variant(m, tuple(r for _, r in cells)) for m, cells in grid.items()}
            for e, grid in by_encoder.items()}  # fmt: skip
    return calibration_table(
        runs, synthvtt_subsets(data_root, [t.video_id for t in test_split.texts]),
        {e: count_parameters(encoders[e].backbone["name"]) for e in scale}, load_design(preset),
        ties=preset.eval.get("ties", "random"),
        frozen={e for e, p in encoders.items() if p.train_config().freeze_backbone},
    )  # fmt: skip


def reproduce(
    preset_name: str = SYNTH_PRESET,
    *,
    out: Path = Path("results"),
    seeds: int | None = None,
    quick: bool = False,
    models: list[str] | None = None,
    data_root: Path | None = None,
    clip_weights: Path | None = None,
    nproc: int | None = None,
    readme: Path | None = None,
    includes: tuple[str, ...] = (),
    keep_checkpoints: str = "best",
    cache: Path | None = None,
    sets: tuple[str, ...] = (),
    jobs: int | None = None,
) -> Path:
    """Run the study for `preset_name` (a shipped name or a preset file) over the grid of `models` (default GRID; any
    registered models, plugins included: `includes` are the files they came from, which torchrun launches also
    receive); `sets` are `--set` values of every run; SynthVTT runs go `jobs` at a time (default: one per usable CPU),
    one thread each. Returns the report's path. With `readme`, its "What it found"
    block (between the findings markers) is replaced by the one generated from this report."""
    from benchmark.engine import feature_cache
    from benchmark.engine.train import LOG_FILE
    from benchmark.study.answer import splice_readme
    from benchmark.study.design import load_design
    from benchmark.study.report import write_study_report

    start = time.perf_counter()
    preset = load_preset(preset_name)
    if readme is not None:
        splice_readme(readme.read_text(encoding="utf-8"), "", preset.name)  # fail before any work without markers
    load_design(preset)  # a broken study design fails before any training
    grids = encoder_grids(preset, models)
    synthetic = preset.benchmark == "synthvtt"
    if preset.encoders and not synthetic:
        raise ValueError(f"Preset {preset.name}: an `encoders` section is supported on SynthVTT only (its runs are "
                         "in-process); write one preset per backbone for a real benchmark.")  # fmt: skip
    if jobs is not None and not synthetic:
        raise ValueError(f"--jobs runs SynthVTT studies side by side; {preset.name} runs each training under torchrun "
                         "one at a time (use --nproc for processes per training).")
    encoders = preset.encoder_presets()
    study_dir = out / (f"{preset.name}-quick" if quick else preset.name)
    sets = QUICK_SETS if quick else tuple(sets)
    cache_root = cache_dir(cache)
    costs_cache = cache_root / "efficiency"
    if synthetic:
        launch = Launch(None, tuple(includes), keep_checkpoints)
    else:
        splits = check_real_inputs(preset, data_root, clip_weights)
        weights, test_split = str(clip_weights), splits[preset.test_split]
        launch = Launch(nproc or 1, tuple(includes), keep_checkpoints)
    by_encoder: dict[str, dict[str, list[tuple[RunSpec, RunRecord]]]] = {}
    for encoder, variant in encoders.items():
        runs_dir = study_dir / "runs" / encoder if preset.encoders else study_dir / "runs"
        specs = plan_runs(grids[encoder], lambda m, v=variant: study_seeds(v, m, seeds, quick), runs_dir)
        if synthetic:
            data_root, weights = prepare_synthvtt(out, quick, variant, cache_root)
            test_split = load_split(preset.benchmark, data_root, preset.test_split)
        else:
            print_plan(variant, specs, splits[preset.data["train"]], launch.nproc or 1, sets)
        by_encoder[encoder] = run_grid(specs, variant, Path(data_root), weights, sets, launch,
                                       (jobs or usable_cpus()) if synthetic else 1, costs_cache)
        feature_cache.SHARED.clear()  # in-process runs: this encoder's frozen features are not needed again
    primary = next(iter(encoders))  # the first encoder's grid feeds the leaderboard and the study report
    records = by_encoder[primary]
    paper_costs = paper_setting_costs(list(records), costs_cache) if not quick else {}
    leaderboard_root = out / ("leaderboard-quick" if quick else "leaderboard")
    publish(records, test_split, leaderboard_root)
    report = write_study_report(
        study_dir, encoders[primary], {m: [r for _, r in runs] for m, runs in records.items()}, test_split,
        data_root=Path(data_root), paper_costs=paper_costs, quick=quick, leaderboard=leaderboard_root,
        seconds=time.perf_counter() - start,
        train_logs={m: [spec.directory / LOG_FILE for spec, _ in runs if (spec.directory / LOG_FILE).is_file()]
                    for m, runs in records.items()},
        calibration=synthvtt_calibration(preset, by_encoder, test_split, Path(data_root)) if synthetic else (),
    )  # fmt: skip
    if readme is not None:
        block = (report.parent / "findings.md").read_text(encoding="utf-8").strip()
        write_text(readme, splice_readme(readme.read_text(encoding="utf-8"), block, preset.name))
    print("\n" + "\n".join(json.loads((report.parent / "report.json").read_text(encoding="utf-8"))["verdict"]))
    print(f"\nDone in {time.perf_counter() - start:.0f} s.\n  report:      {report}\n  report html: "
          f"{report.with_suffix('.html')}\n  runs:        {study_dir / 'runs'}\n  leaderboard: "
          f"{leaderboard_root / 'index.html'} (+ md, tex, csv per benchmark)")  # fmt: skip
    if readme is not None:
        print(f"  README:      {readme} ('What it found' regenerated from the report)")
    return report
