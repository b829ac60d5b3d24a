"""Leaderboard reports (JSON-able dicts): one board per benchmark and track, and pairwise comparison reports.

A board joins the store's entries (reproduced / submitted; seeds of one `group` folded into one row) with the
numbers papers reported, adds bootstrap intervals and significance tiers to the measured rows, and orders rows by
t2v R@1. Renderers (`leaderboard.render`) only format these dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leaderboard import stats
from leaderboard.bibtex import parse
from leaderboard.published import PublishedRow, load_published
from leaderboard.splits import ManifestError, load_manifest
from leaderboard.stats import DIRECTIONS, METRIC_NAMES, StatsSettings
from leaderboard.store import TRACKS, Entry, load_entries, scan_entries

TRACK_NAMES = tuple(dict.fromkeys(TRACKS.values()))  # ("raw", "post-processed")
PRIMARY = ("t2v", "R@1")


class BoardError(ValueError):
    """A report that cannot be built (unknown entry, mixed tracks); the message says what to change."""


def _systems(entries: Sequence[Entry]) -> dict[str, list[Entry]]:
    """Entries keyed by system: a group name for seeds of one model, else the entry's own name."""
    systems: dict[str, list[Entry]] = {}
    for e in entries:
        systems.setdefault(e.meta.get("group") or e.name, []).append(e)
    return systems


def _values(members: Sequence[Entry], ties: str) -> dict[str, dict[str, np.ndarray]]:
    """Per-query values of a system per direction (averaged over seeds for a group)."""
    return {
        d: stats.average_over_seeds([stats.query_values(e.record.ranks[d], ties) for e in members])
        for d in DIRECTIONS
    }


def _measured_row(name: str, members: Sequence[Entry], values: dict, settings: StatsSettings) -> dict[str, Any]:
    first = members[0]
    row: dict[str, Any] = {
        "name": name, "kind": first.meta["kind"], "track": first.track,
        "n_seeds": len(members), "seeds": [e.record.seed for e in members], "entries": [e.id for e in members],
        "method": first.record.method, "cite": _citation_key(first), "paper": first.meta.get("paper"),
        "code": first.meta.get("code"), "post_processing": first.record.protocol["post_processing"],
        "backbone": first.record.config.get("backbone"), "head_gflops": _head_gmacs(first), "note": "",
    }
    row["sd"] = {}
    for d in DIRECTIONS:
        mean, sd = stats.seed_spread([e.record.metrics[d] for e in members])
        row[d] = mean
        row["sd"][d] = sd if len(members) > 1 else None
    row["ci"] = {d: stats.intervals(values[d], settings) for d in DIRECTIONS}
    return row


def _head_gmacs(entry: Entry) -> float | None:
    eff = entry.record.efficiency or {}
    value = eff.get("head_gmacs_1k")
    return float(value) if isinstance(value, int | float) else None


def _citation_key(entry: Entry) -> str | None:
    bib = entry.meta.get("bibtex")
    return parse(bib)[0].key if bib else None  # validated when the entry was read


def _reported_row(row: PublishedRow) -> dict[str, Any]:
    return {
        "name": row.name, "kind": "reported", "track": row.track, "t2v": row.t2v,
        "v2t": row.v2t or dict.fromkeys(METRIC_NAMES), "ci": None,
        "sd": None, "tier": None, "tiers": None, "n_seeds": None, "seeds": None, "entries": None,
        "method": row.method, "cite": row.cite, "cites": list(row.cites), "paper": None, "code": None,
        "post_processing": row.post_processing, "backbone": row.backbone, "head_gflops": row.head_gflops,
        "head_flops_reported": row.head_flops, "source": f"{row.source} {row.table}", "note": row.note,
    }


def _sort_key(row: dict[str, Any]) -> tuple:
    value = (row.get("t2v") or {}).get("R@1")
    return (value is None, -(value or 0.0), row["kind"] != "reported", row["name"])


