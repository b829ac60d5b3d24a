"""AdamW parameter groups (backbone at lr x coef_lr, no decay on biases/norms/embeddings/temperature) and the
linear warm-up + cosine learning-rate multiplier of the CLIP4Clip family."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

# Parameter-name fragments that never get weight decay (besides every tensor with fewer than 2 dims: biases,
# LayerNorm gains, class embeddings, the logit scale).
NO_DECAY_NAMES = ("embedding", "position", "logit_scale")


def _decays(name: str, param: nn.Parameter) -> bool:
    return param.ndim >= 2 and not any(fragment in name for fragment in NO_DECAY_NAMES)


def parameter_groups(model: Any, lr: float, coef_lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """Four AdamW groups: {backbone, head} x {decay, no decay}; backbone groups use lr x coef_lr.

    Membership comes from `model.backbone_parameters()` / `model.head_parameters()`; frozen parameters are left out.
    Each group carries "name" and "base_lr" (the schedule scales base_lr).
    """
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for part, params, part_lr in (
        ("backbone", model.backbone_parameters(), lr * coef_lr),
        ("head", model.head_parameters(), lr),
    ):
        trainable = [p for p in params if p.requires_grad]
        for decay in (True, False):
            chosen = [p for p in trainable if _decays(names[id(p)], p) == decay]
            if chosen:
                groups.append(
                    {
                        "name": f"{part}{'' if decay else '-no-decay'}",
                        "params": chosen,
                        "lr": part_lr,
                        "base_lr": part_lr,
                        "weight_decay": weight_decay if decay else 0.0,
                    }
                )
    return groups


def warmup_steps(total_steps: int, warmup_proportion: float) -> int:
    """Number of warm-up steps: round(proportion x total), at least 1 when the proportion is positive."""
    return max(1, round(warmup_proportion * total_steps)) if warmup_proportion > 0 else 0


def lr_multiplier(step: int, total_steps: int, warmup_proportion: float) -> float:
    """Multiplier of the base lr for optimiser step `step` (0-based): (step+1)/W during the W warm-up steps, then a
    cosine from 1 down towards 0 over the remaining steps (continuous at the end of warm-up)."""
    warm = warmup_steps(total_steps, warmup_proportion)
    if step < warm:
        return (step + 1) / warm
    span = max(1, total_steps - warm)
    progress = min(1.0, (step - warm) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(groups: list[dict[str, Any]], betas: tuple[float, float], eps: float) -> torch.optim.AdamW:
    """torch AdamW over `groups` (decoupled weight decay scaled by the scheduled lr, as BertAdam)."""
    return torch.optim.AdamW(groups, betas=tuple(betas), eps=eps)


def apply_schedule(optimizer: torch.optim.Optimizer, step: int, total_steps: int, warmup_proportion: float) -> None:
    """Set every group's lr to base_lr x the multiplier of `step`."""
    mult = lr_multiplier(step, total_steps, warmup_proportion)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * mult
