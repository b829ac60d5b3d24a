"""Batched per-pair algebra for the heads' `score`: a block of queries against a block of items' per-item rows and
per-item small matrices, as matrix products over the whole block (no Python loop over pairs, no [A,B,n,D] tensor).

A = queries in the block, B = items (videos), n = rows per item (frames, concepts), D = feature width.
"""

from __future__ import annotations

import torch

# Exponents are floored here before exp(): e^-80 (about 2e-35) is far below float32 resolution next to the row
# maximum's e^0 = 1, and it keeps exp() out of denormal results, which run about 100x slower on x86 CPUs (softmaxes
# at X-CLIP's temperature 0.01 produce them for almost every entry).
EXP_FLOOR = -80.0


def row_dots(queries: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """[A,D] queries x [B,n,D] per-item rows -> [A,B,n] dot products: one matrix product over the flattened rows.

    A contiguous `rows` is read once as a [B*n, D] view (no copy); this is the gallery-streaming part of most heads.
    """
    items, n, dim = rows.shape
    return (queries @ rows.reshape(items * n, dim).t()).view(queries.shape[0], items, n)


def position_dots(queries: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """[A,D] queries x [B,n,D] per-item rows -> [n,A,B] dot products, position-major: one matrix product over the
    flattened rows (as `row_dots`), then one transposing copy, so that reductions over positions or queries run over
    leading dimensions with the items contiguous (fast on every backend, unlike reductions over a short last
    dimension)."""
    return row_dots(queries, rows).permute(2, 0, 1).contiguous()


def weighted_rows(weights: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
    """[A,B,n] per-pair weights x [B,n,m] per-item matrices -> [A,B,m], sum_i w_abi M_bim: one product batched over
    items (each item's matrix meets all A queries at once)."""
    return torch.bmm(weights.transpose(0, 1), mats).transpose(0, 1)


def quadratic_forms(weights: torch.Tensor, grams: torch.Tensor) -> torch.Tensor:
    """[A,B,n] per-pair weights and [B,n,n] symmetric per-item matrices -> [A,B] forms w_ab^T G_b w_ab."""
    return (weighted_rows(weights, grams) * weights).sum(dim=-1)


def softmax(logits: torch.Tensor, dim: int, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / temperature) along `dim`, with exponents floored at EXP_FLOOR below the maximum: equal to
    torch.softmax within float32 rounding, without its denormal slow path. Without autograd it works in place on one
    temporary (no further full-size allocations)."""
    shifted = logits - logits.amax(dim=dim, keepdim=True)
    if torch.is_grad_enabled() and shifted.requires_grad:
        exps = (shifted / temperature).clamp(min=EXP_FLOOR).exp()
        return exps / exps.sum(dim=dim, keepdim=True)
    if temperature != 1.0:
        shifted.mul_(1.0 / temperature)
    exps = shifted.clamp_(min=EXP_FLOOR).exp_()
    return exps.div_(exps.sum(dim=dim, keepdim=True))


def softmax_weighted_sum(
    logits: torch.Tensor, values: torch.Tensor, dim: int, temperature: float = 1.0
) -> torch.Tensor:
    """sum(softmax(logits / temperature) * values) along `dim`. Without autograd the normalisation divides the reduced
    sums instead of every weight, and the scale, floor, exp and product run in place on one temporary."""
    if torch.is_grad_enabled() and (logits.requires_grad or values.requires_grad):
        return (softmax(logits, dim, temperature) * values).sum(dim=dim)
    exps = logits - logits.amax(dim=dim, keepdim=True)
    if temperature != 1.0:
        exps.mul_(1.0 / temperature)
    exps.clamp_(min=EXP_FLOOR).exp_()
    total = exps.sum(dim=dim)
    return exps.mul_(values).sum(dim=dim).div_(total)

