"""The training objective every reference baseline shares: symmetric InfoNCE over the model's own score."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.engine.clip_model import ClipRetrievalModel, RetrievalConfig
from benchmark.engine.losses import symmetric_infonce
from benchmark.retrieval_model import Features


@dataclass
class ContrastiveConfig(RetrievalConfig):
    """`nce_same_video_positives`: count other captions of a batch's video as positives (off: the official codes,
    which treat them as negatives; on: the multi-positive InfoNCE)."""

    nce_same_video_positives: bool = False


def float32_features(features: Features) -> Features:
    """Floating-point features cast to float32 (integer masks unchanged): heads that score in full precision."""
    return {k: v.float() if v.is_floating_point() else v for k, v in features.items()}


class ContrastiveRetrieval(ClipRetrievalModel):
    """A retrieval model whose only loss term is `nce`: symmetric InfoNCE on `logit_scale * score` over the batch.

    The batch similarities are computed in float32 with autocast off: at λ_s ≈ 100, half-precision scores would
    quantise the logits.
    """

    def losses(self, text_feats: Features, video_feats: Features, video_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"nce": InfoNCE} for a batch of matching (text, video) pairs."""
        with torch.autocast(device_type=video_ids.device.type, enabled=False):
            sim = self.score(float32_features(text_feats), float32_features(video_feats))
            positives = video_ids if self.config.nce_same_video_positives else None
            return {"nce": symmetric_infonce(sim, self.logit_scale(), positives)}
