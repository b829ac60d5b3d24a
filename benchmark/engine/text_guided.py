"""Parameter-free text-guided pooling of frames, shared by GLSCL's GIM and GLCCL's GLIM.

A query q (a sentence or a token feature) pools the frames f_1..f_T of a video with w_i = softmax_i(<q, f_i> / temp).
The pooled feature v = sum_i w_i f_i is never materialised: its dot product with anything is a weighted sum of
per-frame dots, and its squared norm is w^T (F F^T) w, with the Gram matrix F F^T computed once per video.
"""

from __future__ import annotations

from typing import Literal

import torch

FrameMasking = Literal["none", "after-softmax", "before-softmax"]
FRAME_MASKINGS: tuple[str, ...] = ("none", "after-softmax", "before-softmax")


def frame_gram(frames: torch.Tensor) -> torch.Tensor:
    """[B,T,D] frame features -> [B,T,T] Gram matrices F_b F_b^T (per-video work, precomputable once per video)."""
    return frames @ frames.transpose(1, 2)


def text_guided_weights(
    queries: torch.Tensor,
    frames: torch.Tensor,
    frame_mask: torch.Tensor,
    temp: float,
    masking: FrameMasking,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame weights softmax_i(<q, f_bi> / temp) of every query over every video; returns (weights, dots).

    `queries` is [..., D] and `frames` [B,T,D]; both outputs are [..., B, T]. Padded frames (frame_mask 0):
    `"none"` (GLCCL's official code) leaves them in the softmax and the pool; `"after-softmax"` (GLSCL's official code)
    zeroes their weights after a softmax over all T, without renormalising; `"before-softmax"` leaves them out.
    """
    if masking not in FRAME_MASKINGS:
        raise ValueError(f"Frame masking must be one of {FRAME_MASKINGS}, got {masking!r}.")
    dots = torch.einsum("...d,btd->...bt", queries, frames)
    logits = dots / temp
    if masking == "none":
        return logits.softmax(dim=-1), dots
    valid = frame_mask.to(torch.bool)
    if masking == "before-softmax":
        logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
    return logits.softmax(dim=-1) * valid.to(logits.dtype), dots


def pooled_sq_norms(weights: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """|sum_i w_i f_bi|^2 = w^T G_b w for [..., B, T] weights and [B,T,T] Gram matrices -> [..., B]."""
    return (torch.einsum("...bi,bij->...bj", weights, gram) * weights).sum(dim=-1)
