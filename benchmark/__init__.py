"""tvbench's common harness, in layers (lower layers never import higher ones; import-linter checks it).

This top level is the lowest layer: the evaluation core and the contracts (`metrics`, `runs`, `io`, `registry`,
`retrieval_model`, `presets`, and the commands that need nothing else: `metrics_cli`, `models_cli`). It imports no
other tvbench package. Above it: `benchmark.data`, then `benchmark.engine`, then the methods (`baselines`, `glscl`)
and `leaderboard`, then `benchmark.study`; `benchmark.cli` only dispatches to each layer's command modules.

The model contract is importable from here: ``from benchmark import RetrievalModel, register_model`` (the CLIP base
class a method usually extends is one layer up: ``from benchmark.engine import ClipRetrievalModel, RetrievalConfig``).
"""

from __future__ import annotations

from typing import Any

from benchmark.registry import build_model, list_models, register_model

__version__ = "0.1.0"
__all__ = ["Features", "RetrievalModel", "build_model", "list_models", "register_model"]


def __getattr__(name: str) -> Any:
    """`RetrievalModel` and `Features` on first use: they need torch, which `tvbench metrics` never loads."""
    if name in ("RetrievalModel", "Features"):
        from benchmark import retrieval_model

        return getattr(retrieval_model, name)
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
