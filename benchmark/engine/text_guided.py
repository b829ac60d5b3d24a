"""Parameter-free text-guided pooling of frames, shared by GLSCL's GIM and GLCCL's GLIM.

A query q (a sentence or a token feature) pools the frames f_1..f_T of a video with w_i = softmax_i(<q, f_i> / temp).
The pooled feature v = sum_i w_i f_i is never materialised: its dot product with anything is a weighted sum of
per-frame dots, and its squared norm is w^T (F F^T) w, with the Gram matrix F F^T computed once per video. For a block
of queries and videos, the dots are one matrix product over the flattened frames and the norms one product batched
over videos (`benchmark.engine.pairwise`).
"""

from __future__ import annotations

from typing import Literal

import torch

from benchmark.engine.pairwise import quadratic_forms, row_dots, softmax

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
    dots = row_dots(queries.reshape(-1, queries.shape[-1]), frames).view(*queries.shape[:-1], *frames.shape[:2])
    return weights_from_dots(dots, frame_mask, temp, masking), dots


def weights_from_dots(dots: torch.Tensor, frame_mask: torch.Tensor, temp: float, masking: FrameMasking) -> torch.Tensor:
    """`text_guided_weights` from query-frame dots [..., B, T] already computed (e.g. in one product shared by several
    kinds of query)."""
    if masking not in FRAME_MASKINGS:
        raise ValueError(f"Frame masking must be one of {FRAME_MASKINGS}, got {masking!r}.")
    if masking == "none":
        return softmax(dots, dim=-1, temperature=temp)
    valid = frame_mask.to(torch.bool)
    logits = dots.masked_fill(~valid, torch.finfo(dots.dtype).min) if masking == "before-softmax" else dots
    return softmax(logits, dim=-1, temperature=temp) * valid.to(dots.dtype)


def pooled_sq_norms(weights: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """|sum_i w_i f_bi|^2 = w^T G_b w for [..., B, T] weights and [B,T,T] Gram matrices -> [..., B]."""
    lead = weights.shape[:-2]
    return quadratic_forms(weights.reshape(-1, *weights.shape[-2:]), gram).view(*lead, weights.shape[-2])
