"""The evaluator against hand-worked cases, brute-force references and CLIP4Clip's `compute_metrics`."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch

from benchmark.metrics import (
    METRICS,
    QueryRanks,
    ScoreMatrixError,
    evaluate_scores,
    per_query,
    rank_counts,
    ranks,
    summarize,
)


def clip4clip_compute_metrics(x: np.ndarray) -> dict[str, float]:
    """CLIP4Clip's metric routine as described in evaluation_practice.md §1.1 (sort, then every tied column)."""
    sx = np.sort(-x, axis=1)
    d = np.diag(-x)[:, None]
    ind = np.where(sx - d == 0)[1]
    return {
        "R@1": float(np.sum(ind == 0)) * 100 / len(ind),
        "R@5": float(np.sum(ind < 5)) * 100 / len(ind),
        "R@10": float(np.sum(ind < 10)) * 100 / len(ind),
        "MdR": float(np.median(ind)) + 1,
        "MnR": float(np.mean(ind)) + 1,
    }


def brute_random_tie_expectation(greater: int, other: int, relevant: int, k: int) -> tuple[float, float]:
    """Exact expectation of (rank, hit@k) over every ordering of a tied block of `other` + `relevant` items."""
    block = [0] * other + [1] * relevant
    rank_sum, hit_sum, count = 0.0, 0.0, 0
    for perm in set(itertools.permutations(block)):
        first = greater + perm.index(1) + 1
        rank_sum, hit_sum, count = rank_sum + first, hit_sum + (first <= k), count + 1
    return rank_sum / count, hit_sum / count


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_constant_matrix_under_each_policy(n: int) -> None:
    scores = np.full((n, n), 0.3, dtype=np.float32)
    random = evaluate_scores(scores)["t2v"]
    assert random["MnR"] == pytest.approx((n + 1) / 2)
    assert random["MdR"] == pytest.approx((n + 1) / 2)
    assert random["R@1"] == pytest.approx(100 / n)
    assert random["R@10"] == pytest.approx(100 * min(1, 10 / n))
    assert evaluate_scores(scores, ties="optimistic")["t2v"]["R@1"] == 100
    assert evaluate_scores(scores, ties="pessimistic")["t2v"]["MnR"] == n
    assert evaluate_scores(scores, ties="pessimistic")["t2v"]["R@1"] == (100 if n == 1 else 0)


def test_hand_worked_ties() -> None:
    # Row 0: relevant 0.5; one score above (0.9), two others tied with it -> g=1, t=3.
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]] + [[0.0] * 5] * 4)
    scores[1:, 1:] = np.eye(4)
    counts = rank_counts(scores, np.arange(5))
    assert (counts.greater[0], counts.tied_other[0]) == (1, 2)
    assert counts.rank("random")[0] == 1 + (3 + 1) / 2
    assert counts.rank("optimistic")[0] == 2
    assert counts.rank("pessimistic")[0] == 4
    assert counts.hits(1)[0] == 0  # K - g = 0 slots
    assert counts.hits(2)[0] == pytest.approx(1 / 3)  # clip((K-g)/t) = 1/3
    assert counts.hits(3)[0] == pytest.approx(2 / 3)
    assert counts.hits(5)[0] == 1


@pytest.mark.parametrize(("greater", "other", "relevant"), [(0, 0, 1), (2, 3, 1), (0, 3, 2), (1, 2, 3), (4, 4, 2)])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 10])
def test_random_policy_matches_enumeration(greater: int, other: int, relevant: int, k: int) -> None:
    q = QueryRanks(np.array([greater]), np.array([other]), np.array([relevant]))
    rank, hit = brute_random_tie_expectation(greater, other, relevant, k)
    assert q.rank("random")[0] == pytest.approx(rank)
    assert q.hits(k, "random")[0] == pytest.approx(hit)


def test_legacy_reproduces_clip4clip_worked_case() -> None:
    # evaluation_practice.md: [[1,2,3],[5,5,5]] -> 4 entries for 2 rows, R@1 25.0.
    scores = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    counts = rank_counts(scores, np.array([0, 1]))
    assert len(counts.legacy_entries()) == 4
    assert summarize(counts, "legacy")["R@1"] == 25.0
    assert list(ranks(scores, np.array([0, 1]), ties="legacy")) == [3.0, 1.0, 2.0, 3.0]


def test_legacy_equals_clip4clip_on_random_tied_matrices() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        scores = rng.integers(0, 4, (n, n)).astype(np.float64)
        ours = evaluate_scores(scores, ties="legacy")
        assert ours["t2v"] == pytest.approx(clip4clip_compute_metrics(scores), abs=1e-12)
        assert ours["v2t"] == pytest.approx(clip4clip_compute_metrics(scores.T), abs=1e-12)


