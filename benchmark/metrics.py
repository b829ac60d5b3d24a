"""Retrieval metrics over score matrices: a functional core that counts, per query, how many candidates beat or tie
the relevant one, and derives ranks, R@K, MdR and MnR from those counts under a named tie policy.

Counting (not sorting) in row/column chunks keeps a 20,000 x 20,000 memmap within a bounded amount of extra memory,
and keeps the per-query counts exact, so every tie policy (and CLIP4Clip's legacy output) follows from them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

TiePolicy = Literal["random", "optimistic", "pessimistic", "legacy"]
V2TProtocol = Literal["max-over-captions", "all-captions"]
TIE_POLICIES: tuple[str, ...] = ("random", "optimistic", "pessimistic", "legacy")
V2T_PROTOCOLS: tuple[str, ...] = ("max-over-captions", "all-captions")
RECALL_KS: tuple[int, ...] = (1, 5, 10)
DEFAULT_BLOCK_BYTES = 128 * 2**20


@dataclass(frozen=True)
class MetricInfo:
    """A reported metric and its direction (MdR and MnR: lower is better)."""

    name: str
    higher_is_better: bool
    description: str


METRICS: dict[str, MetricInfo] = {
    "R@1": MetricInfo("R@1", True, "percent of queries whose relevant item is ranked first"),
    "R@5": MetricInfo("R@5", True, "percent of queries whose relevant item is in the top 5"),
    "R@10": MetricInfo("R@10", True, "percent of queries whose relevant item is in the top 10"),
    "MdR": MetricInfo("MdR", False, "median rank of the relevant item (1 = first)"),
    "MnR": MetricInfo("MnR", False, "mean rank of the relevant item (1 = first)"),
}


class ScoreMatrixError(ValueError):
    """A score matrix or ground truth that cannot be evaluated; the message says what is wrong and where."""


def _check_policy(ties: str) -> None:
    if ties not in TIE_POLICIES:
        raise ValueError(f"Unknown tie policy `{ties}`. Use one of: {', '.join(TIE_POLICIES)}.")


@dataclass(frozen=True)
class QueryRanks:
    """Per-query counts against the best relevant candidate's score s: candidates that are not relevant and score
    strictly above s (`greater`) or exactly s (`tied_other`), and relevant candidates scoring exactly s
    (`tied_relevant`, 1 when a query has one relevant item).

    `tied_before` (tied other candidates at a lower column index than the relevant one) is recorded only for
    multi-caption text-to-video queries (several texts per video), which CLIP4Clip ranks with an argsort (`legacy`).
    """

    greater: np.ndarray
    tied_other: np.ndarray
    tied_relevant: np.ndarray
    tied_before: np.ndarray | None = None

    def __post_init__(self) -> None:
        names = ("greater", "tied_other", "tied_relevant") + (("tied_before",) if self.tied_before is not None else ())
        raw = [np.asarray(getattr(self, name)) for name in names]
        if any(a.dtype.kind not in "iu" for a in raw):
            raise ValueError("QueryRanks counts must be integer arrays.")
        arrays = [a.astype(np.int64) for a in raw]
        if not all(a.ndim == 1 and len(a) == len(arrays[0]) for a in arrays):
            raise ValueError("QueryRanks arrays must be one-dimensional and of equal length.")
        if any((a < 0).any() for a in arrays) or (arrays[2] < 1).any():
            raise ValueError("QueryRanks counts must be >= 0 and tied_relevant >= 1.")
        if len(arrays) == 4 and ((arrays[3] > arrays[1]).any() or (arrays[2] != 1).any()):
            raise ValueError("QueryRanks `tied_before` must not exceed `tied_other`, for one relevant item per query.")
        for name, array in zip(names, arrays):
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.greater)

    def rank(self, ties: str = "random") -> np.ndarray:
        """1-based rank of each query's first relevant item; `random` is its expectation under random tie-breaking."""
        _check_policy(ties)
        g, o, r = self.greater, self.tied_other, self.tied_relevant
        if ties == "optimistic":
            return (g + 1).astype(np.float64)
        if ties == "pessimistic":
            return (g + o + 1).astype(np.float64)
        if ties == "random":
            return g + (o + r + 1) / (r + 1)
        raise ValueError("The `legacy` policy has no per-query rank (it emits one entry per tied candidate); "
                         "use summarize(..., ties='legacy') or legacy_entries().")

    def hits(self, k: int, ties: str = "random") -> np.ndarray:
        """Probability (0..1) that each query's first relevant item is within the top `k`."""
        _check_policy(ties)
        if ties in ("optimistic", "pessimistic"):
            return (self.rank(ties) <= k).astype(np.float64)
        if ties == "legacy":
            raise ValueError("The `legacy` policy has no per-query hits; use summarize(..., ties='legacy').")
        g, o, r = self.greater, self.tied_other, self.tied_relevant
        slots = k - g  # positions of the tied block that fall inside the top k
        single = np.clip(slots / (o + 1), 0.0, 1.0)  # one relevant item: clip((K - g) / t, 0, 1)
        if (r == 1).all():
            return single
        miss = np.ones(len(g), dtype=np.float64)  # P(the first `slots` tied positions hold no relevant item)
        for i in range(max(0, int(min(k, slots.max(initial=0))))):
            miss *= np.where(i < slots, np.clip(o - i, 0, None) / (o + r - i).clip(min=1), 1.0)
        return np.where(r == 1, single, np.where(slots <= 0, 0.0, 1.0 - miss))

    def legacy_entries(self) -> np.ndarray:
        """CLIP4Clip `compute_metrics` output: one 0-based entry per tied candidate (positions g .. g+t-1)."""
        t = self.tied_other + self.tied_relevant
        starts = np.repeat(self.greater - np.cumsum(t) + t, t)
        return starts + np.arange(int(t.sum()))

    def legacy_ranks(self) -> np.ndarray:
        """CLIP4Clip's 1-based ranks: one entry per tied candidate (`compute_metrics`) for one-to-one queries; for
        multi-caption t2v (`tied_before` recorded) one rank per query from a descending argsort that keeps tied
        candidates in column order (`tensor_text_to_video_metrics`)."""
        if self.tied_before is None:
            return self.legacy_entries() + 1.0
        return (self.greater + self.tied_before + 1).astype(np.float64)


