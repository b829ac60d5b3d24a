"""``tvbench data``: `check` a benchmark's annotation and video files, `synth` generate the SynthVTT benchmark."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate
from tqdm import tqdm

from benchmark.data import load_split, loader_spec
from benchmark.data.split import Split
from benchmark.data.video import VideoDecodeError, probe_video

SHOWN = 10  # missing/unreadable files listed in the table output (JSON lists all)


def _synth_module() -> Any | None:
    """benchmark.data.synthvtt, or None while it is not installed."""
    try:
        return importlib.import_module("benchmark.data.synthvtt")
    except ModuleNotFoundError as err:
        if err.name != "benchmark.data.synthvtt":
            raise
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    check = sub.add_parser("check", help="count texts and videos of a split, find missing and unreadable videos")
    check.add_argument("name", help="benchmark name (msrvtt, msvd, didemo, lsmdc, activitynet, synthvtt)")
    check.add_argument("--root", required=True, type=Path, help="the benchmark's data folder")
    check.add_argument("--split", help="split to check (default: every split whose annotation files are present)")
    check.add_argument("--video-dir", type=Path, help="folder of the video files (default: the loader's)")
    check.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="extra loader option, e.g. naming=clip4clip or exclude_glscl=false (repeatable)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    synth = sub.add_parser("synth", help="generate the SynthVTT benchmark (videos + MSR-VTT-style annotations)")
    module = _synth_module()
    if module is not None:
        module.add_synth_arguments(synth)


def _options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings -> loader keyword arguments (true/false become booleans)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option `{pair}` is not KEY=VALUE.")
        out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def check_videos(split: Split, probed: dict[str, str | None] | None = None) -> tuple[list[str], dict[str, str]]:
    """Paths of missing video files, and unreadable path -> cause, probing every video of `split`. `probed` (path ->
    cause, or None when readable) carries results over between splits that share videos, so each is probed once."""
    probed = {} if probed is None else probed
    missing: list[str] = []
    unreadable: dict[str, str] = {}
    for video in tqdm(split.videos, desc=f"probing {split.benchmark}/{split.split} videos", unit="video"):
        if not Path(video.path).is_file():
            missing.append(video.path)
            continue
        if video.path not in probed:
            try:
                probe_video(video.path)
                probed[video.path] = None
            except VideoDecodeError as err:
                probed[video.path] = err.cause
        if probed[video.path] is not None:
            unreadable[video.path] = probed[video.path]
    return missing, unreadable


def report(split: Split, missing: list[str], unreadable: dict[str, str]) -> dict[str, Any]:
    """The check's findings as JSON-ready data."""
    per_video = np.bincount(split.text_to_video, minlength=len(split.videos)) if split.videos else np.zeros(0)
    return {
        "benchmark": split.benchmark,
        "split": split.split,
        "fingerprint": split.fingerprint,
        "n_texts": len(split.texts),
        "n_videos": len(split.videos),
        "captions_per_video": {
            "min": int(per_video.min()) if len(per_video) else 0,
            "mean": float(per_video.mean()) if len(per_video) else 0.0,
            "max": int(per_video.max()) if len(per_video) else 0,
        },
        "annotations": split.meta.get("annotations", []),
        "missing": missing,
        "unreadable": unreadable,
        "complete": not missing and not unreadable,
    }


