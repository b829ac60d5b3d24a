"""`tvbench leaderboard submit|show|compare|render|add-split|order|remove`: thin wrappers over submit, board, render,
splits and store.

Options are checked when parsed; every other user error raises with a message, which `benchmark.cli` prints as
`tvbench leaderboard: error: ...` (exit status 2). Entries skipped as invalid are reported on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

from benchmark.argtypes import non_negative_int, positive_int, probability
from benchmark.io import write_text
from benchmark.runs import POST_PROCESSING
from leaderboard import render
from leaderboard.board import TRACK_NAMES, build_board, build_boards, build_comparison
from leaderboard.names import normalize_name
from leaderboard.splits import add_split, load_manifest, split_order
from leaderboard.stats import StatsSettings
from leaderboard.store import ENV_ROOT, Removal, StoreError, entry_benchmarks, remove_entry, resolve_root, slugify
from leaderboard.submit import (
    ENV_SUBMITTER,
    SUBMIT_KINDS,
    Submission,
    SubmissionError,
    SubmissionWarning,
    default_submitter,
    submit,
)

ORDER_FORMATS = ("json", "texts", "videos")
MAX_REASON_CHARS = 500


def _reason(text: str) -> str:
    """argparse type: a one-line reason of at most MAX_REASON_CHARS printable characters."""
    reason = " ".join(text.split())
    if not reason or len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise argparse.ArgumentTypeError(f"give a one-line reason of 1 to {MAX_REASON_CHARS} printable characters")
    return reason


def output_folder(text: str) -> Path:
    """argparse type: a folder to write into (created if missing), never an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file; give a folder (it is created if missing)")
    return path


def report_skipped(boards: Iterable[dict], prog: str) -> None:
    """Print one warning per entry that the boards skipped as invalid."""
    for message in dict.fromkeys(m for b in boards for m in b.get("skipped") or ()):
        print(f"{prog}: warning: skipped an invalid entry: {message}", file=sys.stderr)


ROOT_HELP = f"leaderboard root (default: ${ENV_ROOT}, else $XDG_DATA_HOME/tvbench/leaderboard)"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=None, help=ROOT_HELP)


def _submitter(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--submitter", default=None,
                        help=f"who {what} (default: ${ENV_SUBMITTER}, else the login name)")