def _legacy_argsort_summary(q: QueryRanks) -> dict[str, float]:
    """CLIP4Clip's multi-caption t2v numbers: R@K and MnR over argsort ranks, MdR the lower middle value
    (`torch.median`)."""
    r = q.legacy_ranks()
    out = {f"R@{k}": float(np.count_nonzero(r <= k) * 100 / len(r)) for k in RECALL_KS}
    out["MdR"] = float(np.sort(r)[(len(r) - 1) // 2])
    out["MnR"] = float(r.mean())
    return out


def _legacy_summary(q: QueryRanks) -> dict[str, float]:
    """CLIP4Clip's numbers, computed from the counts without materialising the duplicated entries."""
    if q.tied_before is not None:
        return _legacy_argsort_summary(q)
    g, t = q.greater, q.tied_other + q.tied_relevant
    total = int(t.sum())
    out = {f"R@{k}": float(np.clip(k - g, 0, t).sum() * 100 / total) for k in RECALL_KS}
    size = int((g + t).max()) + 1
    density = np.zeros(size + 1, dtype=np.int64)
    np.add.at(density, g, 1)
    np.add.at(density, g + t, -1)
    cumulative = np.cumsum(np.cumsum(density)[:-1])  # number of entries <= position p

    def entry(index: int) -> int:
        return int(np.searchsorted(cumulative, index, side="right"))

    middle = total // 2
    median = entry(middle) if total % 2 else (entry(middle - 1) + entry(middle)) / 2
    out["MdR"] = float(median) + 1
    out["MnR"] = float((t * g + t * (t - 1) / 2).sum() / total) + 1
    return out


def summarize(q: QueryRanks, ties: str = "random") -> dict[str, float]:
    """R@1/5/10 (percent), MdR and MnR of one direction under tie policy `ties`."""
    _check_policy(ties)
    if len(q) == 0:
        raise ScoreMatrixError("No queries to evaluate.")
    if ties == "legacy":
        return _legacy_summary(q)
    ranks = q.rank(ties)
    out = {f"R@{k}": math.fsum(q.hits(k, ties)) * 100 / len(q) for k in RECALL_KS}
    out["MdR"] = float(np.median(ranks))
    out["MnR"] = math.fsum(ranks) / len(q)
    return out


def per_query(q: QueryRanks, ties: str = "random") -> dict[str, np.ndarray]:
    """Per-query values whose mean (median for MdR) gives the summary: R@K as 0/100 hits (expected under ties), rank."""
    out = {f"R@{k}": q.hits(k, ties) * 100 for k in RECALL_KS}
    out["rank"] = q.rank(ties)
    return out


# --- counting over chunks --------------------------------------------------------------------------------------


def _as_matrix(scores: Any) -> np.ndarray:
    """A 2-D numpy view of `scores` (numpy array, np.memmap or torch tensor) without changing its values."""
    if hasattr(scores, "detach") and hasattr(scores, "cpu"):
        tensor = scores.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()  # exact: bf16 values are representable in float32
        scores = tensor.numpy()
    matrix = scores if isinstance(scores, np.ndarray) else np.asarray(scores)
    if matrix.ndim != 2:
        raise ScoreMatrixError(f"A score matrix must be 2-D [n_text, n_video]; got shape {matrix.shape}.")
    if matrix.dtype.kind not in "fiu":
        raise ScoreMatrixError(f"A score matrix must hold numbers; got dtype {matrix.dtype}.")
    if 0 in matrix.shape:
        raise ScoreMatrixError(f"The score matrix is empty (shape {matrix.shape}).")
    return matrix


def _check_index(index: Any, n_queries: int, n_candidates: int, what: str) -> np.ndarray:
    array = np.asarray(index)
    if array.ndim != 1 or len(array) != n_queries:
        raise ScoreMatrixError(f"`{what}` must have one entry per row ({n_queries}); got shape {array.shape}.")
    if array.dtype.kind not in "iu":
        raise ScoreMatrixError(f"`{what}` must hold integer indices; got dtype {array.dtype}.")
    bad = np.flatnonzero((array < 0) | (array >= n_candidates))
    if len(bad):
        raise ScoreMatrixError(
            f"`{what}`[{bad[0]}] = {array[bad[0]]} is outside 0..{n_candidates - 1} ({len(bad)} such entries)."
        )
    return array.astype(np.int64)


class _FiniteCheck:
    """Counts non-finite entries over the blocks of one pass and remembers the first one (row-major)."""

    def __init__(self) -> None:
        self.count = 0
        self.first: tuple[int, int] | None = None

    def update(self, block: np.ndarray, rows: np.ndarray) -> None:
        """Check one block whose i-th row is matrix row `rows[i]` (a float64 row sum is finite iff its row is,
        barring overflow, which only costs the exact check)."""
        if block.dtype.kind != "f" or np.isfinite(block.sum(axis=1, dtype=np.float64)).all():
            return
        if np.isfinite(block).all():
            return
        bad = np.argwhere(~np.isfinite(block))
        self.count += len(bad)
        first = min((int(rows[r]), int(c)) for r, c in bad)
        if self.first is None or first < self.first:
            self.first = first

    def raise_if_bad(self, matrix: np.ndarray) -> None:
        if self.count:
            r, c = self.first  # type: ignore[misc]
            raise ScoreMatrixError(
                f"The score matrix holds {self.count} NaN/inf value(s); the first is at [{r}, {c}] "
                f"(value {matrix[r, c]}). Fix the model's scores before evaluating."
            )


def _blocks(bounds: np.ndarray, row_bytes: int, block_bytes: int) -> Iterator[tuple[int, int]]:
    """Consecutive (start, stop) row ranges of at most ~block_bytes that cut only at the given group bounds."""
    rows_per_block = max(1, block_bytes // max(1, row_bytes))
    start = 0
    while start < bounds[-1]:
        stop = int(bounds[np.searchsorted(bounds, start + rows_per_block, side="right") - 1])
        if stop <= start:  # one group larger than a block: take it whole
            stop = int(bounds[np.searchsorted(bounds, start, side="right")])
        yield start, stop
        start = stop


def _count(
    matrix: np.ndarray, relevant: np.ndarray, v2t: str | None, block_bytes: int
) -> tuple[QueryRanks, QueryRanks | None]:
    """One pass over row blocks counting, for every row query and (optionally) every column query, the candidates
    above and tied with the relevant score. Rows are visited grouped by their relevant column, so that a block holds
    whole caption groups and the max-over-captions collapse can be done inside it."""
    n_rows, n_cols = matrix.shape
    order = np.argsort(relevant, kind="stable")
    identity = bool((order == np.arange(n_rows)).all())
    group_sizes = np.bincount(relevant, minlength=n_cols)
    bounds = np.concatenate([[0], np.cumsum(group_sizes)])
    own = np.asarray(matrix[np.arange(n_rows), relevant])  # each row's relevant score
    lowest = -np.inf if matrix.dtype.kind == "f" else np.iinfo(matrix.dtype).min
    best = np.full(n_cols, lowest, dtype=matrix.dtype)  # the matrix's own dtype: comparisons stay exact
    np.maximum.at(best, relevant, own)  # each column's best relevant (own-caption) score
    best = best[None, :]
    row_greater = np.empty(n_rows, dtype=np.int64)
    row_tied = np.empty(n_rows, dtype=np.int64)
    multi_caption = bool((group_sizes > 1).any())  # a video with several texts
    row_before = np.empty(n_rows, dtype=np.int64) if multi_caption else None
    columns = np.arange(n_cols)[None, :]
    col_greater = np.zeros(n_cols, dtype=np.int64)
    col_tied = np.zeros(n_cols, dtype=np.int64)
    collapse = v2t == "max-over-captions" and multi_caption
    finite = _FiniteCheck()
    for start, stop in _blocks(bounds, n_cols * matrix.itemsize, block_bytes):
        rows = np.arange(start, stop) if identity else order[start:stop]
        block = np.asarray(matrix[start:stop] if identity else matrix[rows])
        finite.update(block, rows)
        target = own[rows][:, None]
        row_greater[rows] = np.count_nonzero(block > target, axis=1)
        tied = block == target
        row_tied[rows] = np.count_nonzero(tied, axis=1) - 1
        if row_before is not None:
            row_before[rows] = np.count_nonzero(tied & (columns < relevant[rows][:, None]), axis=1)
        if v2t is None:
            continue
        if collapse:
            first_group, last_group = np.searchsorted(bounds, [start, stop])
            starts = bounds[first_group:last_group] - start
            block = np.maximum.reduceat(block, starts[group_sizes[first_group:last_group] > 0], axis=0)
        col_greater += np.count_nonzero(block > best, axis=0)
        col_tied += np.count_nonzero(block == best, axis=0)
    finite.raise_if_bad(matrix)
    row_counts = QueryRanks(row_greater, row_tied, np.ones(n_rows, dtype=np.int64), row_before)
    if v2t is None:
        return row_counts, None
    if v2t == "max-over-captions":
        return row_counts, QueryRanks(col_greater, col_tied - 1, np.ones(n_cols, dtype=np.int64))
    tied_relevant = np.bincount(relevant, weights=own == best[0, relevant], minlength=n_cols).astype(np.int64)
    return row_counts, QueryRanks(col_greater, col_tied - tied_relevant, tied_relevant)


def rank_counts(scores: Any, relevant: Any, block_bytes: int = DEFAULT_BLOCK_BYTES) -> QueryRanks:
    """Counts for row queries with one relevant column each (`relevant[i]` = column of row i's relevant item)."""
    matrix = _as_matrix(scores)
    relevant = _check_index(relevant, matrix.shape[0], matrix.shape[1], "relevant")
    return _count(matrix, relevant, None, block_bytes)[0]


def ranks(scores: Any, relevant: Any, ties: str = "random") -> np.ndarray:
    """1-based rank of each row query's relevant column; for `legacy`, CLIP4Clip's ranks (`legacy_ranks`)."""
    counts = rank_counts(scores, relevant)
    return counts.legacy_ranks() if ties == "legacy" else counts.rank(ties)


def _check_every_video_has_text(text_to_video: np.ndarray, n_videos: int) -> None:
    empty = np.flatnonzero(np.bincount(text_to_video, minlength=n_videos) == 0)
    if len(empty):
        raise ScoreMatrixError(
            f"{len(empty)} video(s) have no text (first: column {empty[0]}), so video-to-text retrieval is undefined. "
            "Drop captionless videos from the gallery or evaluate t2v only."
        )


def evaluate_scores(
    scores: Any,
    text_to_video: Any | None = None,
    ties: str = "random",
    v2t: str = "max-over-captions",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> dict[str, Any]:
    """Text-to-video and video-to-text metrics of S[n_text, n_video] plus the per-query counts.

    `text_to_video[i]` is the column of text i's video (default: the diagonal of a square matrix). v2t protocols:
    `max-over-captions` (CLIP4Clip: each video's captions collapsed by max, ranked among videos) or `all-captions`
    (the best relevant caption ranked among all captions).
    """
    _check_policy(ties)
    if v2t not in V2T_PROTOCOLS:
        raise ValueError(f"Unknown v2t protocol `{v2t}`. Use one of: {', '.join(V2T_PROTOCOLS)}.")
    if ties == "legacy" and v2t != "max-over-captions":
        raise ValueError("The `legacy` tie policy reproduces CLIP4Clip, which only has the max-over-captions v2t.")
    matrix = _as_matrix(scores)
    n_texts, n_videos = matrix.shape
    if text_to_video is None:
        if n_texts != n_videos:
            raise ScoreMatrixError(
                f"A {n_texts} x {n_videos} matrix is not square: pass `text_to_video` (the video index of each text)."
            )
        text_to_video = np.arange(n_texts)
    t2v_index = _check_index(text_to_video, n_texts, n_videos, "text_to_video")
    _check_every_video_has_text(t2v_index, n_videos)
    t2v_counts, v2t_counts = _count(matrix, t2v_index, v2t, block_bytes)
    return {
        "t2v": summarize(t2v_counts, ties),
        "v2t": summarize(v2t_counts, ties),
        "ranks": {"t2v": t2v_counts, "v2t": v2t_counts},
        "protocol": {"ties": ties, "v2t": v2t},
        "n_texts": n_texts,
        "n_videos": n_videos,
    }
