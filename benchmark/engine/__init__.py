"""The training and evaluation engine: backbone, temporal module, losses, optimisation, DDP, checkpoints, run set-up,
pretraining, training and evaluation runs, efficiency.

Layer: engine. May import the evaluation core and `benchmark.data`; never `benchmark.study`, `leaderboard` or a
method package (models are built by name through `benchmark.registry`). `baselines`, `glscl` and plugins import only
its building blocks (`backbone`, `clip_model`, `temporal`, `text_guided`, `losses`); the ones a new method needs most
are importable from here: ``from benchmark.engine import ClipRetrievalModel, RetrievalConfig, symmetric_infonce``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClipRetrievalModel", "RetrievalConfig", "symmetric_infonce"]


def __getattr__(name: str) -> Any:
    """The building blocks on first use, so importing one engine module does not load open_clip for the others."""
    if name in ("ClipRetrievalModel", "RetrievalConfig"):
        from benchmark.engine import clip_model

        return getattr(clip_model, name)
    if name == "symmetric_infonce":
        from benchmark.engine import losses

        return losses.symmetric_infonce
    raise AttributeError(f"module 'benchmark.engine' has no attribute {name!r}")
