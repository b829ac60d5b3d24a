"""``tvbench reproduce``: the command line of the study pipeline (`benchmark.study.reproduce`) and of its rehearsal
(`--rehearse`, `benchmark.study.rehearsal`), kept apart so that neither module imports the other back."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.argtypes import name_list, positive_int
from benchmark.data import loader_spec
from benchmark.presets import list_presets, load_preset
from benchmark.study.rehearsal import rehearse
from benchmark.study.reproduce import GRID, SYNTH_PRESET, reproduce


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from benchmark.engine.train import KEEP_CHECKPOINTS

    parser.add_argument("--preset", default=SYNTH_PRESET, choices=list_presets(), help="study preset")
    parser.add_argument("--seeds", type=positive_int, help="number of seeds (default: the preset's; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny data and one short epoch (for tests)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results/)")
    parser.add_argument("--models", nargs="+", type=name_list, metavar="A,B",
                        help=f"models to run and compare, space- or comma-separated, any registered ones, yours "
                        f"included (default: {' '.join(GRID)}); without a complete ablation family the report "
                        "compares them pairwise")
    parser.add_argument("--readme", type=Path, help="regenerate this README's 'What it found' block from the report")
    parser.add_argument("--data-root", type=Path, help="real presets: the benchmark's folder")
    parser.add_argument("--clip-weights", type=Path, help="real presets: the CLIP weights file (.safetensors)")
    parser.add_argument("--nproc", type=positive_int, help="real presets: processes (GPUs) per training under torchrun")
    parser.add_argument("--jobs", type=positive_int,
                        help="SynthVTT: runs trained side by side, one thread each (default: one per usable CPU); "
                             "numbers do not depend on it")
    parser.add_argument("--keep-checkpoints", choices=tuple(KEEP_CHECKPOINTS), default="best",
                        help="checkpoints each finished run keeps (default best)")
    parser.add_argument("--cache-dir", type=Path,
                        help="cache of pretrained backbones and efficiency counts (default $XDG_CACHE_HOME/tvbench)")
    parser.add_argument("--rehearse", action="store_true",
                        help="real presets: fabricate a miniature benchmark and random CLIP weights and run the real "
                             "pipeline on them (torchrun with --nproc processes, default 2: gloo on CPU; on CUDA one "
                             "per GPU, at most the GPUs, and the GPU-hour estimate from measured steps)")


def run(args: argparse.Namespace) -> int:
    loader_spec(load_preset(args.preset).benchmark)
    models = [m for group in args.models for m in group] if args.models else None
    if args.rehearse:
        rehearse(args.preset, out=args.out, models=models, nproc=args.nproc)
        return 0
    reproduce(args.preset, out=args.out, seeds=args.seeds, quick=args.quick, models=models,
              data_root=args.data_root, clip_weights=args.clip_weights, nproc=args.nproc, readme=args.readme,
              includes=tuple(str(Path(p).resolve()) for p in args.include), keep_checkpoints=args.keep_checkpoints,
              cache=args.cache_dir, jobs=args.jobs)  # fmt: skip
    return 0
