"""CLIP4Clip's seqTransf temporal module: F' = F + Enc(F + P[0:T]), initialised from the CLIP text tower.

Shared by `clip4clip-seqtransf`, X-CLIP and GLSCL (where it is always on). Padded frames are masked only as keys;
their outputs stay in F', as in the official code. The official module (`module_cross.Transformer`) uses TF-style
LayerNorms with epsilon 1e-12; the copied CLIP blocks have 1e-5 (`ln_eps` switches).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from benchmark.engine.backbone import Backbone


class SeqTransf(nn.Module):
    """Residual temporal transformer over per-frame features; blocks and positions copied from CLIP's text tower."""

    def __init__(self, backbone: Backbone, layers: int = 4, ln_eps: float = 1e-5) -> None:
        super().__init__()
        available = len(backbone.text_blocks)
        if not 1 <= layers <= available:
            raise ValueError(f"seqTransf needs 1..{available} layers (the text tower's depth), got {layers}.")
        if ln_eps <= 0:
            raise ValueError(f"seqTransf LayerNorm epsilon must be positive, got {ln_eps}.")
        self.blocks = nn.ModuleList(copy.deepcopy(backbone.text_blocks[i]) for i in range(layers))
        for norm in (m for m in self.blocks.modules() if isinstance(m, nn.LayerNorm)):
            norm.eps = ln_eps  # CLIP's 1e-5, or the official TF-style 1e-12 of module_cross
        self.position = nn.Parameter(backbone.text_positional_embedding.detach().clone())
        self.heads = backbone.text_heads

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """[B,T,D] frame features + [B,T] mask -> [B,T,D] temporally contextualised features."""
        batch, length, _ = frames.shape
        if length > self.position.shape[0]:
            raise ValueError(f"{length} frames exceed the {self.position.shape[0]} temporal positions available.")
        x = frames + self.position[:length]
        key_pad = (1.0 - frame_mask.to(frames.dtype)) * -1e6
        attn_mask = key_pad[:, None, :].expand(batch, length, length).repeat_interleave(self.heads, dim=0)
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
        return x + frames
