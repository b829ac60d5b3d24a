"""Efficiency table of every registered model at ViT-B-32 / 12 frames / 32 words, and latency against gallery size.

Writes results/bench/efficiency.json (every model's full `tvbench efficiency` report) and
results/bench/latency_vs_gallery.png (log-log; extrapolated points drawn hollow), and prints the X-CLIP / GLSCL
head-cost ratio next to the one GLSCL's Table I implies. Weights are random: costs do not depend on them.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmark.engine import efficiency  # noqa: E402
from benchmark.io import write_bytes, write_json  # noqa: E402
from benchmark.registry import build_model, list_models  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "results" / "bench"
TABLE_I = {"xclip": 220.9, "glscl": 1.0}  # GLSCL Table I head "FLOPs" (G), for the ratio it claims


def measure_all(models: list[str], backbone: str, galleries: list[int], min_run_time: float, max_call_s: float) -> list:
    """The full efficiency report of each model, built with random weights on the CPU."""
    reports = []
    for name in tqdm(models, desc="efficiency", unit="model"):
        model = build_model(name, backbone=backbone, clip_weights="random")
        reports.append(
            efficiency.measure(model, name, galleries=galleries, min_run_time=min_run_time, max_call_s=max_call_s)
        )
        del model
    return reports


def summary_rows(reports: list[dict]) -> list[list]:
    """One table row per model: parameters, offline/online MACs, Table I convention, latency, throughput."""
    rows = []
    for r in reports:
        latency = {row["gallery"]: row for row in r["latency"]}
        cells = [f"{row['median_ms']:.1f}{'*' if 'extrapolated_from' in row else ''}" for row in latency.values()]
        rows.append(
            [
                r["model"],
                f"{r['params_added'] / 1e6:.2f}",
                f"{r['macs']['per_video'] / 1e9:.2f}",
                f"{r['macs']['per_text'] / 1e9:.3f}",
                f"{r['macs']['per_pair']:,.0f}",
                f"{r['head_gmacs_1k']:.2f}",
                r["published_head_flops"] or "-",
                *cells,
                f"{r['throughput']['videos_per_s']:.2f}",
                f"{r['throughput']['texts_per_s']:.1f}",
            ]
        )
    return rows


def plot_latency(reports: list[dict], path: Path) -> None:
    """Log-log latency (median, IQR bars) against gallery size; hollow markers are extrapolated points."""
    figure, axes = plt.subplots(figsize=(7, 5))
    axes.set_prop_cycle(color=plt.cm.tab20.colors)  # one colour per model, up to 20
    for r in reports:
        sizes = [row["gallery"] for row in r["latency"]]
        medians = [row["median_ms"] for row in r["latency"]]
        (line,) = axes.plot(sizes, medians, label=r["model"])
        for row in r["latency"]:
            axes.errorbar(
                row["gallery"],
                row["median_ms"],
                yerr=row["iqr_ms"] / 2,
                color=line.get_color(),
                capsize=2,
                marker="o",
                markerfacecolor="none" if "extrapolated_from" in row else line.get_color(),
            )
    report = reports[0]
    axes.set(
        xscale="log",
        yscale="log",
        xlabel="gallery size N (precomputed videos)",
        ylabel="query latency (ms, median)",
        title=f"one text query: encode + score + top-10 ({report['backbone']}, {report['device_name']}, "
        f"{report['threads']} threads)\nhollow = extrapolated from a sub-gallery",
    )
    axes.title.set_fontsize(9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    write_bytes(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=None, help="comma-separated model names (default: every registered one)")
    parser.add_argument("--backbone", default="ViT-B-32")
    parser.add_argument("--gallery", type=efficiency.parse_galleries, default=[1000, 10000, 100000])
    parser.add_argument("--min-run-time", type=float, default=0.2)
    parser.add_argument("--max-call-s", type=float, default=0.1, help="longer scorings are extrapolated (marked *)")
    parser.add_argument("--out", type=Path, default=OUT)
    args, _ = parser.parse_known_args()  # nox passes the same extra arguments to every bench script
    models = args.models.split(",") if args.models else list_models()
    reports = measure_all(models, args.backbone, args.gallery, args.min_run_time, args.max_call_s)

    headers = [
        "model",
        "params added (M)",
        "per video GMAC",
        "per text GMAC",
        "per pair MAC",
        "head GMAC @1k",
        "published",
        *[f"ms @{n}" for n in sorted(args.gallery)],
        "videos/s",
        "texts/s",
    ]
    first = reports[0]
    print(
        f"\nViT-B-32 random weights, {first['frames']} frames, {first['words']} words; device {first['device']} "
        f"({first['device_name']}, {first['threads']} threads), torch {torch.__version__}"
    )
    print(tabulate(summary_rows(reports), headers=headers, tablefmt="github"))
    print("* extrapolated linearly from a sub-gallery (see extrapolated_from in the JSON).")
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
