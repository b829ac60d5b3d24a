"""The ``tvbench`` command: dispatches to one module per sub-command, which lives in its own layer and is imported
only when used.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status). This module
imports no command module statically, so it sits above every layer without depending on any. It owns what every
command shares: ``--include PATH`` on the commands that take models, and one error style (``tvbench CMD: error:
...`` on stderr, exit status 2) for every mistake a user can make.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

# command -> (module, one-line help). Modules are imported lazily so that `tvbench metrics` never loads torch.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("benchmark.models_cli", "list the registered models and their configs"),
    "metrics": ("benchmark.metrics_cli", "retrieval metrics (R@1/5/10, MdR, MnR) of a score matrix"),
    "data": ("benchmark.data.cli", "generate SynthVTT, check a benchmark's files"),
    "pretrain": ("benchmark.engine.pretrain", "pretrain the tiny CLIP stand-in on SynthVTT's image-caption set"),
    "train": ("benchmark.engine.train", "train a registered model on a preset (DDP with torchrun)"),
    "evaluate": ("benchmark.engine.evaluate", "evaluate a checkpoint (or a zero-shot model) into a run record"),
    "efficiency": ("benchmark.engine.efficiency", "parameters, FLOPs/MACs and latency of a model"),
    "weights": ("benchmark.engine.weights_cli", "convert OpenAI's TorchScript CLIP archive to .safetensors (runs it)"),
    "leaderboard": ("leaderboard.cli", "submit, show, compare, render and remove entries; register splits"),
    "cite": ("leaderboard.cite", "result tables with citation keys, BibTeX and CITATION.cff"),
    "reproduce": ("benchmark.study.reproduce_cli", "run the whole study for a preset and write its report"),
}
# Commands that take a model name: they accept --include PATH (a model file or a folder of them) to register plugins.
MODEL_COMMANDS = ("models", "train", "evaluate", "efficiency", "reproduce")
# Errors a user can cause (unknown names, bad files or values, missing weights); their messages say what to fix.
USER_ERRORS = (KeyError, ValueError, FileNotFoundError, FileExistsError, RuntimeError)


def _overview() -> argparse.ArgumentParser:
    from benchmark import __version__

    parser = argparse.ArgumentParser(prog="tvbench", description="Text-video retrieval benchmark suite.")
    parser.add_argument("--version", action="version", version=f"tvbench {__version__}")
    parser.add_argument("command", choices=sorted(COMMANDS), help="sub-command (`tvbench CMD --help` for its options)")
    lines = [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    parser.epilog = "commands:\n" + "\n".join(lines)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _command_parser(name: str, module: Any) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"tvbench {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    if name in MODEL_COMMANDS:
        parser.add_argument("--include", action="append", default=[], metavar="PATH",
                            help="a Python file, or a folder of them, that registers models of your own (repeatable;"
                                 " README 'Add your own method')")  # fmt: skip
    return parser


def _run(args: argparse.Namespace, module: Any) -> int:
    if getattr(args, "include", None):
        from benchmark.registry import include_models

        include_models(args.include)
    return int(module.run(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the chosen command and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"], ["--version"]):
        _overview().parse_args(argv[:1])  # prints and exits 0
    if not argv:
        overview = _overview()
        overview.print_help(sys.stderr)
        overview.exit(2, "tvbench: error: no command given; pick one of the commands above.\n")
    if argv[0] not in COMMANDS:
        _overview().parse_args(argv[:1])  # an unknown command: argparse's error, exit status 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    args = _command_parser(name, module).parse_args(rest)
    try:
        return _run(args, module)
    except USER_ERRORS as err:
        # Print the message instead of a traceback unless TVBENCH_DEBUG=1 asks for one.
        if os.environ.get("TVBENCH_DEBUG") == "1":
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"tvbench {name}: error: {message}\n(set TVBENCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
