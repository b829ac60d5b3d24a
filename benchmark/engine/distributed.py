"""torch.distributed plumbing for training and evaluation: process-group set-up, gradient-carrying feature gathers,
gradient summation, and evaluation sharding that restores split order (the padding a sampler adds is dropped).

Run under ``torchrun --nproc_per_node N -m benchmark train ...``: NCCL on CUDA, gloo on CPU. Without torchrun every
helper degrades to the single-process identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

Features = dict[str, torch.Tensor]


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job: rank, world size and the device it computes on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and shows progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistEnv:
    """Join the process group that torchrun describes in the environment (once), or run as a single process.

    `device`: "cpu", "cuda" or None (CUDA when available). Each rank uses cuda:LOCAL_RANK.
    """
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device; use --device cpu.")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
    chosen = torch.device(f"cuda:{local_rank}" if want_cuda else "cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    if dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), chosen)
    return DistEnv(0, 1, chosen)


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op in a single process)."""
    if env.distributed:
        dist.barrier()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each rank the gradient of its own slice (every rank computes the same loss
    on the gathered batch, so summing the per-rank parameter gradients gives the full-batch gradient)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.rank, ctx.size = rank, tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        parts[rank] = tensor
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad[ctx.rank * ctx.size : (ctx.rank + 1) * ctx.size]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every rank along dim 0 (rank order), keeping this rank's slice differentiable."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    if tensor.requires_grad:
        return _GatherWithGrad.apply(tensor)
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def gather_features(features: Features) -> Features:
    """`all_gather_with_grad` applied to every tensor of a feature dict (all have the item dim first)."""
    return {name: all_gather_with_grad(value) for name, value in features.items()}


def sum_gradients(params: list[nn.Parameter], env: DistEnv, bucket_elems: int = 1 << 24) -> None:
    """All-reduce (sum) the gradients of `params` across ranks in flat buckets; parameters without grad are skipped."""
    if not env.distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    start = 0
    while start < len(grads):
        end, size = start, 0
        while end < len(grads) and (size == 0 or size + grads[end].numel() <= bucket_elems):
            size += grads[end].numel()
            end += 1
        bucket = grads[start:end]
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        start = end


def shard_indices(n: int, rank: int, world: int) -> list[int]:
    """DistributedSampler's unshuffled shard: indices rank, rank+world, ... of range(n) padded by wrapping around so
    every rank gets ceil(n/world) items."""
    per_rank = -(-n // world)
    padded = [i % n for i in range(per_rank * world)] if n else []
    return padded[rank::world]


def gather_in_order(features: Features, n: int, env: DistEnv) -> Features:
    """Gather per-rank evaluation features (each rank holding `shard_indices(n, rank, world)`) into split order,
    dropping the padded duplicates, so the result is the same on 1 or N processes."""
    if not env.distributed:
        return features
    order = torch.tensor([i for r in range(env.world_size) for i in shard_indices(n, r, env.world_size)])
    first = torch.zeros(len(order), dtype=torch.bool)
    seen: set[int] = set()
    for pos, index in enumerate(order.tolist()):
        if index not in seen:
            seen.add(index)
            first[pos] = True
    out: Features = {}
    for name, value in features.items():
        gathered = all_gather_with_grad(value.detach())
        placed = torch.empty((n, *gathered.shape[1:]), dtype=gathered.dtype, device=gathered.device)
        placed[order[first].to(gathered.device)] = gathered[first.to(gathered.device)]
        out[name] = placed
    return out
