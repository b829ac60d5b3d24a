"""GLSCL's (shared) local interaction module: learnable queries decoded against frames or token states into concepts.

Quirk numbers (#n) refer to `glscl_official_code.md` §8 (section numbers to its other sections).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

DecoderLayerKind = Literal["torch-post-ln", "cross-attention"]


class CrossAttentionLayer(nn.Module):
    """The paper's Fig. 2 block: x = LN(x + Dropout(CrossAttn(x, memory))), with no self-attention and no FFN (§9)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        attended, _ = self.attn(x, memory, memory, key_padding_mask=memory_key_padding_mask, need_weights=False)
        return self.norm(x + self.dropout(attended))


def make_layer(kind: DecoderLayerKind, dim: int, heads: int, feedforward: int, dropout: float) -> nn.Module:
    """One decoder layer: PyTorch's post-LN TransformerDecoderLayer (official code, ReLU) or the paper's block."""
    if kind == "torch-post-ln":
        return nn.TransformerDecoderLayer(
            d_model=dim, nhead=heads, dim_feedforward=feedforward, dropout=dropout, batch_first=True, norm_first=False
        )
    if kind == "cross-attention":
        return CrossAttentionLayer(dim, heads, dropout)
    raise ValueError(f"decoder_layer must be 'torch-post-ln' or 'cross-attention', got {kind!r}.")


class ConceptDecoder(nn.Module):
    """N_L decoder layers with no final norm; `identical_init` starts every layer from one template's weights, as
    `nn.TransformerDecoder`'s deep copy does in the official code (§5)."""

    def __init__(
        self,
        kind: DecoderLayerKind,
        dim: int,
        heads: int,
        feedforward: int,
        dropout: float,
        layers: int,
        identical_init: bool,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"The local module needs at least 1 decoder layer, got decoder_layers={layers}.")
        if identical_init:
            template = make_layer(kind, dim, heads, feedforward, dropout)
            self.layers = nn.ModuleList(copy.deepcopy(template) for _ in range(layers))
        else:
            self.layers = nn.ModuleList(make_layer(kind, dim, heads, feedforward, dropout) for _ in range(layers))

    def forward(
        self, queries: torch.Tensor, memory: torch.Tensor, memory_key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[Q,D] queries attend to [B,M,D] memory -> [B,Q,D] concepts (padding mask: True = ignore that key)."""
        x = queries.unsqueeze(0).expand(memory.shape[0], -1, -1)
        for layer in self.layers:
            x = layer(x, memory, memory_key_padding_mask=memory_key_padding_mask)
        return x


class LocalInteraction(nn.Module):
    """Learnable queries (uniform [0,1) init, §5) and decoders that turn video frames and text tokens into Q concepts.

    With `share_queries` / `share_decoder` (official `query_share=1`, `cross_att_share=1`) one query set and one
    decoder serve both modalities; otherwise each modality gets its own. Concepts depend on one item only. Shared
    pieces are registered once (no aliased tensors, so checkpoints stay safetensors-clean).
    """

    def __init__(
        self,
        dim: int,
        num_queries: int,
        layers: int,
        heads: int,
        feedforward: int,
        dropout: float,
        kind: DecoderLayerKind,
        share_queries: bool,
        share_decoder: bool,
        identical_init: bool,
    ) -> None:
        super().__init__()
        if num_queries < 1:
            raise ValueError(f"num_queries must be >= 1, got {num_queries}.")

        def decoder() -> ConceptDecoder:
            return ConceptDecoder(kind, dim, heads, feedforward, dropout, layers, identical_init)

        self.queries = nn.Parameter(torch.rand(num_queries, dim))
        self.decoder = decoder()
        self.text_queries = None if share_queries else nn.Parameter(torch.rand(num_queries, dim))
        self.text_decoder = None if share_decoder else decoder()

    def video_concepts(self, frames: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        """[B,T,D] temporal frame features -> [B,Q,D] video concepts."""
        return self.decoder(self.queries, frames, padding)

    def text_concepts(self, tokens: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        """[B,L,D] token states (SOT, words, EOS, padding) -> [B,Q,D] text concepts."""
        queries = self.queries if self.text_queries is None else self.text_queries
        decoder = self.decoder if self.text_decoder is None else self.text_decoder
        return decoder(queries, tokens, padding)
