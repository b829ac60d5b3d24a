"""`xpool`: X-Pool's text-conditioned attention pooling of frames (Gorti et al., CVPR 2022).

The text [EOS] is the query, the frames are keys and values: `a = softmax_T(K q / sqrt(d))`, `o = LN2(W_o V^T a)`,
`z = LN3(o + Dropout(W_l o))`, `s = cos(t, z)`; LN1 is shared by text and frames, every linear map starts as the
identity. Offline per video: keys and values, with W_o folded into the values (exact, since the attention weights sum
to one), so a pair computed as written costs 2TD + D^2 + D multiply-adds (Table I's 275 G at D=512, T=12 over 1k x 1k).

Without dropout (evaluation) the pooled video never needs to exist: LN2, W_l, LN3 and the cosine are affine maps and
norms of `V^T a`, so every quantity they need is a linear or quadratic form in the T attention weights `a` whose
coefficients are per-video (Grams of the centred and mixed values) or per-text (the text pulled back through LN3,
W_l and LN2). `score` then costs 2TD + 3T^2 + 3T multiply-adds per pair, exactly the same function; training with
dropout keeps the explicit per-pair vector, since dropout masks each pair's W_l o separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.contrastive import ContrastiveConfig, ContrastiveRetrieval
from benchmark.engine.pairwise import row_dots, softmax, weighted_rows
from benchmark.registry import register_model
from benchmark.retrieval_model import Features

FORMS = 3  # quadratic forms per pair in the folded score (|C p|^2, |C y|^2, |gamma3 * C y|^2)
LINEAR = 3  # linear forms per pair beside them


def xpool_pair_macs(dim: int, frames: int, heads: int = 1) -> int:
    """Multiply-adds per (text, video) pair computed as written: attention logits + pooling + W_l + the cosine."""
    return frames * dim + heads * frames * dim + dim * dim + dim


def xpool_folded_pair_macs(dim: int, frames: int, heads: int = 1) -> int:
    """Multiply-adds per pair of the folded score: attention logits, the text's dot with each (head, frame) value row,
    and the weights against the per-video [HT, 3HT + 6] form coefficients."""
    rows = heads * frames
    return frames * dim + rows * dim + rows * (FORMS * rows + LINEAR)


def _center(x: torch.Tensor) -> torch.Tensor:
    """x minus its mean over the feature dimension (what LayerNorm subtracts)."""
    return x - x.mean(dim=-1, keepdim=True)


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

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        """(I + W_l) diag(gamma2) x on the last dimension: LN2's scale, then the residual W_l branch (no biases)."""
        scaled = x * self.norm_attn.weight
        return scaled + scaled @ self.proj.weight.t()

    def _offset(self) -> torch.Tensor:
        """k1 = C((I + W_l) beta2 + b_l): the part of LN3's centred input that does not depend on the video."""
        beta2 = self.norm_attn.bias
        return _center(beta2 + beta2 @ self.proj.weight.t() + self.proj.bias)

    def prepare_text(self, text: torch.Tensor) -> Features:
        """[B,D] [EOS] features -> unit vectors, [B,H,D/H] attention queries, and for the folded score the text pulled
        back through LN3's scale, W_l and LN2's scale (`fold_query` [B,D]) with three scalars (`fold_text` [B,3])."""
        unit = F.normalize(text, dim=-1)
        gamma3 = self.norm_out.weight
        back = _center(gamma3 * unit)
        pulled = _center(self.norm_attn.weight * (back + back @ self.proj.weight))
        scalars = [pulled @ _center(self.out.bias), (gamma3 * unit) @ self._offset(), unit @ self.norm_out.bias]
        return {
            "text": unit,
            "query": self._split_heads(self.query(self.norm_in(text))),
            "fold_query": pulled,
            "fold_text": torch.stack(scalars, dim=-1),
        }

    def prepare_video(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> Features:
        """[B,T,D] frames + [B,T] mask -> {"keys": [B,H,T,D/H], "values": [B,H,T,D] (W_o folded in), "frame_mask",
        "fold": [B,HT,3HT+3]}.

        `fold` holds, side by side, the Grams of the rows P = C values + C b_o / H (so that C pooled = P^T a, the
        weights summing to H), of Y = C (I + W_l) diag(gamma2) P and of diag(gamma3) Y, then Y k1, diag(gamma3)^2 Y k1
        and Y (gamma3 * beta3); each pair multiplies its attention weights into all of them with one product.
        """
        normed = self.norm_in(frames)
        keys = self._split_heads(self.key(normed)).transpose(1, 2)
        values = self._split_heads(self.value(normed))
        out_weight = self._split_heads(self.out.weight)  # [D_out, H, D/H]
        folded = torch.einsum("bthe,dhe->bhtd", values, out_weight)
        rows = _center(folded.flatten(1, 2)) + _center(self.out.bias) / self.heads  # [B, HT, D]
        mixed = _center(self._mix(rows))
        gamma3, offset = self.norm_out.weight, self._offset()
        scaled = mixed * gamma3
        grams = [rows @ rows.transpose(1, 2), mixed @ mixed.transpose(1, 2), scaled @ scaled.transpose(1, 2)]
        linear = [mixed @ offset, scaled @ (gamma3 * offset), mixed @ (gamma3 * self.norm_out.bias)]
        fold = torch.cat([*grams, torch.stack(linear, dim=-1)], dim=-1)
        return {"keys": keys, "values": folded, "frame_mask": frame_mask, "fold": fold}

    def attention(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """[n_text, n_video, H, T] attention weights of each text over each video's valid frames, per head."""
        query, keys = text_feats["query"], video_feats["keys"]
        logits = torch.stack([row_dots(query[:, h], keys[:, h]) for h in range(self.heads)], dim=2)
        logits = logits * query.shape[-1] ** -0.5
        valid = video_feats["frame_mask"].bool()[None, :, None, :]
        return softmax(logits.masked_fill(~valid, torch.finfo(logits.dtype).min), dim=-1)

    def score(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """[n_text, n_video] cos(text, video pooled for that text); every pair gets its own pooled video.

        Folded (see the module docstring) unless dropout is active, when each pair's vector is built explicitly.
        """
        if self.training and self.dropout.p > 0:
            return self._score_explicit(text_feats, video_feats)
        return self._score_folded(text_feats, video_feats)

    def _score_explicit(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """The equations as written: [n_text, n_video, D] pooled vectors, LN2, W_l (with dropout), LN3, cosine."""
        query, keys = text_feats["query"], video_feats["keys"]
        logits = torch.einsum("the,vhfe->tvhf", query, keys) * query.shape[-1] ** -0.5
        valid = video_feats["frame_mask"].bool()[None, :, None, :]
        logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
        pooled = torch.einsum("tvhf,vhfd->tvd", logits.softmax(dim=-1), video_feats["values"]) + self.out.bias
        attended = self.norm_attn(pooled)
        pooled_video = self.norm_out(attended + self.dropout(self.proj(attended)))
        return torch.einsum("td,tvd->tv", text_feats["text"], F.normalize(pooled_video, dim=-1))

    def _score_folded(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """The same cosine from linear and quadratic forms in the attention weights a (no per-pair D-vector):
        C p = P^T a, C y = r Y^T a + k1 with r = 1/sqrt(var p + eps), z = gamma3 * ry * C y + beta3."""
        weights = self.attention(text_feats, video_feats).flatten(2)  # [A, B, HT]
        rows = weights.shape[-1]
        values = video_feats["values"].flatten(1, 2)
        products = weighted_rows(weights, video_feats["fold"])
        forms = (products[..., : FORMS * rows].unflatten(-1, (FORMS, rows)) * weights[..., None, :]).sum(dim=-1)
        linear = products[..., FORMS * rows :]
        pooled_text, offset_text, beta_text = (x[:, None] for x in text_feats["fold_text"].unbind(dim=-1))
        gamma3, beta3, offset = self.norm_out.weight, self.norm_out.bias, self._offset()
        dim = len(offset)
        r = (forms[..., 0].clamp_min(0) / dim + self.norm_attn.eps).rsqrt()  # LN2: |C p|^2 = a^T G1 a
        var_y = (r * r * forms[..., 1] + 2 * r * linear[..., 0] + offset @ offset).clamp_min(0) / dim
        ry = (var_y + self.norm_out.eps).rsqrt()
        gamma_cy_sq = r * r * forms[..., 2] + 2 * r * linear[..., 1] + (gamma3 * offset) @ (gamma3 * offset)
        beta_cy = r * linear[..., 2] + (gamma3 * beta3) @ offset
        z_sq = ry * ry * gamma_cy_sq + 2 * ry * beta_cy + beta3 @ beta3
        text_dot = (weights * row_dots(text_feats["fold_query"], values)).sum(dim=-1) + pooled_text
        text_z = ry * (r * text_dot + offset_text) + beta_text  # <t, z>
        return text_z / z_sq.clamp_min(0).sqrt().clamp_min(1e-12)


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
