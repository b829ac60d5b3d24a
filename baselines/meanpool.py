"""Mean pooling of L2-normalised frame features: the head of zero-shot CLIP and CLIP4Clip (meanP, seqTransf).

Per video offline: one unit vector. Per text: the unit [EOS] feature. Per pair: one dot product (D multiply-adds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.contrastive import ContrastiveRetrieval
from benchmark.retrieval_model import Features


def mean_pool_frames(frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """[B,T,D] frame features + [B,T] mask -> [B,D]: mean of the unit frame vectors over valid frames, renormalised.

    Frames are normalised before the mean (CLIP4Clip's meanP); padded frames are excluded whatever they hold.
    """
    valid = frame_mask.bool().unsqueeze(-1)
    unit = torch.where(valid, F.normalize(frames, dim=-1), torch.zeros((), dtype=frames.dtype, device=frames.device))
    mean = unit.sum(dim=1) / valid.sum(dim=1).clamp(min=1).to(frames.dtype)
    return F.normalize(mean, dim=-1)


class MeanPoolRetrieval(ContrastiveRetrieval):
    """cos(text [EOS], mean-pooled frames); subclasses may contextualise the frames first via `temporal`."""

    def temporal(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Per-frame features before pooling: unchanged here (meanP); seqTransf overrides this."""
        return frames

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> Features:
        """{"text": [B,D] unit [EOS] features}."""
        eos, _ = self.backbone.encode_text(tokens, mask)
        return {"text": F.normalize(eos, dim=-1)}

    def encode_video(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> Features:
        """{"video": [B,D] unit mean-pooled (optionally temporally contextualised) frame features}."""
        features = self.temporal(self.frame_features(frames), frame_mask)
        return {"video": mean_pool_frames(features, frame_mask)}

    def score(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """[n_text, n_video] cosine similarities (one dot product per pair)."""
        return text_feats["text"] @ video_feats["video"].t()