def _print_table(rep: dict[str, Any]) -> None:
    cpv = rep["captions_per_video"]
    rows = [
        ("benchmark / split", f"{rep['benchmark']} / {rep['split']}"),
        ("texts", rep["n_texts"]),
        ("videos", rep["n_videos"]),
        ("captions per video", f"{cpv['min']}-{cpv['max']} (mean {cpv['mean']:.2f})"),
        ("fingerprint", rep["fingerprint"]),
        ("missing videos", len(rep["missing"])),
        ("unreadable videos", len(rep["unreadable"])),
    ]
    print(tabulate(rows, tablefmt="plain"))
    for path in rep["missing"][:SHOWN]:
        print(f"missing: {path}")
    for path, cause in list(rep["unreadable"].items())[:SHOWN]:
        print(f"unreadable: {path}: {cause}")
    hidden = max(0, len(rep["missing"]) - SHOWN) + max(0, len(rep["unreadable"]) - SHOWN)
    if hidden:
        print(f"... and {hidden} more (use --json for the full lists)")
    if rep["complete"]:
        print("complete")
    elif len(rep["missing"]) == rep["n_videos"]:
        print("INCOMPLETE: no video file found at all; point --video-dir at the folder of the videos")
    else:
        print("INCOMPLETE: download or repair the files above (or pass --video-dir)")


def _expected_files(name: str, split: str | None) -> str:
    """What the loader of `name` expects on disk for `split` (empty for an unknown benchmark)."""
    try:
        spec = loader_spec(name)
    except KeyError:
        return ""
    module = sys.modules.get(spec.load.__module__)
    files = getattr(module, "EXPECTED_FILES", {}).get(split or spec.test_split, ())
    layout = getattr(module, "VIDEO_LAYOUT", "")
    lines = [f"expected annotation files: {', '.join(files)}"] if files else []
    return "\n".join(lines + ([f"expected videos: {layout}"] if layout else []))


def _load(args: argparse.Namespace, split: str | None, options: dict[str, Any]) -> Split:
    """One split, or a ValueError whose message adds what the loader expects on disk (FileNotFoundError kept)."""
    try:
        return load_split(args.name, args.root, split, **options)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        hint = _expected_files(args.name, split)
        kind = FileNotFoundError if isinstance(err, FileNotFoundError) else ValueError
        raise kind(message + (f"\n{hint}" if hint else "")) from err


def run_check(args: argparse.Namespace) -> int:
    """`tvbench data check`: exit 0 when every video of the checked splits exists and decodes, 1 when not, 2 on bad
    input (broken or empty annotations included). Without --split it checks every split of the benchmark whose
    annotation files are present (a split whose files are absent is listed as not present); every split is loaded
    before any video is probed."""
    options = _options(args.option)
    if args.video_dir is not None:
        options["video_dir"] = args.video_dir
    if args.split is not None:
        split = _load(args, args.split, options)
        rep = report(split, *check_videos(split))
        if args.json:
            print(json.dumps(rep, indent=2))
        else:
            _print_table(rep)
        return 0 if rep["complete"] else 1
    splits, absent, broken = [], {}, []
    for name in loader_spec(args.name).splits:
        try:
            splits.append(_load(args, name, options))
        except FileNotFoundError as err:
            absent[name] = str(err)
        except ValueError as err:
            broken.append(f"split {name}: {err}")
    if broken:
        raise ValueError("\n".join(broken))
    if not splits:
        raise FileNotFoundError(f"No split of `{args.name}` found under `{args.root}`:\n" + "\n".join(absent.values()))
    probed: dict[str, str | None] = {}
    reports = [report(split, *check_videos(split, probed)) for split in splits]
    complete = all(r["complete"] for r in reports)
    if args.json:
        print(json.dumps({"benchmark": args.name, "splits": reports, "not_present": sorted(absent),
                          "complete": complete}, indent=2))  # fmt: skip
        return 0 if complete else 1
    for rep in reports:
        _print_table(rep)
        print()
    if absent:
        print(f"not present (annotation files absent, not checked): {', '.join(sorted(absent))}")
    print("all present splits complete" if complete else "INCOMPLETE: see the splits above")
    return 0 if complete else 1


def run(args: argparse.Namespace) -> int:
    if args.data_command == "check":
        return run_check(args)
    module = _synth_module()
    if module is None:
        print("tvbench data synth: the SynthVTT generator (benchmark/data/synthvtt.py) is not installed.",
              file=sys.stderr)
        return 2
    return int(module.run_synth(args) or 0)
