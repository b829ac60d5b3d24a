"""`tvbench leaderboard submit|show|compare|render`: thin wrappers over submit, board and render."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.runs import POST_PROCESSING
from leaderboard import render
from leaderboard.board import TRACK_NAMES, BoardError, build_board, build_boards, build_comparison
from leaderboard.splits import ManifestError
from leaderboard.stats import StatsSettings
from leaderboard.store import StoreError, resolve_root
from leaderboard.submit import SUBMIT_KINDS, Submission, SubmissionError, submit


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=None,
                        help="leaderboard root (default: $TVBENCH_LEADERBOARD, else the package's leaderboard/)")


def _stats_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resamples", type=int, default=StatsSettings.n_resamples, help="bootstrap / randomization")
    parser.add_argument("--stats-seed", type=int, default=StatsSettings.seed, help="seed of every resampling")
    parser.add_argument("--alpha", type=float, default=StatsSettings.alpha, help="family-wise error rate (Holm)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands submit, show, compare and render."""
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("submit", help="add a run directory or a score matrix (.npy/.npz) to the leaderboard")
    p.add_argument("path", type=Path, help="run directory (run.json + ranks.npz [+ sim.npy]) or .npy/.npz scores")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--split", default=None, help="must be the benchmark's canonical test split (default: it)")
    p.add_argument("--name", required=True, help="unique display name of the entry")
    p.add_argument("--paper", default=None, help="paper URL")
    p.add_argument("--code", default=None, help="code URL")
    p.add_argument("--bibtex", type=Path, default=None, help="BibTeX file of the paper")
    p.add_argument("--post-processing", choices=POST_PROCESSING, default=None,
                   help="none (raw track) or dsl / qb-norm (post-processed track); default: the run's, else none")
    p.add_argument("--seed", type=int, default=None, help="training seed of this run")
    p.add_argument("--group", default=None, help="group name shared by several seeds of one model and config")
    p.add_argument("--kind", choices=SUBMIT_KINDS, default="submitted")
    _common(p)
    p = sub.add_parser("show", help="print the board of one benchmark")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--track", choices=TRACK_NAMES, default="raw")
    p.add_argument("--format", choices=tuple(render.FORMATS), default="md")
    _common(p)
    _stats_options(p)
    p = sub.add_parser("compare", help="pairwise tests between entries (or groups) of one benchmark")
    p.add_argument("names", nargs="+", help="entry or group names (two or more)")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--format", choices=("md", "json"), default="md")
    _common(p)
    _stats_options(p)
    p = sub.add_parser("render", help="write md, tex, csv and html of every board into a folder")
    p.add_argument("--out", type=Path, required=True)
    _common(p)
    _stats_options(p)


def _settings(args: argparse.Namespace) -> StatsSettings:
    return StatsSettings(n_resamples=args.resamples, seed=args.stats_seed, alpha=args.alpha)


def _submit(args: argparse.Namespace) -> int:
    bibtex = None
    if args.bibtex is not None:
        if not args.bibtex.is_file():
            raise SubmissionError(f"--bibtex {args.bibtex}: no such file.")
        bibtex = args.bibtex.read_text(encoding="utf-8")
    meta = Submission(benchmark=args.benchmark, name=args.name, split=args.split, paper=args.paper, code=args.code,
                      bibtex=bibtex, post_processing=args.post_processing, seed=args.seed, group=args.group,
                      kind=args.kind)
    path = submit(args.path, meta, args.root)
    print(f"Added {args.name!r} to {args.benchmark}: {path}")
    return 0


def _render(args: argparse.Namespace) -> int:
    for path in render.write_site(build_boards(args.root, _settings(args)), args.out):
        print(path)
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch; user errors print one clear message and exit with status 2."""
    args.root = resolve_root(args.root)
    try:
        if args.action == "submit":
            return _submit(args)
        if args.action == "show":
            board = build_board(args.benchmark, args.track, args.root, _settings(args))
            sys.stdout.write(render.FORMATS[args.format](board))
            return 0
        if args.action == "compare":
            report = build_comparison(args.names, args.benchmark, args.root, _settings(args))
            sys.stdout.write(render.comparison_markdown(report) if args.format == "md" else
                             json.dumps(report, indent=2) + "\n")
            return 0
        return _render(args)
    except (SubmissionError, BoardError, StoreError, ManifestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
