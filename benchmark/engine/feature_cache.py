"""Outputs of a frozen backbone, computed once per input item (a frame, a text) and reused by every later batch.

The frozen-encoder regime trains only the heads, so a frame's or a text's backbone output never changes: each row of
an input batch is keyed by a hash of the backbone's weights and the row's bytes, missing rows are computed in one
call, and the outputs are kept in memory for the life of the process (shared by all runs of a study in one process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import nn


def weights_digest(module: nn.Module) -> bytes:
    """sha256 over the names, shapes, dtypes and bytes of every tensor of `module`'s state dict."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()


def _row_keys(prefix: bytes, inputs: tuple[torch.Tensor, ...]) -> list[bytes]:
    """One key per row (first dimension) of the inputs: blake2b of `prefix` and the row's bytes in every input."""
    arrays = [t.detach().cpu().contiguous().numpy() for t in inputs]
    keys = []
    for i in range(len(arrays[0])):
        h = hashlib.blake2b(prefix, digest_size=20)
        for array in arrays:
            h.update(array[i].tobytes())
        keys.append(h.digest())
    return keys


class FeatureCache:
    """Per-row outputs of deterministic functions of frozen weights, keyed by (weights, function, row bytes)."""

    def __init__(self) -> None:
        self._rows: dict[bytes, tuple[torch.Tensor, ...]] = {}
        self.computed = 0  # rows computed (cache misses), for tests and logs

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        """Drop every stored row (e.g. when a study moves on to another encoder, whose keys differ anyway)."""
        self._rows.clear()

    def rows(
        self, fn: Callable[..., tuple[torch.Tensor, ...]], prefix: bytes, *inputs: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """`fn(*inputs)` (a tuple of tensors with one row per input row), computing only rows not seen before with
        the same `prefix` (weights digest + function name), without gradients."""
        keys = _row_keys(prefix, inputs)
        missing = [i for i, k in enumerate(keys) if k not in self._rows]
        if missing:
            index = torch.tensor(missing, device=inputs[0].device)
            with torch.no_grad():
                outputs = fn(*(t.index_select(0, index) for t in inputs))
            for j, i in enumerate(missing):
                self._rows[keys[i]] = tuple(o[j].detach() for o in outputs)
            self.computed += len(missing)
        found = [self._rows[k] for k in keys]
        return tuple(torch.stack([row[n] for row in found]) for n in range(len(found[0])))


SHARED = FeatureCache()  # one cache per process: every run of a study in this process reuses the same features
