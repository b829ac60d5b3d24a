"""Boards and comparisons: split versions, sampling units of multi-caption splits, reachable significance, tracks."""

from __future__ import annotations

import io
import json
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data.split import Split, TextRecord, VideoRecord
from leaderboard import render, stats
from leaderboard.board import BoardError, build_board, build_boards, build_comparison
from leaderboard.splits import load_manifest, register_split_manifest
from leaderboard.stats import METRIC_NAMES, StatsSettings
from leaderboard.store import add_entry, load_entries
from leaderboard.submit import Submission, SubmissionError, SubmissionWarning, prepare, submit

FAST = StatsSettings(n_resamples=199)


def _split(n_videos: int, version: str = "", captions: int = 1) -> Split:
    videos = [VideoRecord(f"v{i}", f"v{i}.mp4") for i in range(n_videos)]
    texts = [TextRecord(f"t{i}-{c}{version}", f"caption {i} {c}", f"v{i}") for i in range(n_videos)
             for c in range(captions)]
    return Split("toyvtt", "test", videos, texts)


def _submit(root: Path, scores: np.ndarray, name: str, **meta) -> Path:
    """Submit a toy matrix; some are near chance on purpose, so --allow-chance (tested in test_leaderboard_trust)."""
    path = root.parent / f"{name.replace(' ', '_')}.npy"
    np.save(path, scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SubmissionWarning)
        return submit(path, Submission(benchmark="toyvtt", name=name, allow_chance=True, **meta), root)


def _noisy(n_texts: int, text_to_video: np.ndarray, seed: int, signal: float) -> np.ndarray:
    s = np.random.default_rng(seed).standard_normal((n_texts, int(text_to_video.max()) + 1))
    s[np.arange(n_texts), text_to_video] += signal
    return s


def test_replaced_split_version_is_shown_apart_and_never_tested(tmp_path: Path) -> None:
    root, n = tmp_path / "lb", 40
    register_split_manifest(root, _split(n, "v1"))
    _submit(root, np.eye(n), "old")  # perfect on the old version: it must not be the best of the current board
    _submit(root, _noisy(n, np.arange(n), 0, 1.0), "g seed 0", group="g", seed=0)
    register_split_manifest(root, _split(n, "v2"))  # same size, new ids: a new fingerprint
    for i, name in enumerate(("new a", "new b")):
        _submit(root, _noisy(n, np.arange(n), 10 + i, 2.0), name)
    _submit(root, _noisy(n, np.arange(n), 20, 1.5), "g seed 1", group="g", seed=1)

    board = build_board("toyvtt", "raw", root, FAST, published=False)
    rows = {(r["name"], r["stale"]): r for r in board["rows"]}
    assert set(rows) == {("new a", False), ("new b", False), ("g", False), ("old", True), ("g", True)}
    assert rows["g", False]["entries"] == ["g-seed-1"] and rows["g", True]["entries"] == ["g-seed-0"]
    assert [r["stale"] for r in board["rows"]] == [False, False, False, True, True]  # listed apart, after
    for key in (("old", True), ("g", True)):
        assert rows[key]["tier"] is None and rows[key]["ci"] is None and rows[key]["note"].startswith("stale")
    assert rows["old", True]["t2v"]["R@1"] == 100.0
    assert render.best_values(board)[("t2v", "R@1")] < 100.0  # stale rows are never marked best
    md_line = next(line for line in render.to_markdown(board).splitlines() if line.startswith("| old "))
    assert "| submitted (stale) |" in md_line and "never tested" in render.caption(board)

    with pytest.raises(BoardError, match="another version of the toyvtt split"):
        build_comparison(["old", "new a"], "toyvtt", root, FAST)
    report = build_comparison(["g", "new a"], "toyvtt", root, FAST)
    assert report["systems"][0] == {"name": "g", "n_seeds": 1, "seeds": [1], "stale_entries_left_out": ["g-seed-0"]}

    register_split_manifest(root, _split(30, "v3"))  # a smaller split: every entry is stale, nothing raises
    boards = [b for b in build_boards(root, FAST) if b["benchmark"] == "toyvtt"]
    assert boards and all(r["stale"] for b in boards for r in b["rows"])
    written = render.write_site(boards, tmp_path / "site")
    assert {p.suffix for p in written} == {".md", ".tex", ".csv", ".html"}


def test_multi_caption_t2v_is_resampled_and_tested_by_video(tmp_path: Path) -> None:
    root, n_videos = tmp_path / "lb", 12
    split = _split(n_videos, captions=3)
    register_split_manifest(root, split)
    t2v = split.text_to_video
    for i, name in enumerate(("a", "b")):
        _submit(root, _noisy(len(t2v), t2v, i, 1.0 + i), name)
    report = build_comparison(["a", "b"], "toyvtt", root, FAST)
    assert report["units"] == {"t2v": "videos (12 caption groups)", "v2t": "queries"}
    entries = {e.name: e for e in load_entries(root, "toyvtt")}
    values = {n: stats.query_values(entries[n].record.ranks["t2v"]) for n in ("a", "b")}
    for row in (r for r in report["comparisons"] if r["direction"] == "t2v"):
        m = row["metric"]
        test = stats.paired_test(values["a"][m], values["b"][m], m, clusters=t2v,
                                 n_resamples=report["n_resamples_tests"])
        assert row["p"] == test.p and row["n_units"] == n_videos
    board = build_board("toyvtt", "raw", root, FAST, published=False)
    row = next(r for r in board["rows"] if r["name"] == "a")
    assert row["ci"]["t2v"] == stats.intervals(values["a"], FAST, clusters=t2v)
    assert row["ci"]["t2v"] != stats.intervals(values["a"], FAST)  # caption-level intervals differ


