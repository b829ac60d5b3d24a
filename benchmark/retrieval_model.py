"""The DESIGN model contract every registered method implements, independent of how its encoders are built.

``encode_text`` / ``encode_video`` do all per-item work once; ``score`` does only per-pair work and accepts any chunk
sizes; ``losses`` returns named terms whose sum is the training loss. The CLIP-backbone base class that the shipped
methods extend lives in the engine (`benchmark.engine.clip_model`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

Features = dict[str, torch.Tensor]


class RetrievalModel(nn.Module, ABC):
    """A text-video retrieval method: the four contract methods plus the parameter split the trainer needs."""

    trainable: bool = True
    # Text-video pairs per score() call when a gallery is streamed in blocks (videos per block = this / texts): bounds
    # score()'s per-pair intermediates (a few [pairs, frames] tensors, tens of MB here) while keeping the number of
    # calls, each a handful of tensor operations, small: one query meets a 100k gallery in one call. Heads with large
    # per-pair work (X-CLIP's word x frame matrices) lower it.
    score_block_pairs: int = 1 << 17

    def active_loss_terms(self) -> list[str]:
        """Names of the loss terms this configuration puts in the graph (recorded in run records)."""
        return ["nce"]

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at the backbone learning rate (lr x coef_lr); none unless a subclass has a backbone."""
        return []

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at the full learning rate (everything outside `backbone_parameters`)."""
        inside = {id(p) for p in self.backbone_parameters()}
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