def test_legacy_constant_matrix_is_the_known_bug() -> None:
    # The documented CLIP4Clip tie bug: a constant matrix gives N entries per row, R@1 = 1/N of them.
    n = 50
    out = summarize(rank_counts(np.zeros((n, n)), np.arange(n)), "legacy")
    assert out == pytest.approx(clip4clip_compute_metrics(np.zeros((n, n))))


def clip4clip_multi_sentence(sim: np.ndarray, cut_off_points: list[int]) -> dict[str, dict[str, float]]:
    """CLIP4Clip's multi-sentence evaluation (`eval_epoch`'s reshape, `tensor_text_to_video_metrics`,
    `tensor_video_to_text_sim` + `compute_metrics`), written out literally. One change: both argsorts pass
    stable=True, so tied videos keep column order; torch's default CPU sort is not stable for rows of 20 or more
    items, so CLIP4Clip's own order among tied videos is arbitrary."""
    cut_off_points2len_ = [itm + 1 for itm in cut_off_points]
    max_length = max([e_ - s_ for s_, e_ in zip([0] + cut_off_points2len_[:-1], cut_off_points2len_)])
    sim_matrix_new = []
    for s_, e_ in zip([0] + cut_off_points2len_[:-1], cut_off_points2len_):
        sim_matrix_new.append(np.concatenate((sim[s_:e_], np.full((max_length - e_ + s_, sim.shape[1]), -np.inf)),
                                             axis=0))
    sim_tensor = torch.tensor(np.stack(tuple(sim_matrix_new), axis=0))
    stacked_sim_matrices = sim_tensor.permute(1, 0, 2)
    first_argsort = torch.argsort(stacked_sim_matrices, dim=-1, descending=True, stable=True)
    second_argsort = torch.argsort(first_argsort, dim=-1, descending=False, stable=True)
    ranks = torch.flatten(torch.diagonal(second_argsort, dim1=1, dim2=2))
    permuted_original_data = torch.flatten(torch.diagonal(sim_tensor, dim1=0, dim2=2))
    mask = ~torch.logical_or(torch.isinf(permuted_original_data), torch.isnan(permuted_original_data))
    valid_ranks = ranks[mask]
    t2v = {f"R@{k}": float(torch.sum(valid_ranks < k) * 100 / len(valid_ranks)) for k in (1, 5, 10)}
    t2v["MdR"] = float(torch.median(valid_ranks + 1))
    t2v["MnR"] = float(np.mean(valid_ranks.numpy() + 1))
    values, _ = torch.max(sim_tensor, dim=1, keepdim=True)
    return {"t2v": t2v, "v2t": clip4clip_compute_metrics(torch.squeeze(values).T.numpy())}


def test_legacy_multi_caption_matches_clip4clip_argsort_and_lower_median() -> None:
    rng = np.random.default_rng(3)
    lower_median_mattered = False
    for trial in range(30):
        n_videos = int(rng.integers(20, 30))  # >= 20 columns: where torch's unstable sort would scramble ties
        captions = rng.integers(1, 5, n_videos)
        captions[0] = 2  # at least one video with several captions
        t2v = np.repeat(np.arange(n_videos), captions)
        sim = rng.integers(0, 3 if trial % 2 else 50, (len(t2v), n_videos)).astype(np.float64)  # many or few ties
        ours = evaluate_scores(sim, t2v, ties="legacy")
        ref = clip4clip_multi_sentence(sim, list(np.cumsum(captions) - 1))
        assert ours["t2v"] == pytest.approx(ref["t2v"], abs=1e-4)  # CLIP4Clip divides in float32
        assert ours["v2t"] == pytest.approx(ref["v2t"], abs=1e-12)
        legacy_ranks = ranks(sim, t2v, ties="legacy")
        assert len(legacy_ranks) == len(t2v) and ours["t2v"]["MnR"] == pytest.approx(legacy_ranks.mean())
        lower_median_mattered |= ours["t2v"]["MdR"] != float(np.median(legacy_ranks))
    assert lower_median_mattered


