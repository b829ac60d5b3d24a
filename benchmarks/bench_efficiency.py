"""Efficiency table of the retrieval heads at ViT-B-32 / 12 frames / 32 words, and latency against gallery size.

Every gallery size is measured on a real gallery of that size held in memory (random features of the model's
per-video shapes: timing only), beside the memory floor measured in the same run (reading those features once).
Writes results/bench/efficiency.json (every model's full `tvbench efficiency` report) and
results/bench/latency_vs_gallery.png (log-log scoring-only latency, the floor dashed in the same colour), and prints
the X-CLIP / GLSCL head-cost ratio next to the one GLSCL's Table I implies. Weights are random: costs do not depend
on them.
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmark.engine import efficiency  # noqa: E402
from benchmark.io import write_bytes, write_json  # noqa: E402
from benchmark.registry import build_model  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "results" / "bench"
TABLE_I = {"xclip": 220.9, "glscl": 1.0}  # GLSCL Table I head "FLOPs" (G), for the ratio it claims
# One model per distinct head (the GLSCL ablations reuse GLSCL's head, X-CLIP the seqTransf encoder).
HEADS = "clip-zeroshot,clip4clip-meanp,clip4clip-seqtransf,xpool,xclip,glscl,glccl"


def measure_all(models: list[str], args: argparse.Namespace) -> list[dict]:
    """The full efficiency report of each model, built with random weights on the CPU, one model at a time."""
    reports = []
    for name in tqdm(models, desc="efficiency", unit="model"):
        model = build_model(name, backbone=args.backbone, clip_weights="random")
        reports.append(
            efficiency.measure(
                model, name, galleries=args.gallery, query_blocks=args.query_blocks, max_block_s=args.max_block_s,
                min_run_time=args.min_run_time,
            )  # fmt: skip
        )
        del model
    return reports


def summary_rows(reports: list[dict]) -> list[list]:
    """One row per model: MACs, then per gallery size the scoring-only latency (and its ratio to the floor), the
    end-to-end latency, and the batched throughput."""
    rows = []
    for r in reports:
        latency = [
            f"{row['score_ms']:.1f} ({row['score_to_floor']:.1f}x) / {row['e2e_ms']:.0f}" for row in r["latency"]
        ]
        batched = [row.get("queries_per_s") for row in r["query_throughput"]]
        rows.append(
            [
                r["model"],
                f"{r['params_added'] / 1e6:.2f}",
                f"{r['macs']['per_video'] / 1e9:.2f}",
                f"{r['macs']['per_pair']:,.0f}",
                f"{r['head_gmacs_1k']:.2f}",
                r["published_head_flops"] or "-",
                *latency,
                *["skipped" if q is None else f"{q:,.1f}" for q in batched],
            ]
        )
    return rows


def plot_latency(reports: list[dict], path: Path) -> None:
    """Log-log scoring-only latency (median, IQR bars) against gallery size; each model's memory floor dashed."""
    figure, axes = plt.subplots(figsize=(7, 5))
    colours = plt.cm.tab10.colors
    for r, colour in zip(reports, colours * 2):
        sizes = [row["gallery"] for row in r["latency"]]
        axes.errorbar(sizes, [row["score_ms"] for row in r["latency"]],
                      yerr=[row["score_iqr_ms"] / 2 for row in r["latency"]], color=colour, marker="o", capsize=2,
                      label=r["model"])  # fmt: skip
        axes.plot(sizes, [row["floor_ms"] for row in r["latency"]], color=colour, linestyle="--", linewidth=1)
    report = reports[0]
    load = report["load_average"]["start"][0]
    axes.set(
        xscale="log",
        yscale="log",
        xlabel="gallery size N (precomputed videos, in memory)",
        ylabel="scoring latency of one encoded query (ms, median)",
        title=f"score + top-10, text already encoded; dashed: that model's memory floor (reading its gallery once)\n"
        f"{report['backbone']}, {report['device_name']}, {report['threads']} threads, load average {load:.1f}",
    )
    axes.title.set_fontsize(8)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    write_bytes(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=HEADS, help=f"comma-separated model names (default {HEADS})")
    parser.add_argument("--backbone", default="ViT-B-32")
    parser.add_argument("--gallery", type=efficiency.parse_galleries, default=[1000, 10000, 100000])
    parser.add_argument("--query-blocks", type=efficiency.parse_galleries, default=[1, 32, 1000])
    parser.add_argument("--max-block-s", type=float, default=60.0, help="skip query blocks estimated to be slower")
    parser.add_argument("--min-run-time", type=float, default=0.3)
    parser.add_argument("--out", type=Path, default=OUT)
    args, _ = parser.parse_known_args()  # nox passes the same extra arguments to every bench script
    reports = measure_all(args.models.split(","), args)

    first = reports[0]
    headers = ["model", "params added (M)", "per video GMAC", "per pair MAC", "head GMAC @1k", "published",
               *[f"score ms (x floor) / e2e ms @{n:,}" for n in sorted(args.gallery)],
               *[f"queries/s, blocks of {q}" for q in sorted(args.query_blocks)]]  # fmt: skip
    print(
        f"\n{args.backbone} random weights, {first['frames']} frames, {first['words']} words; device {first['device']} "
        f"({first['device_name']}, {first['threads']} threads, {os.cpu_count()} CPUs), torch {torch.__version__}"
    )
    print(tabulate(summary_rows(reports), headers=headers, tablefmt="github"))
    loads = [r["load_average"]["start"][0] for r in reports] + [r["load_average"]["end"][0] for r in reports]
    print(f"load average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f}")
    print(first["gallery_note"])
    print(efficiency.COUNTING_CONVENTION)

    by_name = {r["model"]: r for r in reports}
    if {"xclip", "glscl"} <= set(by_name):
        ratio = by_name["xclip"]["macs"]["per_pair"] / by_name["glscl"]["macs"]["per_pair"]
        claimed = TABLE_I["xclip"] / TABLE_I["glscl"]
        print(
            f"\nX-CLIP / GLSCL head cost, one counter: {ratio:.1f}x "
            f"({by_name['xclip']['macs']['per_pair']:,.0f} vs {by_name['glscl']['macs']['per_pair']:,.0f} "
            f"MACs per pair); GLSCL Table I claims {claimed:.0f}x."
        )
    write_json(args.out / "efficiency.json", {"reports": reports, "convention": efficiency.COUNTING_CONVENTION})
    plot_latency(reports, args.out / "latency_vs_gallery.png")
    print(f"wrote {args.out / 'efficiency.json'} and {args.out / 'latency_vs_gallery.png'}")


if __name__ == "__main__":
    main()
