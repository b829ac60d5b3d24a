"""`xpool`: X-Pool's text-conditioned attention pooling of frames (Gorti et al., CVPR 2022).

The text [EOS] is the query, the frames are keys and values: `a = softmax_T(K q / sqrt(d))`, `o = LN2(W_o V^T a)`,
`z = LN3(o + Dropout(W_l o))`, `s = cos(t, z)`; LN1 is shared by text and frames, every linear map starts as the
identity. Offline per video: keys and values, with W_o folded into the values (exact, since the attention weights sum
to one), so a pair costs 2TD + D^2 + D multiply-adds (Table I's 275 G at D=512, T=12 over 1k x 1k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.contrastive import ContrastiveConfig, ContrastiveRetrieval
from benchmark.registry import register_model
from benchmark.retrieval_model import Features


def xpool_pair_macs(dim: int, frames: int, heads: int = 1) -> int:
    """Online multiply-adds per (text, video) pair: attention logits + pooling + W_l + the final cosine."""
    return frames * dim + heads * frames * dim + dim * dim + dim


def _identity_linear(dim: int) -> nn.Linear:
    layer = nn.Linear(dim, dim)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(dim))
        layer.bias.zero_()
    return layer


class XPoolHead(nn.Module):
    """The X-Pool cross-modal pooling head on [EOS] text features and per-frame video features."""

    def __init__(self, dim: int, heads: int = 1, dropout: float = 0.3) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"X-Pool `heads` must divide the embedding width {dim}, got {heads}.")
        self.heads = heads
        self.norm_in = nn.LayerNorm(dim)
        self.query = _identity_linear(dim)
        self.key = _identity_linear(dim)
        self.value = _identity_linear(dim)
        self.out = _identity_linear(dim)
        self.norm_attn = nn.LayerNorm(dim)
        self.proj = _identity_linear(dim)
        self.dropout = nn.Dropout(dropout)
        self.norm_out = nn.LayerNorm(dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, x.shape[-1] // self.heads))

    def prepare_text(self, text: torch.Tensor) -> Features:
        """[B,D] [EOS] features -> {"text": unit vectors, "query": [B,H,D/H] attention queries}."""
        return {"text": F.normalize(text, dim=-1), "query": self._split_heads(self.query(self.norm_in(text)))}

    def prepare_video(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> Features:
        """[B,T,D] frames + [B,T] mask -> {"keys": [B,H,T,D/H], "values": [B,H,T,D] (W_o folded in), "frame_mask"}."""
        normed = self.norm_in(frames)
        keys = self._split_heads(self.key(normed)).transpose(1, 2)
        values = self._split_heads(self.value(normed))
        out_weight = self._split_heads(self.out.weight)  # [D_out, H, D/H]
        folded = torch.einsum("bthe,dhe->bhtd", values, out_weight)
        return {"keys": keys, "values": folded, "frame_mask": frame_mask}

    def score(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """[n_text, n_video] cos(text, video pooled for that text); every pair gets its own pooled video."""
        query, keys = text_feats["query"], video_feats["keys"]
        logits = torch.einsum("the,vhfe->tvhf", query, keys) * query.shape[-1] ** -0.5
        valid = video_feats["frame_mask"].bool()[None, :, None, :]
        logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
        pooled = torch.einsum("tvhf,vhfd->tvd", logits.softmax(dim=-1), video_feats["values"]) + self.out.bias
        attended = self.norm_attn(pooled)
        pooled_video = self.norm_out(attended + self.dropout(self.proj(attended)))
        return torch.einsum("td,tvd->tv", text_feats["text"], F.normalize(pooled_video, dim=-1))


@dataclass
class XPoolConfig(ContrastiveConfig):
    """`heads`: attention heads (1 in the paper); `dropout`: on the W_l branch (0.3 in the official code)."""

    heads: int = 1
    dropout: float = 0.3


@register_model(
    "xpool",
    config=XPoolConfig,
    description="X-Pool: text-conditioned attention pooling of frames, cosine of text and its pooled video.",
)
class XPool(ContrastiveRetrieval):
    """CLIP frames pooled per text by X-Pool's attention head; trained with InfoNCE over all batch pairs."""

    def __init__(self, config: XPoolConfig) -> None:
        super().__init__(config)
        self.head = XPoolHead(self.embed_dim, config.heads, config.dropout)

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> Features:
        """Unit [EOS] features and the attention queries."""
        eos, _ = self.backbone.encode_text(tokens, mask)
        return self.head.prepare_text(eos)

    def encode_video(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> Features:
        """Per-frame keys and (output-projected) values, plus the frame mask."""
        return self.head.prepare_video(self.frame_features(frames), frame_mask)

    def score(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """The per-pair attention pooling and cosine (see XPoolHead.score)."""
        return self.head.score(text_feats, video_feats)