def _stats_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resamples", type=positive_int, default=StatsSettings.n_resamples,
                        help="bootstrap size of intervals and least B of Monte Carlo tests (>= 1; raised "
                             "automatically for large families)")
    parser.add_argument("--stats-seed", type=non_negative_int, default=StatsSettings.seed,
                        help="seed of every resampling")
    parser.add_argument("--alpha", type=probability, default=StatsSettings.alpha,
                        help="family-wise error rate (Holm), between 0 and 1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands submit, show, compare, render, add-split, order and remove."""
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("submit", help="add a run directory or a score matrix (.npy/.npz) to the leaderboard")
    p.add_argument("path", type=Path,
                   help="run directory (run.json + ranks.npz [+ sim.npy]; or the folder `tvbench train --out` wrote) "
                        "or .npy/.npz scores")
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
    _submitter(p, "submits; owns the groups it starts")
    p.add_argument("--maintainer-join", action="store_true",
                   help="maintainers only: add this run to a --group that another submitter owns")
    p.add_argument("--allow-chance", action="store_true",
                   help="accept ranks indistinguishable from chance (labelled chance-level); refused otherwise")
    p.add_argument("--allow-duplicate", action="store_true",
                   help="accept ranks that nearly copy an existing entry's (labelled near-duplicate)")
    p.add_argument("--supersedes", default=None, metavar="ID",
                   help="your own entry (id or name) that this one replaces; it is removed in the same step")
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
    p.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    _common(p)
    _stats_options(p)
    p = sub.add_parser("render", help="write md, tex, csv and html of every board into a folder")
    p.add_argument("--out", type=output_folder, required=True)
    _common(p)
    _stats_options(p)
    p = sub.add_parser("add-split", help="register a benchmark split (its manifest) so that entries on it can be "
                                         "submitted")
    p.add_argument("name", help="benchmark (loader) name, e.g. synthvtt or msrvtt")
    p.add_argument("--root", type=Path, required=True, help="the benchmark's data folder (its annotation files)")
    p.add_argument("--split", default=None, help="split to register (default: the benchmark's test split)")
    p.add_argument("--leaderboard", type=Path, default=None, help=ROOT_HELP)
    p.add_argument("--replace", action="store_true",
                   help="replace a registered manifest of another split version (its entries become stale)")
    p = sub.add_parser("order", help="print a benchmark's canonical text and video id order (rows and columns of "
                                     "a score matrix)")
    p.add_argument("benchmark")
    p.add_argument("--format", choices=ORDER_FORMATS, default="json",
                   help="json: both lists and the fingerprint; texts / videos: one id per line")
    p.add_argument("--out", type=Path, default=None, help="write to this file instead of stdout")
    _common(p)
    p = sub.add_parser("remove", help="remove an entry, keeping a record of it under <root>/removed/")
    p.add_argument("entry", help="entry id (its folder name) or name")
    p.add_argument("--benchmark", default=None, help="benchmark of the entry (needed when the id is on several)")
    p.add_argument("--reason", type=_reason, default=None, help="why it is removed (kept in the record)")
    _submitter(p, "removes it")
    _common(p)


def _settings(args: argparse.Namespace) -> StatsSettings:
    return StatsSettings(n_resamples=args.resamples, seed=args.stats_seed, alpha=args.alpha)


def _read_bibtex(path: Path) -> str:
    if not path.is_file():
        raise SubmissionError(f"--bibtex {path}: no such file.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SubmissionError(f"--bibtex {path}: not UTF-8 text ({err}).") from err


def _submit(args: argparse.Namespace) -> int:
    bibtex = None if args.bibtex is None else _read_bibtex(args.bibtex)
    meta = Submission(benchmark=args.benchmark, name=args.name, split=args.split, paper=args.paper, code=args.code,
                      bibtex=bibtex, post_processing=args.post_processing, seed=args.seed, group=args.group,
                      kind=args.kind, submitter=args.submitter, maintainer_join=args.maintainer_join,
                      allow_chance=args.allow_chance, allow_duplicate=args.allow_duplicate,
                      supersedes=args.supersedes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SubmissionWarning)
        path = submit(args.path, meta, args.root)
    print(f"Added {args.name!r} to {args.benchmark}: {path}")
    for w in caught:
        if issubclass(w.category, SubmissionWarning):
            print(f"tvbench leaderboard: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return 0


def _add_split(args: argparse.Namespace) -> int:
    from benchmark.data import load_split  # only this command reads annotation files

    split = load_split(args.name, args.root, args.split)
    path, written = add_split(resolve_root(args.leaderboard), split, args.replace)
    state = "Registered" if written else "Already registered"
    print(f"{state} {split.benchmark}/{split.split} ({len(split.texts)} texts, {len(split.videos)} videos, "
          f"fingerprint {split.fingerprint[:12]}...): {path}")
    return 0


def _order(args: argparse.Namespace) -> int:
    doc = split_order(load_manifest(args.benchmark, args.root))
    if args.format == "json":
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        text = "".join(f"{i}\n" for i in doc["text_ids" if args.format == "texts" else "video_ids"])
    if args.out is None:
        sys.stdout.write(text)
    else:
        print(write_text(args.out, text))
    return 0


def _remove(args: argparse.Namespace) -> int:
    try:
        entry_id = slugify(args.entry)
    except ValueError as err:
        raise StoreError(f"Entry {args.entry!r}: {err}") from err
    benchmarks = [args.benchmark] if args.benchmark else entry_benchmarks(entry_id, args.root)
    if len(benchmarks) != 1:
        where = f"on {', '.join(benchmarks)}; pass --benchmark" if benchmarks else "on any benchmark"
        raise StoreError(f"Entry `{entry_id}` is {where} (list entries with `tvbench leaderboard show`).")
    removed_by = normalize_name(args.submitter or default_submitter(), "--submitter")
    path = remove_entry(benchmarks[0], Removal(entry_id, args.reason, removed_by), args.root)
    print(f"Removed `{entry_id}` from {benchmarks[0]}; its files and removal record: {path}")
    return 0


def _render(args: argparse.Namespace) -> int:
    boards = build_boards(args.root, _settings(args))
    report_skipped(boards, "tvbench leaderboard render")
    for path in render.write_site(boards, args.out):
        print(path)
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to one sub-command (user errors raise; `benchmark.cli` prints them and exits with status 2)."""
    if args.action == "add-split":
        return _add_split(args)
    args.root = resolve_root(args.root)
    if args.action == "submit":
        return _submit(args)
    if args.action == "order":
        return _order(args)
    if args.action == "remove":
        return _remove(args)
    if args.action == "show":
        board = build_board(args.benchmark, args.track, args.root, _settings(args))
        report_skipped([board], "tvbench leaderboard show")
        sys.stdout.write(render.FORMATS[args.format](board))
        return 0
    if args.action == "compare":
        report = build_comparison(args.names, args.benchmark, args.root, _settings(args))
        sys.stdout.write(render.comparison_markdown(report) if args.format == "md" else
                         json.dumps(report, indent=2) + "\n")
        return 0
    return _render(args)
