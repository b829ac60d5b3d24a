"""GLSCL's functional core: the parameter-free global interaction, the local concept similarity, IDL and ICL.

Pure tensors in and out. Quirk numbers (#n) refer to `glscl_official_code.md` §8; the defaults reproduce the official
code (zchoi/GLSCL@06979f8). Pairwise functions never build an [A,B,T,D] or [A,B,D] tensor: the text-conditioned video
feature v_ab = sum_i w_abi f_bi enters Sim1 only through <t_a, v_ab> = sum_i w_abi <t_a, f_bi> and
|v_ab|^2 = w_ab^T (F_b F_b^T) w_ab (`benchmark.engine.text_guided`), so the largest intermediate is the [A,B,T] weight
tensor. The frame dots are one matrix product over the block's flattened frames, the forms one product batched over
videos, and Sim2 one product of flattened unit concepts.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from benchmark.engine.text_guided import frame_gram, pooled_sq_norms, text_guided_weights

GimMask = Literal["after-softmax", "before-softmax"]
IclNorm = Literal["queries", "batch"]

_EPS = 1e-12  # F.normalize's epsilon: norms are floored at it


def gim_weights(
    text_eos: torch.Tensor,
    frames: torch.Tensor,
    frame_mask: torch.Tensor,
    temp: float,
    mask: GimMask = "after-softmax",
) -> tuple[torch.Tensor, torch.Tensor]:
    """GIM frame weights w[a,b,i] = softmax_i(<t_a, f_bi> / temp), masked; returns (weights, dots), both [A,B,T].

    `mask="after-softmax"` (official, #7): the softmax runs over all T frames, padded ones included, and padded weights
    are zeroed afterwards without renormalising. `"before-softmax"`: padded frames are left out of the softmax. The two
    differ only by the per-pair factor sum(valid exp) / sum(all exp), which the cosine of Sim1 cancels.
    """
    if mask not in ("after-softmax", "before-softmax"):
        raise ValueError(f"mask must be 'after-softmax' or 'before-softmax', got {mask!r}.")
    return text_guided_weights(text_eos, frames, frame_mask, temp, mask)


def global_interaction(
    text_eos: torch.Tensor,
    frames: torch.Tensor,
    frame_mask: torch.Tensor,
    temp: float,
    mask: GimMask = "after-softmax",
    gram: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sim1[a,b] = cos(t_a, sum_i w_abi f_bi), the parameter-free GIM, with `gim_weights`; returns [A,B].

    `gram` is `frame_gram(frames)` when the caller has it precomputed (per video, offline).
    """
    weights, dots = gim_weights(text_eos, frames, frame_mask, temp, mask)
    gram = frame_gram(frames) if gram is None else gram
    numerator = (weights * dots).sum(dim=-1)  # <t_a, v_ab>
    v_norm = pooled_sq_norms(weights, gram).clamp_min(_EPS * _EPS).sqrt()  # |v_ab|
    t_norm = text_eos.norm(dim=-1).clamp_min(_EPS)
    return numerator / (t_norm[:, None] * v_norm)


def local_similarity(text_concepts: torch.Tensor, video_concepts: torch.Tensor, unit: bool = False) -> torch.Tensor:
    """Sim2[a,b] = (1/Q) sum_q cos(t_aq, v_bq): only matching query indices meet. [A,Q,D] x [B,Q,D] -> [A,B].

    One matrix product of the flattened unit concepts; `unit=True` says both inputs are unit vectors already (as the
    model's encoders store them), so they are not normalised again.
    """
    if text_concepts.shape[1:] != video_concepts.shape[1:]:
        raise ValueError(
            f"Text and video concepts must share [Q,D]; got {tuple(text_concepts.shape[1:])} "
            f"and {tuple(video_concepts.shape[1:])}."
        )
    queries = text_concepts.shape[1]
    t = text_concepts if unit else F.normalize(text_concepts, dim=-1)
    v = video_concepts if unit else F.normalize(video_concepts, dim=-1)
    return (t.flatten(1) @ v.flatten(1).t()) / queries


def intra_diversity_loss(concepts: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """IDL (code name `Inter_Diversity`, #6): margin ranking on the batch-mean Gram of L2-normalised concepts.

    G = (1/B) sum_b C_b C_b^T; loss = sum_{i!=j} [max(0, m + G_ij - G_ii) + max(0, m + G_ij - G_jj)] / (Q(Q-1)).
    Pushes different queries' concepts apart. Unweighted: the model applies alpha.
    """
    queries = concepts.shape[1]
    if queries < 2:
        raise ValueError(f"The intra-diversity loss needs at least 2 queries per item, got {queries}.")
    c = F.normalize(concepts, dim=-1)
    gram = torch.einsum("bid,bjd->ij", c, c) / c.shape[0]
    diag = gram.diagonal()
    off = ~torch.eye(queries, dtype=torch.bool, device=gram.device)
    hinge = F.relu(margin + gram - diag[:, None]) + F.relu(margin + gram - diag[None, :])
    return hinge[off].sum() / (queries * (queries - 1))


def inter_consistency_loss(
    video_concepts: torch.Tensor,
    text_concepts: torch.Tensor,
    beta: float,
    target: float = 0.75,
    normalize_by: IclNorm = "queries",
    mse_weight: float = 1.0,
) -> torch.Tensor:
    """ICL (code name `Intra_Consistency`, #6): w * MSE(mean_b V_b, mean_b T_b) + beta * sum_q (H_qq - target)^2.

    w = `mse_weight`. On L2-normalised [B,Q,D] concepts of paired items, H_qq = (1/n) sum_b <V_bq, T_bq>, with n = Q
    (`normalize_by="queries"`, official #4: the effective target becomes target*Q/B) or n = B (`"batch"`). The MSE part
    has no weight in the official code (`mse_weight=1`). A part whose weight is 0 is not computed.
    """
    if normalize_by not in ("queries", "batch"):
        raise ValueError(f"normalize_by must be 'queries' or 'batch', got {normalize_by!r}.")
    if video_concepts.shape != text_concepts.shape:
        raise ValueError(
            f"ICL pairs video and text concepts item by item; shapes differ: {tuple(video_concepts.shape)} "
            f"vs {tuple(text_concepts.shape)}."
        )
    if mse_weight == 0 and beta == 0:
        raise ValueError("Both ICL parts have weight 0; leave the term out of the loss instead of calling it.")
    v = F.normalize(video_concepts, dim=-1)
    t = F.normalize(text_concepts, dim=-1)
    parts: list[torch.Tensor] = []
    if mse_weight != 0:
        parts.append(mse_weight * F.mse_loss(v.mean(dim=0), t.mean(dim=0)))
    if beta != 0:
        n = v.shape[1] if normalize_by == "queries" else v.shape[0]
        h_diag = (v * t).sum(dim=(0, 2)) / n
        parts.append(beta * (h_diag - target).pow(2).sum())
    return torch.stack(parts).sum()
