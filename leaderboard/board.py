"""Leaderboard reports (JSON-able dicts): one board per benchmark and track, and pairwise comparison reports.

A board joins the store's entries (reproduced / submitted; seeds of one `group` folded into one row) with the
numbers papers reported, adds bootstrap intervals and significance tiers to the measured rows, and orders rows by
t2v R@1. Only entries on the current split version (the manifest's fingerprint) are measured, tested or compared;
older ones are listed apart as stale. Renderers (`leaderboard.render`) only format these dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leaderboard import stats
from leaderboard.bibtex import parse
from leaderboard.published import PublishedRow, load_published
from leaderboard.splits import ManifestError, SplitManifest, load_manifest
from leaderboard.stats import DIRECTIONS, METRIC_NAMES, StatsSettings
from leaderboard.store import TRACKS, Entry, load_entries, scan_entries

TRACK_NAMES = tuple(dict.fromkeys(TRACKS.values()))  # ("raw", "post-processed")
PRIMARY = ("t2v", "R@1")
LATENCY_GALLERY = 1000  # the gallery size of `tvbench efficiency`'s default latency row


class BoardError(ValueError):
    """A report that cannot be built (unknown entry, mixed tracks); the message says what to change."""


def _systems(entries: Sequence[Entry]) -> dict[str, list[Entry]]:
    """Entries keyed by system: a group name for seeds of one model, else the entry's own name."""
    systems: dict[str, list[Entry]] = {}
    for e in entries:
        systems.setdefault(e.meta.get("group") or e.name, []).append(e)
    return systems


def _mixed_groups(entries: Sequence[Entry]) -> dict[str, str]:
    """Groups whose runs are on different tracks (raw and post-processed), whatever their order, with the reason
    each is refused."""
    return {
        name: (f"group `{name}` mixes raw and post-processed runs "
               f"({', '.join(f'{e.id} ({e.track})' for e in members)}); a group is one model and protocol. Give the "
               "post-processed runs their own group name (resubmit them with another --group).")
        for name, members in _systems(entries).items() if len({e.track for e in members}) > 1
    }


def _manifest(benchmark: str, root: str | Path | None) -> SplitManifest | None:
    try:
        return load_manifest(benchmark, root)
    except ManifestError:
        return None


def _by_version(entries: Sequence[Entry], manifest: SplitManifest | None) -> tuple[list[Entry], list[Entry]]:
    """Entries evaluated on the manifest's split version (same fingerprint) and the stale rest (all without one)."""
    is_current = [manifest is not None and e.record.fingerprint == manifest.fingerprint for e in entries]
    return ([e for e, c in zip(entries, is_current) if c], [e for e, c in zip(entries, is_current) if not c])


def unit_clusters(manifest: SplitManifest) -> dict[str, np.ndarray | None]:
    """Sampling units per direction: t2v queries grouped by their video when texts and videos are not one-to-one
    (MSVD); v2t (max-over-captions) has one query per video. None = every query is its own unit."""
    t2v = manifest.text_to_video
    one_to_one = len(t2v) == len(manifest.video_ids) and bool(
        (np.bincount(t2v, minlength=len(manifest.video_ids)) == 1).all())
    return {"t2v": None if one_to_one else t2v, "v2t": None}


def _units(clusters: dict[str, np.ndarray | None]) -> dict[str, str]:
    return {d: "queries" if c is None else f"videos ({len(np.unique(c))} caption groups)" for d, c in clusters.items()}


def _values(members: Sequence[Entry], ties: str) -> dict[str, dict[str, np.ndarray]]:
    """Per-query values of a system per direction, [seeds, queries] per metric."""
    return {d: stats.stack_seeds([stats.query_values(e.record.ranks[d], ties) for e in members]) for d in DIRECTIONS}


