"""Optimisers, parameter groups and learning-rate schedules: tvbench's defaults (torch AdamW, no decay on biases /
norms / embeddings / temperature, warm-up + re-based cosine over the real steps) and the official GLSCL recipe as
named switches (BertAdam, decay on everything but biases, the un-rebased warm-up cosine of `warmup_cosine`).

Quirk numbers (#n) refer to `glscl_official_code.md` §8, section numbers (§n) to its other sections.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

# Parameter-name fragments that never get weight decay (besides every tensor with fewer than 2 dims: biases,
# LayerNorm gains, class embeddings, the logit scale).
NO_DECAY_NAMES = ("embedding", "position", "logit_scale")
DECAY_GROUPS = ("tvbench", "official")
SCHEDULES = ("tvbench", "official")
OPTIMIZERS = ("adamw", "bertadam")


def _decays(name: str, param: nn.Parameter, rule: str) -> bool:
    """Whether `param` gets weight decay: "tvbench" = matrices only, minus embeddings, positions and the
    temperature; "official" = every name without "bias" (#11: LayerNorm gains, embeddings, the frame position
    embedding and logit_scale all decay, because the official filter matches `LayerNorm.weight`, a name CLIP lacks)."""
    if rule == "official":
        return "bias" not in name
    return param.ndim >= 2 and not any(fragment in name for fragment in NO_DECAY_NAMES)


def parameter_groups(
    model: Any, lr: float, coef_lr: float, weight_decay: float, decay: str = "tvbench"
) -> list[dict[str, Any]]:
    """Four optimiser groups: {backbone, head} x {decay, no decay}; backbone groups use lr x coef_lr.

    Membership comes from `model.backbone_parameters()` / `model.head_parameters()`; frozen parameters are left out.
    `decay` picks the weight-decay rule (see `_decays`). Each group carries "name" and "base_lr" (the schedule
    scales base_lr).
    """
    if decay not in DECAY_GROUPS:
        raise ValueError(f"decay_groups must be one of {DECAY_GROUPS}, got {decay!r}.")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for part, params, part_lr in (
        ("backbone", model.backbone_parameters(), lr * coef_lr),
        ("head", model.head_parameters(), lr),
    ):
        trainable = [p for p in params if p.requires_grad]
        for decays in (True, False):
            chosen = [p for p in trainable if _decays(names[id(p)], p, decay) == decays]
            if chosen:
                groups.append(
                    {
                        "name": f"{part}{'' if decays else '-no-decay'}",
                        "params": chosen,
                        "lr": part_lr,
                        "base_lr": part_lr,
                        "weight_decay": weight_decay if decays else 0.0,
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


def official_lr_multiplier(step: int, total_steps: int, warmup_proportion: float) -> float:
    """The official `warmup_cosine` (§6.3, #10): x = step / total_steps with the 0-based step (so the first step has
    lr 0); x / warmup while x < warmup, else 0.5 (1 + cos(pi x)), not re-based after warm-up and not clamped: past
    total_steps the cosine rises again (ActivityNet's 10 epochs over a 5-epoch total end back at 1)."""
    progress = step / total_steps
    if progress < warmup_proportion:
        return progress / warmup_proportion
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule_function(kind: str) -> Callable[[int, int, float], float]:
    """The multiplier function of schedule `kind` ("tvbench" or "official")."""
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}.")
    return official_lr_multiplier if kind == "official" else lr_multiplier


class BertAdam(torch.optim.Optimizer):
    """BertAdam as the official code steps it (§6.3, #11): Adam without bias correction, decoupled weight decay added
    to the update before the lr, and a grad-norm clip of every parameter tensor on its own before its update.

    Moments live in each parameter's own dtype and the update is applied in place, so fp16 parameters get fp16
    moments and no master copy, as in the official fp16 CLIP: an update below half an ulp of the weight is rounded
    away, and 0.02·g² underflows to 0 for |g| below about 1.2e-3, where the step becomes m / eps (up to g x 1e6).
    The lr of each group is used as given (the caller applies the schedule, see `apply_schedule`).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.98),
                 eps: float = 1e-6, weight_decay: float = 0.0, max_grad_norm: float = 1.0) -> None:
        if lr < 0 or eps < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"BertAdam needs lr >= 0, eps >= 0 and betas in [0, 1), got {lr}, {eps}, {betas}.")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "max_grad_norm": max_grad_norm})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["next_m"] = torch.zeros_like(param)
                    state["next_v"] = torch.zeros_like(param)
                if group["max_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(param, group["max_grad_norm"])
                grad = param.grad
                state["next_m"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["next_v"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = state["next_m"] / (state["next_v"].sqrt() + group["eps"])
                if group["weight_decay"] > 0.0:
                    update += group["weight_decay"] * param
                param.add_(-(group["lr"] * update))
                state["step"] += 1
        return loss


FUSED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)  # torch's fused AdamW on CPU and CUDA


def make_optimizer(groups: list[dict[str, Any]], betas: tuple[float, float], eps: float, kind: str = "adamw",
                   max_grad_norm: float = 1.0) -> torch.optim.Optimizer:
    """torch AdamW (decoupled weight decay scaled by the scheduled lr) or the official BertAdam over `groups`;
    `max_grad_norm` is BertAdam's per-tensor clip. AdamW uses torch's fused kernel where every parameter allows it
    (the same update; on CPU the per-tensor loop took ~10% of a SynthVTT step)."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}.")
    if kind == "bertadam":
        return BertAdam(groups, betas=tuple(betas), eps=eps, max_grad_norm=max_grad_norm)
    params = [p for group in groups for p in group["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in FUSED_DTYPES for p in params)
    return torch.optim.AdamW(groups, betas=tuple(betas), eps=eps, fused=fused or None)


def apply_schedule(optimizer: torch.optim.Optimizer, step: int, total_steps: int, warmup_proportion: float,
                   kind: str = "tvbench") -> None:
    """Set every group's lr to base_lr x the multiplier of `step` under schedule `kind`."""
    mult = schedule_function(kind)(step, total_steps, warmup_proportion)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * mult
