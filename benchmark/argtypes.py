"""Value types for command-line options, shared by every command: a bad value is refused while parsing, so argparse
prints ``tvbench CMD: error: argument --x: ...`` and exits with status 2 before any work."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def _number(text: str, kind: Callable[[str], N], ok: Callable[[N], bool], expected: str) -> N:
    """`text` read as `kind`, refused unless `ok(value)`; the message says what was expected and what was given."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got `{text}`") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got `{text}`")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (steps, seeds counts, resamples, frames, processes)."""
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds of resampling)."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, seconds)."""
    return _number(text, float, lambda v: 0 < v and math.isfinite(v), "a finite number > 0")


def probability(text: str) -> float:
    """A number strictly between 0 and 1 (significance levels)."""
    return _number(text, float, lambda v: 0 < v < 1, "a probability strictly between 0 and 1")


def name_list(text: str) -> list[str]:
    """Comma-separated names (`A,B,C`); empty items are refused."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names like `a,b`, got `{text}`")
    return names
