"""`clip4clip-meanp` and `clip4clip-seqtransf`: fine-tuned CLIP with parameter-free or temporal-transformer pooling.

Both pool offline to one vector per video, so a pair costs one dot product; seqTransf adds a temporal transformer
(4 layers, initialised from the CLIP text tower) that runs once per video.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.contrastive import ContrastiveConfig
from baselines.meanpool import MeanPoolRetrieval
from benchmark.engine.temporal import SeqTransf
from benchmark.registry import register_model

TEMPORAL_MODES = ("meanP", "seqTransf")


@dataclass
class CLIP4ClipConfig(ContrastiveConfig):
    """`temporal`: "meanP" (pool CLIP frames) or "seqTransf" (temporal transformer of `temporal_layers`, then pool;
    `temporal_ln_eps` its LayerNorm epsilon, official 1e-12)."""

    temporal: str = "meanP"
    temporal_layers: int = 4
    temporal_ln_eps: float = 1e-5


@register_model(
    "clip4clip-seqtransf",
    config=CLIP4ClipConfig,
    defaults={"temporal": "seqTransf"},
    description="CLIP4Clip seqTransf: 4-layer temporal transformer (text-tower init) over frames, then meanP.",
)
@register_model(
    "clip4clip-meanp",
    config=CLIP4ClipConfig,
    defaults={"temporal": "meanP"},
    description="CLIP4Clip meanP: fine-tuned CLIP, cosine of text [EOS] and mean-pooled normalised frames.",
)
class CLIP4Clip(MeanPoolRetrieval):
    """CLIP4Clip's parameter-free (meanP) and sequential-transformer (seqTransf) similarity heads."""

    def __init__(self, config: CLIP4ClipConfig) -> None:
        if config.temporal not in TEMPORAL_MODES:
            raise ValueError(f"CLIP4Clip `temporal` must be one of {TEMPORAL_MODES}, got {config.temporal!r}.")
        super().__init__(config)
        seq = config.temporal == "seqTransf"
        self.seq_transf = SeqTransf(self.backbone, config.temporal_layers, config.temporal_ln_eps) if seq else None

    def temporal(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """F' = F + Enc(F + P) for seqTransf; the CLIP frames unchanged for meanP."""
        return frames if self.seq_transf is None else self.seq_transf(frames, frame_mask)
