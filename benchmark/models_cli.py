"""``tvbench models``: the registered models, their description and default config."""

from __future__ import annotations

import argparse
import json

from tabulate import tabulate

from benchmark.registry import config_to_json, list_models, model_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the configs as JSON")


def run(args: argparse.Namespace) -> int:
    specs = [model_spec(name) for name in list_models()]
    if args.json:
        print(json.dumps({s.name: config_to_json(s.make_config()) for s in specs}, indent=2))
    else:
        print(tabulate([(s.name, s.cls.__name__, s.description) for s in specs], headers=["model", "class", "about"]))
    return 0
