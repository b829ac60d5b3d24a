"""The base of every registered method: config fields shared by all, the backbone, and the DESIGN model contract.

Contract: ``encode_text`` / ``encode_video`` do all per-item work once; ``score`` does only per-pair work and accepts
any chunk sizes; ``losses`` returns named terms whose sum is the training loss.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from benchmark.backbone import Backbone, BackboneSpec

Features = dict[str, torch.Tensor]


@dataclass
class RetrievalConfig:
    """Fields every method has. `clip_weights`: a weights file, "random" (tests and cost counts only) or None."""

    backbone: str = "ViT-B-32"
    clip_weights: str | None = None
    pretrained_tag: str | None = None
    text_padding_mask: bool = True
    logit_scale_max: float = 100.0


class RetrievalModel(nn.Module, ABC):
    """A CLIP backbone plus a method-specific head; subclasses implement the four contract methods."""

    trainable: bool = True

    def __init__(self, config: RetrievalConfig) -> None:
        super().__init__()
        self.config = config
        random = config.clip_weights == "random"
        spec = BackboneSpec(
            name=config.backbone,
            weights=None if random else config.clip_weights,
            pretrained_tag=config.pretrained_tag,
            text_padding_mask=config.text_padding_mask,
        )
        self.backbone = Backbone(spec, allow_random=random)

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    def logit_scale(self) -> torch.Tensor:
        """exp(CLIP's log temperature), clamped at `logit_scale_max` as X-Pool and GLSCL do."""
        return self.backbone.logit_scale.exp().clamp(max=self.config.logit_scale_max)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """[B,T,3,H,W] clips -> [B,T,D] per-frame [CLS] features (padded frames are encoded too, as in the field)."""
        batch, length = frames.shape[:2]
        return self.backbone.encode_frames(frames.flatten(0, 1)).view(batch, length, -1)

    def active_loss_terms(self) -> list[str]:
        """Names of the loss terms this configuration puts in the graph (recorded in run records)."""
        return ["nce"]

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at the backbone learning rate (lr x coef_lr)."""
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at the full learning rate (everything outside the backbone)."""
        inside = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in inside]

    @abstractmethod
    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> Features:
        """[B,L] tokens + mask -> per-text features (all per-text work, done once per text)."""

    @abstractmethod
    def encode_video(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> Features:
        """[B,T,3,H,W] clips + [B,T] mask -> per-video features (all per-video work, done once per video)."""

    @abstractmethod
    def score(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """[n_text, n_video] similarities from precomputed features: per-pair work only, any chunk sizes."""

    @abstractmethod
    def losses(self, text_feats: Features, video_feats: Features, video_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named loss terms on a batch (`nce` and any auxiliary terms); the training loss is their sum."""
