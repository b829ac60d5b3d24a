"""Seconds per training step and per full SynthVTT run (train + validation + test) of clip4clip-meanp on the
`synthvtt` preset, median of a few repeats, so the study budget (~25 runs in 15 minutes on 2 cores) can be checked;
and whether the fine-tuned model beats zero-shot CLIP on t2v R@1 (paired test over the test queries).

    python benchmarks/bench_train.py --data results/data/synthvtt [--repeats 3] [--set epochs=1 ...]

SynthVTT is generated there first (with the preset's `data.generate` options) when it is missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmark.data.dataset import clear_frame_cache
from benchmark.data.synthvtt import generate
from benchmark.engine.train import train_run
from benchmark.presets import load_preset
from benchmark.runs import RunRecord, load_run
from leaderboard.stats import average_over_seeds, paired_randomization_test, query_values


def compare_with_zero_shot(model: str, records: list[RunRecord], zero_shot: RunRecord) -> None:
    """Does fine-tuning beat zero-shot CLIP on t2v R@1? Seed-averaged per-query hits, paired randomization test."""
    tuned = average_over_seeds([query_values(r.ranks["t2v"]) for r in records])["R@1"]
    base = query_values(zero_shot.ranks["t2v"])["R@1"]
    p = paired_randomization_test(tuned, base, "R@1")
    print(f"t2v R@1: {model} {tuned.mean():.1f} (mean of {len(records)} seeds) vs clip-zeroshot {base.mean():.1f}; "
          f"difference {tuned.mean() - base.mean():+.1f} points, paired randomization p = {p:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("results/data/synthvtt"), help="SynthVTT folder")
    parser.add_argument("--model", default="clip4clip-meanp")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generate(args.data, **load_preset("synthvtt").data.get("generate", {}))  # no-op when the data exist
    run_seconds, step_seconds, records = [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            if repeat == 0:
                clear_frame_cache()  # the first run pays for decoding; later runs reuse the in-process cache
            start = time.perf_counter()
            record = train_run("synthvtt", args.model, repeat, Path(tmp) / "run", args.sets, data_root=args.data,
                               progress=False)
            elapsed = time.perf_counter() - start
            deltas = [json.loads(line)["seconds"] for line in (Path(tmp) / "run" / "train_log.jsonl").open()
                      if '"event": "step"' in line]
            doc = json.loads((record / "run.json").read_text())
            records.append(load_run(record))
        steps = doc["extra"]["selection"]["steps"]
        step_seconds.append(statistics.median(deltas) if deltas else float("nan"))
        run_seconds.append(elapsed)
        print(f"run {repeat}: {elapsed:.1f} s, {steps} steps, median {step_seconds[-1]:.3f} s/step, "
              f"test t2v R@1 {doc['metrics']['t2v']['R@1']:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        zero_shot = load_run(train_run("synthvtt", "clip-zeroshot", 0, Path(tmp) / "zs", data_root=args.data,
                                       progress=False))
    compare_with_zero_shot(args.model, records, zero_shot)
    print(json.dumps({
        "model": args.model, "threads": args.threads, "sets": args.sets,
        "seconds_per_step_median": statistics.median(step_seconds),
        "seconds_per_run_median": statistics.median(run_seconds),
        "seconds_first_run (includes decoding)": run_seconds[0],
    }, indent=2))


if __name__ == "__main__":
    main()
