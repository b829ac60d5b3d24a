"""Loss pieces shared by the methods: the symmetric InfoNCE of CLIP-style retrieval."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symmetric_infonce(
    sim: torch.Tensor, logit_scale: torch.Tensor, video_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """½[CE over rows + CE over columns] of ``logit_scale * sim`` for a square [B,B] text-video batch matrix.

    Positives are the diagonal (the official codebases' convention). With `video_ids`, off-diagonal pairs that show the
    same video are also positives: the target mass is spread uniformly over them (a multi-positive InfoNCE).
    """
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"InfoNCE needs a square batch similarity matrix, got shape {tuple(sim.shape)}.")
    logits = logit_scale * sim
    if video_ids is None:
        target = torch.arange(sim.shape[0], device=sim.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    same = (video_ids[:, None] == video_ids[None, :]).to(logits.dtype)
    target = same / same.sum(dim=1, keepdim=True)
    rows = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    cols = -(target * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return 0.5 * (rows + cols)
