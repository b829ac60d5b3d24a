"""Time `evaluate_scores` (t2v + v2t) on a 10,000 x 10,000 random matrix against a per-row argsort evaluator.

Both run in the same process, on the same matrix, several times; medians and their ratio are printed.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from tabulate import tabulate

from benchmark.metrics import evaluate_scores

N = 10_000
REPEATS = 3


def argsort_reference(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The common implementation: rank of the diagonal by a full per-row argsort, rows then columns."""
    order = np.argsort(-scores, axis=1)
    t2v = np.argmax(order == np.arange(len(scores))[:, None], axis=1) + 1
    order_v = np.argsort(-scores.T, axis=1)
    v2t = np.argmax(order_v == np.arange(len(scores))[:, None], axis=1) + 1
    return t2v, v2t


def median_seconds(fn, *args) -> float:  # noqa: ANN001
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    scores = np.random.default_rng(0).standard_normal((N, N), dtype=np.float32)
    ours = median_seconds(evaluate_scores, scores)
    reference = median_seconds(argsort_reference, scores)
    t2v, v2t = argsort_reference(scores)
    result = evaluate_scores(scores)
    for direction, argsorted in (("t2v", t2v), ("v2t", v2t)):  # argsort breaks ties arbitrarily: check the bounds
        counts = result["ranks"][direction]
        inside = (counts.rank("optimistic") <= argsorted) & (argsorted <= counts.rank("pessimistic"))
        assert inside.all(), f"{direction} ranks disagree with argsort"
    print(f"evaluate_scores vs per-row argsort, {N} x {N} float32, t2v + v2t, median of {REPEATS}")
    print(tabulate([["tvbench evaluate_scores", f"{ours:.3f}"], ["argsort per row", f"{reference:.3f}"]],
                   headers=["implementation", "seconds"]))
    print(f"speed-up: {reference / ours:.1f}x (target >= 20x, and < 2 s)")


if __name__ == "__main__":
    main()
