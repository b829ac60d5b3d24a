"""Per-pair algebra of the heads' score(): against einsum / torch references, and the denormal-free softmax."""

from __future__ import annotations

import time

import pytest
import torch

from benchmark.engine import pairwise


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_products_equal_einsum_references() -> None:
    queries, rows = _random(3, 16), _random(5, 4, 16, seed=1)
    torch.testing.assert_close(pairwise.row_dots(queries, rows), torch.einsum("ad,bnd->abn", queries, rows))
    torch.testing.assert_close(pairwise.position_dots(queries, rows), torch.einsum("ad,bnd->nab", queries, rows))
    weights, mats = _random(3, 5, 4, seed=2), _random(5, 4, 6, seed=3)
    torch.testing.assert_close(pairwise.weighted_rows(weights, mats), torch.einsum("abi,bim->abm", weights, mats))
    grams = mats[..., :4] @ mats[..., :4].transpose(1, 2)
    want = torch.einsum("abi,bij,abj->ab", weights, grams, weights)
    torch.testing.assert_close(pairwise.quadratic_forms(weights, grams), want)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_equals_torch_on_extreme_and_masked_logits(dim: int) -> None:
    """X-CLIP-like logits (cosines / 0.01), a row masked to the float32 minimum, an all-masked row."""
    logits = _random(6, 7, 5) / 0.01
    logits[0, 0, 1:] = torch.finfo(torch.float32).min
    logits[1, 1, :] = torch.finfo(torch.float32).min
    logits[2] = torch.finfo(torch.float32).min
    got = pairwise.softmax(logits, dim)
    torch.testing.assert_close(got, logits.softmax(dim=dim), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got.sum(dim), torch.ones_like(got.sum(dim)))


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_weighted_sum_equals_torch_on_extreme_and_masked_logits(dim: int, grad: bool) -> None:
    """The in-place path (no autograd) and the autograd path both equal softmax(x / 0.01) weights times values, with
    masked entries (the float32 minimum) out of the softmax as X-CLIP's AOSM masks them, all-masked rows uniform."""
    sims = _random(6, 7, 5)
    masked = torch.zeros_like(sims, dtype=torch.bool)
    masked[0, 0, 1:], masked[1, 1, :], masked[2] = True, True, True
    logits = sims.masked_fill(masked, torch.finfo(torch.float32).min)
    values = _random(6, 7, 5, seed=5).requires_grad_(grad)
    want = ((sims / 0.01).masked_fill(masked, torch.finfo(torch.float32).min).softmax(dim=dim) * values).sum(dim=dim)
    with torch.set_grad_enabled(grad):
        got = pairwise.softmax_weighted_sum(logits, values, dim, temperature=0.01)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert got.requires_grad == grad and torch.equal(logits[3:], sims[3:])  # the logits are left untouched
    assert torch.isfinite(got).all()


def test_softmax_stays_off_the_denormal_slow_path() -> None:
    """Exponents 88-103 below the maximum give denormal exp() results, 10-30x slower on x86 (torch.softmax included);
    the floor avoids them. Timed against logits in [0, 1), as a ratio, so that machine load cancels."""
    generator = torch.Generator().manual_seed(4)
    extreme = -88 - 15 * torch.rand(32, 64, 256, generator=generator)
    extreme[:, 0] = 0.0
    mild = torch.rand(32, 64, 256, generator=generator)

    def best(logits: torch.Tensor) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            pairwise.softmax(logits, 1)
            times.append(time.perf_counter() - start)
        return min(times)

    assert best(extreme) < 3 * best(mild)