def _ranked(n: int, ranks: np.ndarray) -> np.ndarray:
    """Scores giving query i's video exactly rank ranks[i] (no ties)."""
    s = -np.ones((n, n))
    s[np.arange(n), np.arange(n)] = 0.0
    for i, r in enumerate(ranks):
        s[i, [j for j in range(n) if j != i][: int(r) - 1]] = 1.0
    return s


def test_group_values_sit_inside_their_own_intervals(tmp_path: Path) -> None:
    # Seed 0 ranks 36 queries first, seed 1 another 36: each seed's MdR is 1, while the median of the seed-averaged
    # ranks is 25.5. The value, its interval and its tier must all be about the mean of the seeds' medians.
    root, n = tmp_path / "lb", 60
    register_split_manifest(root, _split(n))
    _submit(root, _ranked(n, np.r_[np.ones(36), np.full(24, 50)]), "s0", group="grp", seed=0)
    _submit(root, _ranked(n, np.r_[np.full(24, 50), np.ones(36)]), "s1", group="grp", seed=1)
    _submit(root, _noisy(n, np.arange(n), 3, 1.0), "single")
    board = build_board("toyvtt", "raw", root, FAST, published=False)
    for row in board["rows"]:
        for d in ("t2v", "v2t"):
            for m in METRIC_NAMES:
                low, high = row["ci"][d][m]
                assert low - 1e-9 <= row[d][m] <= high + 1e-9, (row["name"], d, m)
    grp = next(r for r in board["rows"] if r["name"] == "grp")
    assert grp["t2v"]["MdR"] == 1.0 and grp["sd"]["t2v"]["MdR"] == 0.0


@pytest.mark.slow
def test_perfect_scores_beat_seven_random_ones_on_msrvtt(tmp_path: Path) -> None:
    # 280 comparisons: with B = 9,999 Holm could never reach 0.05; B is raised to 111,999 (about 15 s)
    manifest, root = load_manifest("msrvtt"), str(tmp_path / "lb")
    n = len(manifest.text_ids)
    rng = np.random.default_rng(0)
    names = ["perfect", *(f"random {i}" for i in range(7))]
    for i, name in enumerate(names):
        np.save(tmp_path / f"{i}.npy", np.eye(n, dtype=np.float32) if i == 0 else
                rng.standard_normal((n, n)).astype(np.float32))
        assert main(["leaderboard", "submit", str(tmp_path / f"{i}.npy"), "--benchmark", "msrvtt", "--name", name,
                     "--root", root, "--allow-chance"]) == 0
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["leaderboard", "compare", *names, "--benchmark", "msrvtt", "--root", root, "--json",
                     "--resamples", "999"]) == 0
    report = json.loads(out.getvalue())
    assert report["family_size"] == 28 * 10 and report["n_resamples_tests"] == 111_999
    rows = [r for r in report["comparisons"] if r["a"] == "perfect"]
    assert len(rows) == 7 * 10
    assert all(r["significant"] and r["better"] == "perfect" for r in rows)
    assert {r["test"] for r in rows} == {"exact McNemar", "Monte Carlo sign-flip",
                                         "paired bootstrap (percentile inversion)"}
    limited = [r for r in rows if r["limited_by_resamples"]]
    assert limited and all(r["metric"] in ("MdR", "MnR") and r["n_resamples"] == 111_999 for r in limited)
    md = render.comparison_markdown(report)
    assert "≤" in md and "limited by B" in md and "B = 111999" in md


def _entry(root: Path, tmp: Path, entry_id: str, scores: np.ndarray, **meta) -> None:
    """Write an entry without the submit-time group checks (a store edited by hand or by an older version)."""
    np.save(tmp / f"{entry_id}.npy", scores)
    record = prepare(tmp / f"{entry_id}.npy", Submission(benchmark="toyvtt", name=entry_id, **meta), root)
    add_entry("toyvtt", entry_id, lambda existing: record, root)


@pytest.mark.parametrize(("raw_id", "dsl_id"), [("a-raw", "b-dsl"), ("b-raw", "a-dsl")])
def test_a_group_mixing_tracks_is_refused_whatever_the_entry_order(tmp_path: Path, raw_id: str, dsl_id: str) -> None:
    root, n = tmp_path / "lb", 30
    register_split_manifest(root, _split(n))
    _entry(root, tmp_path, raw_id, _noisy(n, np.arange(n), 0, 1.0), group="mix", seed=0)
    _entry(root, tmp_path, dsl_id, _noisy(n, np.arange(n), 1, 1.0), group="mix", seed=1, post_processing="dsl")
    _entry(root, tmp_path, "other", _noisy(n, np.arange(n), 2, 1.0))
    with pytest.raises(BoardError, match="mixes raw and post-processed"):
        build_comparison(["mix", "other"], "toyvtt", root, FAST)
    for track in ("raw", "post-processed"):  # a board leaves the group out and says why (one bad group never
        board = build_board("toyvtt", track, root, FAST, published=False)  # breaks a board)
        assert "mix" not in {r["name"] for r in board["rows"]}
        assert any("group `mix` mixes raw and post-processed" in m for m in board["skipped"])
    _submit(root, _noisy(n, np.arange(n), 3, 1.0), "solo 0", group="solo")
    with pytest.raises(SubmissionError, match="cannot join it"):
        _submit(root, _noisy(n, np.arange(n), 4, 1.0), "solo 1", group="solo", post_processing="dsl")