def _measured_row(
    name: str, members: Sequence[Entry], values: dict, ci: dict[str, dict[str, list[float]]] | None
) -> dict[str, Any]:
    """A measured row: each value is the metric of the seeds' per-query values (mean over seeds for a group), the
    quantity its interval `ci` is computed for; stale rows (`ci` None) get no interval and no tier."""
    first = members[0]
    row: dict[str, Any] = {
        "name": name, "kind": first.meta["kind"], "track": first.track, "stale": ci is None,
        "n_seeds": len(members), "seeds": [e.record.seed for e in members], "entries": [e.id for e in members],
        "method": first.record.method, "cite": _citation_key(first), "paper": first.meta.get("paper"),
        "code": first.meta.get("code"), "post_processing": first.record.protocol["post_processing"],
        "backbone": first.record.config.get("backbone"), "head_gflops": _head_gmacs(first), "note": "",
        "sd": {}, "tier": None, "tiers": None, "ci": ci,
        "latency_ms": _latency_ms(first), "chance_level": any(e.meta.get("chance_level") for e in members),
        "near_duplicate_of": sorted({n for e in members for n in e.meta.get("near_duplicate_of") or ()}),
    }
    for d in DIRECTIONS:
        row[d] = {m: stats.metric_value(m, values[d][m]) for m in METRIC_NAMES}
        row["sd"][d] = {m: float(np.std([stats.metric_value(m, v) for v in values[d][m]], ddof=1))
                        for m in METRIC_NAMES} if len(members) > 1 else None
    return row


def _stale_row(name: str, members: Sequence[Entry], manifest: SplitManifest | None, ties: str) -> dict[str, Any]:
    row = _measured_row(name, members, _values(members, ties), None)
    now = f"the manifest's is {manifest.fingerprint[:12]}" if manifest else "there is no manifest to check it against"
    row["note"] = (f"stale: evaluated on split version {members[0].record.fingerprint[:12]} ({now}); shown apart, "
                   "never tested against current entries")
    return row


def _head_gmacs(entry: Entry) -> float | None:
    eff = entry.record.efficiency or {}
    value = eff.get("head_gmacs_1k")
    return float(value) if isinstance(value, int | float) else None


def _latency_ms(entry: Entry) -> float | None:
    """Measured median end-to-end latency of one query (text encoding included) against a gallery of LATENCY_GALLERY
    videos, when the run has it (`e2e_ms`; `median_ms` in records written before `score_ms` and `e2e_ms` existed)."""
    rows = (entry.record.efficiency or {}).get("latency") or []
    values = (r.get("e2e_ms", r.get("median_ms")) for r in rows if r.get("gallery") == LATENCY_GALLERY)
    return next((float(v) for v in values if v is not None), None)


def _citation_key(entry: Entry) -> str | None:
    bib = entry.meta.get("bibtex")
    return parse(bib)[0].key if bib else None  # validated when the entry was read


def _reported_row(row: PublishedRow) -> dict[str, Any]:
    return {
        "name": row.name, "kind": "reported", "track": row.track, "t2v": row.t2v,
        "v2t": row.v2t or dict.fromkeys(METRIC_NAMES), "ci": None,
        "sd": None, "tier": None, "tiers": None, "n_seeds": None, "seeds": None, "entries": None,
        "method": row.method, "cite": row.cite, "cites": list(row.cites), "paper": row.paper, "code": row.code,
        "post_processing": row.post_processing, "backbone": row.backbone, "head_gflops": row.head_gflops,
        "head_flops_reported": row.head_flops, "source": f"{row.source} {row.table}", "note": row.note,
    }


def _sort_key(row: dict[str, Any]) -> tuple:
    value = (row.get("t2v") or {}).get("R@1")
    return (bool(row.get("stale")), value is None, -(value or 0.0), row["kind"] != "reported", row["name"])