def test_legacy_multi_caption_run_record_round_trips(tmp_path) -> None:
    from benchmark.data.split import Split, TextRecord, VideoRecord
    from benchmark.runs import load_run, make_record, write_run

    videos = [VideoRecord(f"v{i}", f"v{i}.mp4") for i in range(6)]
    texts = [TextRecord(f"t{i}-{c}", "c", f"v{i}") for i in range(6) for c in range(3)]
    sim = np.random.default_rng(0).integers(0, 3, (18, 6)).astype(np.float64)
    result = evaluate_scores(sim, np.repeat(np.arange(6), 3), ties="legacy")
    record = load_run(write_run(make_record(method="m", config={}, split=Split("toy", "test", videos, texts),
                                            result=result), tmp_path / "run"))
    assert record.metrics["t2v"] == pytest.approx(result["t2v"])
    assert np.array_equal(record.ranks["t2v"].tied_before, result["ranks"]["t2v"].tied_before)


def test_v2t_protocols_differ_on_many_captions() -> None:
    # 3 videos; video 0 has captions 0,1,2; video 1 has 3; video 2 has 4. Column = video, row = caption.
    scores = np.array(
        [
            [0.9, 0.1, 0.8],  # caption 0 of video 0
            [0.2, 0.7, 0.85],  # caption 1 of video 0
            [0.3, 0.1, 0.1],  # caption 2 of video 0
            [0.5, 0.2, 0.0],  # caption 3 of video 1
            [0.95, 0.6, 0.7],  # caption 4 of video 2
        ]
    )
    t2v = np.array([0, 0, 0, 1, 2])
    grouped = evaluate_scores(scores, t2v, ties="optimistic", v2t="max-over-captions")["ranks"]["v2t"]
    flat = evaluate_scores(scores, t2v, ties="optimistic", v2t="all-captions")["ranks"]["v2t"]
    # video 1 (column 1): own best 0.2; group maxima: v0 max(0.1,0.7,0.1)=0.7, v2 0.6 -> rank 3 among 3 groups.
    # all captions: above 0.2 are captions 1 (0.7) and 4 (0.6) -> rank 3 among 5 captions.
    # video 2 (column 2): own 0.7; group maxima v0 0.85 -> rank 2; captions above: 0 (0.8), 1 (0.85) -> rank 3.
    assert list(grouped.rank("optimistic")) == [2, 3, 2]
    assert list(flat.rank("optimistic")) == [2, 3, 3]
    assert list(evaluate_scores(scores, t2v)["ranks"]["t2v"].rank("optimistic")) == [1, 3, 1, 2, 2]


def test_all_captions_counts_tied_relevant_captions() -> None:
    # Video 0 has two identical captions (duplicate text) tied at the top with one other caption.
    scores = np.array([[0.5, 0.0], [0.5, 0.0], [0.5, 1.0]])
    q = evaluate_scores(scores, np.array([0, 0, 1]), v2t="all-captions")["ranks"]["v2t"]
    assert (q.greater[0], q.tied_other[0], q.tied_relevant[0]) == (0, 1, 2)
    assert q.rank("random")[0] == pytest.approx(brute_random_tie_expectation(0, 1, 2, 1)[0])


@pytest.mark.parametrize("block_bytes", [1, 64, 1000, 10**9])
def test_chunking_invariance(block_bytes: int) -> None:
    rng = np.random.default_rng(3)
    t2v = np.concatenate([np.arange(40), rng.integers(0, 40, 80)])
    scores = np.round(rng.standard_normal((120, 40)), 1).astype(np.float32)  # rounding makes ties
    for v2t in ("max-over-captions", "all-captions"):
        reference = evaluate_scores(scores, t2v, v2t=v2t)
        chunked = evaluate_scores(scores, t2v, v2t=v2t, block_bytes=block_bytes)
        for d in ("t2v", "v2t"):
            assert chunked[d] == reference[d]
            for field in ("greater", "tied_other", "tied_relevant"):
                assert np.array_equal(getattr(chunked["ranks"][d], field), getattr(reference["ranks"][d], field))


def test_torch_and_memmap_inputs_agree(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((300, 300)).astype(np.float32)
    path = tmp_path / "s.npy"
    np.save(path, scores)
    reference = evaluate_scores(scores)
    assert evaluate_scores(np.load(path, mmap_mode="r"))["t2v"] == reference["t2v"]
    assert evaluate_scores(torch.from_numpy(scores))["v2t"] == reference["v2t"]
    assert evaluate_scores(torch.from_numpy(scores).to(torch.bfloat16))["t2v"]["R@1"] >= 0


def test_large_memmap_stays_within_one_gib(tmp_path) -> None:  # noqa: ANN001
    n = 20_000
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, n))
    rng = np.random.default_rng(5)
    for start in range(0, n, 2000):
        big[start : start + 2000] = rng.standard_normal((2000, n), dtype=np.float32)
    big.flush()
    del big
    scores = np.load(path, mmap_mode="r")
    tracemalloc.start()
    result = evaluate_scores(scores)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**30, f"peak extra memory {peak / 2**20:.0f} MiB"
    assert 0 <= result["t2v"]["R@1"] <= 100 and result["t2v"]["MnR"] == pytest.approx((n + 1) / 2, rel=0.05)


