"""``tvbench models``: the registered models (shipped and plugins), where each comes from, its description and
default config."""

from __future__ import annotations

import argparse
import json
import sys

from tabulate import tabulate

from benchmark.registry import config_to_json, list_models, model_source, model_spec, plugin_failures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the configs as JSON")


def _origin(name: str) -> str:
    """Where a model comes from, in one short cell: its entry point, its included file, or its module."""
    source = model_source(name)
    if "include" in source:
        return f"--include {source['include']}"
    if "entry_point" in source:
        return f"{source['distribution']}:{source['entry_point']}"
    return source["module"]


def run(args: argparse.Namespace) -> int:
    specs = [model_spec(name) for name in list_models()]
    for plugin, error in plugin_failures().items():
        print(f"tvbench models: warning: {plugin} failed to load: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps({s.name: config_to_json(s.make_config()) for s in specs}, indent=2))
    else:
        rows = [(s.name, s.cls.__name__, _origin(s.name), s.description) for s in specs]
        print(tabulate(rows, headers=["model", "class", "from", "about"]))
    return 0