def build_board(
    benchmark: str, track: str = "raw", root: str | Path | None = None, settings: StatsSettings | None = None,
    published: bool = True,
) -> dict[str, Any]:
    """The board of one benchmark and track: reported rows, measured rows with intervals and tiers."""
    if track not in TRACK_NAMES:
        raise BoardError(f"Unknown track `{track}`; use one of {', '.join(TRACK_NAMES)}.")
    settings = settings or StatsSettings()
    entries, skipped = scan_entries(root, benchmark)  # an invalid entry is skipped and reported, never fatal
    entries = [e for e in entries if e.track == track]
    systems = _systems(entries)
    values = {name: _values(members, settings.ties) for name, members in systems.items()}
    rows = [_measured_row(name, members, values[name], settings) for name, members in systems.items()]
    tiers = {
        d: {m: stats.significance_tiers({n: v[d][m] for n, v in values.items()}, m, settings) for m in METRIC_NAMES}
        for d in DIRECTIONS
    } if values else {}
    for row in rows:
        row["tiers"] = {d: {m: tiers[d][m][row["name"]] for m in METRIC_NAMES} for d in DIRECTIONS}
        row["tier"] = row["tiers"][PRIMARY[0]][PRIMARY[1]]
    reported = [r for r in load_published() if r.benchmark == benchmark and r.track == track] if published else []
    rows += [_reported_row(r) for r in reported]
    try:
        manifest = load_manifest(benchmark, root)
        split, n_queries = manifest.split, {"t2v": len(manifest.text_ids), "v2t": len(manifest.video_ids)}
    except ManifestError as err:
        if not rows and not any(r.benchmark == benchmark for r in load_published()):
            known = ", ".join(benchmarks_with_rows(root))
            raise BoardError(
                f"Benchmark `{benchmark}` has no entries, reported rows or manifest. Known: {known}."
            ) from err
        split, n_queries = (reported[0].split if reported else None), None
    return {
        "benchmark": benchmark, "split": split, "track": track, "n_queries": n_queries,
        "settings": settings.describe(), "rows": sorted(rows, key=_sort_key), "skipped": skipped,
    }


def benchmarks_with_rows(root: str | Path | None = None) -> list[str]:
    """Benchmarks that have entries in the store or reported rows."""
    names = {e.record.benchmark for e in load_entries(root)} | {r.benchmark for r in load_published()}
    return sorted(names)


def build_boards(root: str | Path | None = None, settings: StatsSettings | None = None) -> list[dict[str, Any]]:
    """Every non-empty board (benchmark x track) of the store and the published tables."""
    boards = [build_board(b, t, root, settings) for b in benchmarks_with_rows(root) for t in TRACK_NAMES]
    return [b for b in boards if b["rows"]]


def build_comparison(
    names: Sequence[str], benchmark: str, root: str | Path | None = None, settings: StatsSettings | None = None
) -> dict[str, Any]:
    """Pairwise tests between named entries or groups of one benchmark and track (Holm over the whole report)."""
    settings = settings or StatsSettings()
    systems = _systems(load_entries(root, benchmark))
    missing = [n for n in names if n not in systems]
    if missing:
        known = ", ".join(sorted(systems)) or "none"
        raise BoardError(f"No entry or group named {', '.join(missing)} on {benchmark}. Known: {known}.")
    if len(set(names)) < 2:
        raise BoardError("Compare needs at least two different entries or groups.")
    tracks = {systems[n][0].track for n in names}
    if len(tracks) > 1:
        raise BoardError("Raw and post-processed entries are never compared; pick entries of one track.")
    chosen = {n: systems[n] for n in dict.fromkeys(names)}
    values = {n: _values(members, settings.ties) for n, members in chosen.items()}
    first = next(iter(chosen.values()))[0].record
    return {
        "benchmark": benchmark, "split": first.split, "track": tracks.pop(),
        "n_queries": {"t2v": first.n_texts, "v2t": first.n_videos}, "settings": settings.describe(),
        "systems": [
            {"name": n, "n_seeds": len(m), "seeds": [e.record.seed for e in m]} for n, m in chosen.items()
        ],
        "comparisons": stats.compare_pairs(values, settings),
    }