def build_board(
    benchmark: str, track: str = "raw", root: str | Path | None = None, settings: StatsSettings | None = None,
    published: bool = True,
) -> dict[str, Any]:
    """The board of one benchmark and track: reported rows, measured rows with intervals and tiers, and stale rows.

    Only entries evaluated on the current manifest's split version (fingerprint) are measured and tested; the
    others are listed apart as stale (values only), so a replaced split never mixes versions or sizes.
    """
    if track not in TRACK_NAMES:
        raise BoardError(f"Unknown track `{track}`; use one of {', '.join(TRACK_NAMES)}.")
    settings = settings or StatsSettings()
    entries, skipped = scan_entries(root, benchmark)  # an invalid entry is skipped and reported, never fatal
    mixed = _mixed_groups(entries)  # refused: left out of both tracks and reported, never fatal either
    skipped += list(mixed.values())
    entries = [e for e in entries if (e.meta.get("group") or e.name) not in mixed]
    manifest = _manifest(benchmark, root)
    current, stale = ([e for e in part if e.track == track] for part in _by_version(entries, manifest))
    systems = _systems(current)
    clusters = unit_clusters(manifest) if manifest is not None else {}
    values = {name: _values(members, settings.ties) for name, members in systems.items()}
    rows = [
        _measured_row(name, members, values[name],
                      {d: stats.intervals(values[name][d], settings, clusters[d]) for d in DIRECTIONS})
        for name, members in systems.items()
    ]
    tiers = {
        d: {m: stats.significance_tiers({n: v[d][m] for n, v in values.items()}, m, settings, clusters[d])
            for m in METRIC_NAMES}
        for d in DIRECTIONS
    } if values else {}
    for row in rows:
        row["tiers"] = {d: {m: tiers[d][m][row["name"]] for m in METRIC_NAMES} for d in DIRECTIONS}
        row["tier"] = row["tiers"][PRIMARY[0]][PRIMARY[1]]
    stale_systems: dict[tuple[str, str], list[Entry]] = {}
    for e in stale:
        stale_systems.setdefault((e.meta.get("group") or e.name, e.record.fingerprint), []).append(e)
    rows += [_stale_row(name, members, manifest, settings.ties) for (name, _), members in stale_systems.items()]
    reported = [r for r in load_published() if r.benchmark == benchmark and r.track == track] if published else []
    rows += [_reported_row(r) for r in reported]
    if manifest is None and not rows and not any(r.benchmark == benchmark for r in load_published()):
        known = ", ".join(benchmarks_with_rows(root))
        raise BoardError(f"Benchmark `{benchmark}` has no entries, reported rows or manifest. Known: {known}.")
    return {
        "benchmark": benchmark, "track": track,
        "split": manifest.split if manifest else (reported[0].split if reported else None),
        "fingerprint": manifest.fingerprint if manifest else None,
        "n_queries": {"t2v": len(manifest.text_ids), "v2t": len(manifest.video_ids)} if manifest else None,
        "units": _units(clusters) if manifest else None, "n_stale": len(stale_systems),
        "settings": settings.describe(), "n_resamples_tests": settings.resamples_for(len(systems) - 1),
        "rows": sorted(rows, key=_sort_key), "skipped": skipped,
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
    """Pairwise tests between named entries or groups of one benchmark, track and split version (Holm over the
    whole report). A group contributes only its runs on the current split version."""
    settings = settings or StatsSettings()
    entries = load_entries(root, benchmark)
    mixed = [reason for name, reason in _mixed_groups(entries).items() if name in names]
    if mixed:
        raise BoardError(f"Cannot compare: {mixed[0]}")
    try:
        manifest = load_manifest(benchmark, root)
    except ManifestError as err:
        raise BoardError(f"{err} Without it no entry can be checked as current, so nothing is compared.") from err
    current, stale = _by_version(entries, manifest)
    systems, stale_systems = _systems(current), _systems(stale)
    for n in names:
        if n not in systems and n in stale_systems:
            raise BoardError(
                f"`{n}` was evaluated on another version of the {benchmark} split (fingerprint "
                f"{stale_systems[n][0].record.fingerprint[:12]}; the manifest's is {manifest.fingerprint[:12]}). "
                "Stale entries are never compared with current ones: re-evaluate it on the current split."
            )
    missing = [n for n in names if n not in systems]
    if missing:
        known = ", ".join(sorted(systems)) or "none"
        raise BoardError(f"No entry or group named {', '.join(missing)} on {benchmark}. Known: {known}.")
    if len(set(names)) < 2:
        raise BoardError("Compare needs at least two different entries or groups.")
    chosen = {n: systems[n] for n in dict.fromkeys(names)}
    tracks = {e.track for members in chosen.values() for e in members}
    if len(tracks) > 1:
        raise BoardError("Raw and post-processed entries are never compared; pick entries of one track.")
    clusters = unit_clusters(manifest)
    comparisons = stats.compare_pairs({n: _values(m, settings.ties) for n, m in chosen.items()}, settings, clusters)
    return {
        "benchmark": benchmark, "split": manifest.split, "fingerprint": manifest.fingerprint, "track": tracks.pop(),
        "n_queries": {"t2v": len(manifest.text_ids), "v2t": len(manifest.video_ids)}, "units": _units(clusters),
        "settings": settings.describe(), "family_size": len(comparisons),
        "n_resamples_tests": settings.resamples_for(len(comparisons)),
        "systems": [
            {"name": n, "n_seeds": len(m), "seeds": [e.record.seed for e in m],
             "stale_entries_left_out": [e.id for e in stale_systems.get(n, [])]} for n, m in chosen.items()
        ],
        "comparisons": comparisons,
    }
