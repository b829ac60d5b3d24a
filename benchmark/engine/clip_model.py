"""The base of every shipped method: config fields shared by all and the CLIP backbone behind the model contract."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from benchmark.engine.backbone import Backbone, BackboneSpec
from benchmark.retrieval_model import RetrievalModel


@dataclass
class RetrievalConfig:
    """Fields every method has. `clip_weights`: a weights file, "random" (tests and cost counts only), "checkpoint"
    (uninitialised, a checkpoint is loaded right after) or None. `quick_gelu`: the backbone's activation (None =
    inferred from the weights; the built model records the value it used, so a reload rebuilds the same network)."""

    backbone: str = "ViT-B-32"
    clip_weights: str | None = None
    pretrained_tag: str | None = None
    text_padding_mask: bool = True
    quick_gelu: bool | None = None
    logit_scale_max: float = 100.0


class ClipRetrievalModel(RetrievalModel):
    """A CLIP backbone plus a method-specific head; subclasses implement the four contract methods."""

    def __init__(self, config: RetrievalConfig) -> None:
        super().__init__()
        self.config = config
        random = config.clip_weights == "random"
        spec = BackboneSpec(
            name=config.backbone,
            weights=None if random else config.clip_weights,
            pretrained_tag=config.pretrained_tag,
            text_padding_mask=config.text_padding_mask,
            quick_gelu=config.quick_gelu,
        )
        self.backbone = Backbone(spec, allow_random=random)
        config.quick_gelu = self.backbone.quick_gelu

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

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The CLIP towers: trained at the backbone learning rate (lr x coef_lr)."""
        return list(self.backbone.parameters())
