"""`nox -s parity -- [--method glscl|glccl] --official PATH`: run one method's parity harness against a checkout of
its official code, print the table of differences (and what tvbench's defaults would change), optionally store the
official outputs as CI's fixture; exit 0 when every difference is within the tolerance, 1 when not, 2 on a usage
error (wrong checkout, missing dependency, impossible sizes)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from benchmark.io import write_json
from benchmark.study import parity_glccl, parity_glscl
from benchmark.study.parity import Harness, ParitySetup, ParityUsageError, check, format_table

HARNESSES: dict[str, Harness] = {h.method: h for h in (parity_glscl.HARNESS, parity_glccl.HARNESS)}
PROG = "parity"
DESCRIPTION = ("Compare tvbench's model with a method's official code (imported from your checkout) on identical "
               "random weights and inputs, and print the largest differences.")


def build_parser(harness: Harness) -> argparse.ArgumentParser:
    """The options of one harness: the checkout, its setup fields (with the harness's defaults), tolerance, fixture."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("--method", choices=sorted(HARNESSES), default="glscl", help="whose parity (default glscl)")
    parser.add_argument("--official", required=True, type=Path, help=f"a checkout of {harness.repository}")
    for name, default in asdict(harness.setup).items():
        parser.add_argument(f"--{name}", type=type(default), default=default, help=f"default {default}")
    parser.add_argument("--tolerance", type=float, default=harness.tolerance,
                        help=f"largest absolute difference accepted (default {harness.tolerance:g})")
    parser.add_argument("--write-fixture", type=Path,
                        help=f"store the official outputs here (tests/fixtures/parity_{harness.method}.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    method = argparse.ArgumentParser(prog=PROG, add_help=False)
    method.add_argument("--method", choices=sorted(HARNESSES), default="glscl")
    harness = HARNESSES[method.parse_known_args(argv)[0].method]
    parser = build_parser(harness)
    args = parser.parse_args(argv)
    setup = ParitySetup(**{name: getattr(args, name) for name in asdict(harness.setup)})
    try:
        result = harness.run(args.official, setup)
    except ParityUsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(result.title + "\n")
    print(format_table(result.rows, args.tolerance))
    if result.departures:
        print("\nWhat tvbench's defaults would change (not part of the parity check):\n")
        print(format_table(result.departures, args.tolerance))
    if args.write_fixture:
        write_json(args.write_fixture, result.fixture)
        print(f"\nfixture written: {args.write_fixture}")
    return 0 if check(result.rows, args.tolerance) else 1


if __name__ == "__main__":
    raise SystemExit(main())
