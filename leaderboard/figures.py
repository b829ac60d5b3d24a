"""The accuracy-vs-cost scatter of one board, drawn with matplotlib as inline SVG for the HTML page.

Two panels: t2v R@1 against the similarity head's cost (log scale; reported rows as printed in their paper, measured
rows in GMACs for 1k x 1k pairs), and against the measured latency of one query over a 1,000-video gallery (only
measured rows have it). Measured and reported rows are drawn with different markers and colours, and named.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

GROUPS = {  # row group -> (legend label, marker style)
    "measured": ("measured by tvbench", {"marker": "o", "color": "#c0392b", "edgecolors": "#7b241c"}),
    "reported": ("reported in papers", {"marker": "s", "facecolors": "none", "edgecolors": "#555555"}),
}
PANELS = (  # row key, axis label, message when no row has it
    ("head_gflops", "similarity-head cost, G (log; reported: as printed, measured: GMACs for 1k×1k)",
     "no row has a head cost"),
    ("latency_ms", "query latency over 1,000 videos, ms (log; measured only)",
     "no entry records a measured latency\n(`efficiency.latency` of its run record)"),
)
STYLE = {"svg.fonttype": "none", "svg.hashsalt": "tvbench", "font.size": 8}


def _finite(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def points(rows: Sequence[dict[str, Any]], key: str) -> dict[str, list[tuple[float, float, str]]]:
    """(cost, t2v R@1, name) of every row with a positive, finite `key` and a finite R@1, by group."""
    out: dict[str, list[tuple[float, float, str]]] = {group: [] for group in GROUPS}
    for row in rows:
        x, y = _finite(row.get(key)), _finite((row.get("t2v") or {}).get("R@1"))
        if x is not None and x > 0 and y is not None:
            out["reported" if row["kind"] == "reported" else "measured"].append((x, y, row["name"]))
    return out


def _panel(ax: Axes, groups: dict[str, list[tuple[float, float, str]]], key: str, label: str, empty: str) -> None:
    ax.set_xlabel(label)
    ax.set_ylabel("t2v R@1 (%)")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    if not any(groups.values()):
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", color="#666666", parse_math=False)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    ax.set_xscale("log")
    for group, found in groups.items():
        if found:
            legend, style = GROUPS[group]
            xs, ys, names = zip(*found, strict=True)
            ax.scatter(xs, ys, s=22, linewidths=1.0, label=legend, gid=f"{key}-{group}", zorder=3, **style)
            for x, y, name in found:
                ax.annotate(name, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=6, parse_math=False)
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.margins(x=0.15, y=0.12)


def accuracy_cost_svg(board: dict[str, Any]) -> str:
    """The board's two-panel scatter as an `<svg>` element (no XML prolog), or '' when no row has both an R@1 and
    a cost to plot."""
    if not any(any(points(board["rows"], key).values()) for key, _, _ in PANELS):
        return ""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9.0, 3.4), layout="constrained")
        for ax, (key, label, empty) in zip(fig.subplots(1, len(PANELS)), PANELS, strict=True):
            _panel(ax, points(board["rows"], key), key, label, empty)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata=dict.fromkeys(("Date", "Creator", "Format", "Type")))
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]
