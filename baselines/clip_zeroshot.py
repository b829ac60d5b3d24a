"""`clip-zeroshot`: CLIP without training, cosine of the text [EOS] and the mean of normalised frame features."""

from __future__ import annotations

from dataclasses import dataclass

from baselines.contrastive import ContrastiveConfig
from baselines.meanpool import MeanPoolRetrieval
from benchmark.registry import register_model


@dataclass
class ClipZeroShotConfig(ContrastiveConfig):
    """Zero-shot CLIP has no fields beyond the backbone's."""


@register_model(
    "clip-zeroshot",
    config=ClipZeroShotConfig,
    description="Zero-shot CLIP: cosine of text [EOS] and the mean of L2-normalised frame features; no training.",
)
class ClipZeroShot(MeanPoolRetrieval):
    """Mean-pooled CLIP frame features scored against the text [EOS]; evaluated as is, never trained."""

    trainable = False