def test_per_query_means_give_the_summary() -> None:
    rng = np.random.default_rng(6)
    q = evaluate_scores(np.round(rng.standard_normal((200, 200)), 1))["ranks"]["t2v"]
    values, summary = per_query(q), summarize(q)
    for k in (1, 5, 10):
        assert values[f"R@{k}"].mean() == pytest.approx(summary[f"R@{k}"])
    assert np.median(values["rank"]) == summary["MdR"] and values["rank"].mean() == pytest.approx(summary["MnR"])
    assert [m for m, info in METRICS.items() if not info.higher_is_better] == ["MdR", "MnR"]


REJECTIONS = [
    (np.zeros(5), None, {}, "must be 2-D"),
    (np.zeros((3, 4)), None, {}, "not square"),
    (np.zeros((3, 3)), np.array([0, 1]), {}, "one entry per row"),
    (np.zeros((3, 3)), np.array([0, 1, 3]), {}, "outside 0..2"),
    (np.zeros((3, 3)), np.array([0.0, 1.0, 2.0]), {}, "integer indices"),
    (np.zeros((3, 3)), np.array([0, 0, 1]), {}, "have no text"),
    (np.zeros((3, 3)), None, {"ties": "median"}, "Unknown tie policy"),
    (np.zeros((3, 3)), None, {"v2t": "mean"}, "Unknown v2t protocol"),
    (np.zeros((3, 3)), None, {"ties": "legacy", "v2t": "all-captions"}, "max-over-captions"),
    (np.array([["a"]]), None, {}, "must hold numbers"),
]


@pytest.mark.parametrize(("scores", "t2v", "kwargs", "message"), REJECTIONS)
def test_rejections(scores: np.ndarray, t2v: np.ndarray | None, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_scores(scores, t2v, **kwargs)


def test_non_finite_scores_are_counted_and_located() -> None:
    scores = np.ones((4, 4), dtype=np.float32)
    scores[2, 1] = np.nan
    scores[3, 0] = np.inf
    scores[2, 3] = -np.inf
    with pytest.raises(ScoreMatrixError, match=r"3 NaN/inf value\(s\); the first is at \[2, 1\]"):
        evaluate_scores(scores, block_bytes=16)


def test_cli_prints_json_and_rejects_pickles(tmp_path) -> None:  # noqa: ANN001
    scores = np.eye(4, dtype=np.float32)
    np.save(tmp_path / "s.npy", scores)
    out = subprocess.run(
        [sys.executable, "-m", "benchmark", "metrics", str(tmp_path / "s.npy"), "--json"],
        capture_output=True, text=True, check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["t2v"]["R@1"] == 100 and doc["protocol"] == {"ties": "random", "v2t": "max-over-captions"}
    np.save(tmp_path / "p.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad = subprocess.run([sys.executable, "-m", "benchmark", "metrics", str(tmp_path / "p.npy")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "without unpickling" in bad.stderr
    table = subprocess.run([sys.executable, "-m", "benchmark", "metrics", str(tmp_path / "s.npy")],
                           capture_output=True, text=True, check=True).stdout
    assert "MnR ↓" in table and "R@1 ↑" in table
    t2v_row = next(line for line in table.splitlines() if line.startswith("t2v")).split()
    assert math.isclose(float(t2v_row[1]), 100.0)


def test_large_integer_scores_keep_exact_ties() -> None:
    scores = np.array([[2**53, 2**53 + 1], [0, 2**53]], dtype=np.int64)
    v2t = evaluate_scores(scores)["ranks"]["v2t"]
    assert list(v2t.greater) == [0, 1] and list(v2t.tied_other) == [0, 0]


def test_cli_user_errors_print_a_message_not_a_traceback(tmp_path) -> None:  # noqa: ANN001
    np.save(tmp_path / "s.npy", np.full((3, 3), np.nan, dtype=np.float32))
    out = subprocess.run([sys.executable, "-m", "benchmark", "metrics", str(tmp_path / "s.npy")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "NaN/inf" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "benchmark", "efficiency", "--model", "glscl-nope"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Did you mean" in out.stderr and "Traceback" not in out.stderr
