"""What every parity harness shares (GLSCL's here, GLCCL's alongside): import an official implementation from a
user's checkout and nowhere else, compare its outputs with tvbench's, and print the table of differences.

A harness builds both models on identical weights and inputs, collects named outputs from each (similarities, loss
terms, gradients) and hands them to `compare`; `format_table` prints the result and `check` says whether every
difference is within the tolerance. Official code is never copied into tvbench: `official_import` puts the checkout
on `sys.path` for the duration of the comparison only.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmark.io import write_json


class OfficialCodeError(FileNotFoundError):
    """The official checkout is missing or is not the expected repository; the message says what to pass."""


@dataclass(frozen=True)
class Comparison:
    """One row of a parity table: the largest absolute difference of a quantity and the largest official value."""

    name: str
    max_abs_diff: float
    max_abs_official: float
    count: int

    @property
    def relative(self) -> float:
        """max |diff| / max |official| (0 when both are 0)."""
        return self.max_abs_diff / self.max_abs_official if self.max_abs_official else self.max_abs_diff


def compare(name: str, ours: torch.Tensor | float, official: torch.Tensor | float) -> Comparison:
    """Compare two tensors (or numbers) of the same shape in float64."""
    a = torch.as_tensor(ours, dtype=torch.float64).detach().cpu()
    b = torch.as_tensor(official, dtype=torch.float64).detach().cpu()
    if a.shape != b.shape:
        raise ValueError(f"`{name}`: tvbench gives shape {tuple(a.shape)}, the official code {tuple(b.shape)}.")
    return Comparison(name, float((a - b).abs().max()) if a.numel() else 0.0,
                      float(b.abs().max()) if b.numel() else 0.0, a.numel())


def compare_many(name: str, ours: dict[str, torch.Tensor], official: dict[str, torch.Tensor]) -> Comparison:
    """One row over many tensors matched by name (e.g. every parameter's gradient of one group)."""
    if set(ours) != set(official):
        raise ValueError(f"`{name}`: tensors only in tvbench {sorted(set(ours) - set(official))[:5]}, only official "
                         f"{sorted(set(official) - set(ours))[:5]}.")
    rows = [compare(key, ours[key], official[key]) for key in ours]
    return Comparison(name, max((r.max_abs_diff for r in rows), default=0.0),
                      max((r.max_abs_official for r in rows), default=0.0), sum(r.count for r in rows))


def format_table(rows: list[Comparison], tolerance: float) -> str:
    """A Markdown table: quantity, elements, max |tvbench - official|, max |official|, and whether it is within
    `tolerance` (absolute)."""
    lines = ["| quantity | elements | max abs diff | max abs official | within |",
             "|---|---:|---:|---:|:---:|"]
    for row in rows:
        ok = "yes" if row.max_abs_diff <= tolerance else "**no**"
        lines.append(f"| {row.name} | {row.count:,} | {row.max_abs_diff:.2e} | {row.max_abs_official:.3g} | {ok} |")
    return "\n".join(lines)


def check(rows: list[Comparison], tolerance: float) -> bool:
    """Whether every difference is within `tolerance`."""
    return all(row.max_abs_diff <= tolerance for row in rows)


def write_rows(path: str | Path, rows: list[Comparison], meta: dict) -> Path:
    """Save a table (and what produced it) as JSON."""
    return write_json(path, {**meta, "rows": [asdict(r) for r in rows]})


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextlib.contextmanager
def official_import(path: str | Path, package: str, marker: str) -> Iterator[None]:
    """Make `package` importable from the checkout at `path` (and only from there) inside the block.

    `marker` is a file that must exist in the checkout (e.g. `tvr/models/modeling.py`), so a wrong folder fails with
    a message instead of importing something else. Modules of `package` are dropped from `sys.modules` before and
    after, so the official code never leaks into the rest of the process.
    """
    root = Path(path).resolve()
    if not (root / marker).is_file():
        raise OfficialCodeError(f"`{path}` is not a checkout of the official code: `{marker}` is missing. Clone it "
                                f"(e.g. git clone https://github.com/zchoi/GLSCL) and pass its folder.")
    def purge() -> None:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]

    purge()
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        purge()
