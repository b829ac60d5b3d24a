"""Streamed scoring: a memory-mapped gallery ranks exactly as the in-memory matrix, top-k, float16 storage and its
agreement, bounded memory, and `tvbench evaluate --save-gallery`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_synth import synth_cache, synth_clip_weights, synth_root  # noqa: F401 (pytest fixtures)

from benchmark.engine.evaluate import evaluate_split
from benchmark.engine.gallery import GalleryError, open_gallery, rank_agreement, store_features, write_gallery
from benchmark.engine.memory import tracking_peak_memory
from benchmark.engine.run_setup import prepare_model_run
from benchmark.engine.scoring import InMemoryGallery, rank_against_gallery, score_matrix, search
from benchmark.metrics import TIE_POLICIES, ScoreMatrixError, rank_counts, summarize
from benchmark.registry import build_model

GLSCL_TINY = {"num_queries": 4, "decoder_heads": 4, "decoder_ff": 256, "temporal_layers": 1}
GLCCL_TINY = {"temporal_layers": 1, "max_words": 8}
HEADS = {"clip4clip-meanp": {}, "xpool": {}, "xclip": {}, "glscl": GLSCL_TINY, "glccl": GLCCL_TINY,
         "glccl-no-csc": {**GLCCL_TINY, "padding_masks": True}, "glccl-video-only": GLCCL_TINY}
N_GALLERY, CHUNK_TEXTS, CHUNK_VIDEOS = 200, 3, 64
# Texts 0-5 describe videos 0-5, text 6 is a second caption of video 0, text 7 describes an exact copy of video 2
# placed at 120 (so it ties with video 2, which comes earlier), and video 3 has an exact copy at 150.
RELEVANT = np.array([0, 1, 2, 3, 4, 5, 0, 120])


def _case(name: str) -> tuple[torch.nn.Module, dict, dict]:
    """A tiny model, 8 encoded captions and a 200-video gallery: 6 encoded clips, jittered copies, exact duplicates."""
    torch.manual_seed(0)
    model = build_model(name, backbone="tvbench-tiny", clip_weights="random", **HEADS[name]).eval()
    gen = torch.Generator().manual_seed(1)
    tokens = torch.zeros(8, 8, dtype=torch.long)
    tokens[:, 0], tokens[:, 1:6], tokens[:, 6] = 49406, torch.randint(1, 1000, (8, 5), generator=gen), 49407
    frames, frame_mask = torch.randn(6, 3, 3, 64, 64, generator=gen), torch.ones(6, 3, dtype=torch.long)
    frame_mask[4, 2] = 0
    with torch.no_grad():
        texts = model.encode_text(tokens, (tokens != 0).long())
        clips = model.encode_video(frames, frame_mask)
    picks = torch.arange(N_GALLERY) % 6
    gallery = {}
    for key, value in clips.items():
        value = value[picks].clone()
        if value.is_floating_point():
            value[6:] *= 1 + 0.05 * torch.randn(value[6:].shape, generator=gen)
            value[120], value[150] = value[2], value[3]
        gallery[key] = value
    return model, texts, gallery


@pytest.fixture(scope="module", params=sorted(HEADS))
def case(request: pytest.FixtureRequest) -> tuple[torch.nn.Module, dict, dict]:
    return _case(request.param)


def test_mapped_gallery_ranks_exactly_as_the_in_memory_matrix(case: tuple, tmp_path: Path) -> None:
    model, texts, gallery = case
    matrix = score_matrix(model, texts, gallery, CHUNK_TEXTS, CHUNK_VIDEOS)
    reference = rank_counts(matrix, RELEVANT)
    assert reference.tied_other[3] == 1 and reference.tied_before is not None and reference.tied_before[7] == 1
    write_gallery(tmp_path / "g", ({k: v[i : i + 50] for k, v in gallery.items()} for i in range(0, 200, 50)), 200)
    for source in (open_gallery(tmp_path / "g"), InMemoryGallery(gallery)):
        streamed = rank_against_gallery(
            model, texts, source, RELEVANT, k=5, chunk_texts=CHUNK_TEXTS, chunk_videos=CHUNK_VIDEOS
        )
        for field in ("greater", "tied_other", "tied_relevant", "tied_before"):
            np.testing.assert_array_equal(getattr(streamed.counts, field), getattr(reference, field))
        for ties in TIE_POLICIES:
            assert summarize(streamed.counts, ties) == summarize(reference, ties)
        np.testing.assert_array_equal(streamed.top_scores, -np.sort(-matrix, axis=1)[:, :5])
        np.testing.assert_array_equal(np.take_along_axis(matrix, streamed.top_indices, 1), streamed.top_scores)
    values, _ = search(model, texts, InMemoryGallery(gallery), k=5, video_block=CHUNK_VIDEOS)  # all 8 texts at once:
    np.testing.assert_allclose(values.numpy(), streamed.top_scores, rtol=1e-5, atol=1e-6)  # other blocks, rounding
    assert not model.training


def test_float16_storage_halves_bytes_and_reports_its_agreement(tmp_path: Path) -> None:
    model, texts, gallery = _case("glscl")
    store_features(tmp_path / "f32", gallery)
    store_features(tmp_path / "f16", gallery, storage="float16", meta={"note": "x"})
    full, half = open_gallery(tmp_path / "f32"), open_gallery(tmp_path / "f16")
    assert half.arrays["frames"].dtype == np.float16 and half.arrays["frame_mask"].dtype == np.int64
    assert half.block(0, 4)["frames"].dtype == torch.float32 and half.meta == {"note": "x"}
    assert half.nbytes < 0.6 * full.nbytes
    torch.testing.assert_close(half.block(0, 200)["frames"], gallery["frames"], rtol=1e-3, atol=1e-3)
    reference = rank_against_gallery(model, texts, full, RELEVANT).counts
    agreement = rank_agreement(reference, rank_against_gallery(model, texts, half, RELEVANT).counts)
    assert agreement["queries"] == 8 and 0.0 <= agreement["same_rank"] <= 1.0
    same = rank_agreement(reference, reference)
    assert same["same_rank"] == 1.0 and same["max_rank_shift"] == 0 and set(same["metrics_delta"].values()) == {0}
    with pytest.raises(GalleryError, match="float16"):
        store_features(tmp_path / "big", {"x": torch.full((2, 3), 1e6)}, storage="float16")
    assert not (tmp_path / "big").exists()  # nothing half-written


def test_gallery_and_stream_errors_say_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="--save-gallery"):
        open_gallery(tmp_path)
    with pytest.raises(GalleryError, match="announced 5 videos but 2"):
        write_gallery(tmp_path / "g", [{"x": torch.zeros(2, 3)}], 5)
    with pytest.raises(GalleryError, match="storage"):
        write_gallery(tmp_path / "g", [{"x": torch.zeros(2, 3)}], 2, storage="int8")
    store_features(tmp_path / "g", {"x": torch.zeros(2, 3)})
    np.save(tmp_path / "g" / "x.npy", np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(GalleryError, match="does not match"):
        open_gallery(tmp_path / "g")
    model, texts, gallery = _case("clip4clip-meanp")
    with pytest.raises(ScoreMatrixError, match="0..199"):
        rank_against_gallery(model, texts, InMemoryGallery(gallery), RELEVANT + 100)
    gallery["video"][7, 0] = torch.nan
    with pytest.raises(ScoreMatrixError, match=r"NaN/inf score at \[0, 7\]"):
        rank_against_gallery(model, texts, InMemoryGallery(gallery), RELEVANT)


def test_streamed_ranking_holds_one_block_not_the_gallery(tmp_path: Path) -> None:
    """150,000 videos (77 MB of features on disk, memory-mapped): the process's own memory grows by far less."""
    model = build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random")
    gen = torch.Generator().manual_seed(0)
    n = 150_000
    blocks = (
        {"video": torch.nn.functional.normalize(torch.randn(10_000, 128, generator=gen), dim=-1)}
        for _ in range(n // 10_000)
    )
    gallery = open_gallery(write_gallery(tmp_path / "g", blocks, n))
    texts = {"text": torch.nn.functional.normalize(torch.randn(100, 128, generator=gen), dim=-1)}
    with tracking_peak_memory() as peak:
        streamed = rank_against_gallery(model, texts, gallery, np.arange(100), chunk_texts=50, chunk_videos=4096)
    assert gallery.nbytes > 75e6 and peak.added_anon_bytes < gallery.nbytes / 4
    assert streamed.counts.greater.max() < n


def test_evaluate_saves_a_gallery_and_measures_float16(
    synth_root: Path,  # noqa: F811 (fixture)
    synth_clip_weights: Path,  # noqa: F811 (fixture)
    tmp_path: Path,
) -> None:
    setup = prepare_model_run(model_name="clip4clip-meanp", preset="synthvtt", sets=["max_frames=2"],
                              data_root=synth_root, clip_weights=str(synth_clip_weights), seed=0)  # fmt: skip
    split = setup.split("test")
    result, _ = evaluate_split(setup.model, split, setup.video_cfg, setup.tokenizer, batch_size=4,
                               save_gallery=tmp_path / "g", gallery_storage="float16")  # fmt: skip
    agreement = result["gallery"]["agreement_with_float32"]
    assert agreement["queries"] == len(split.texts) and 0.0 <= agreement["same_rank"] <= 1.0
    doc = json.loads((tmp_path / "g" / "gallery.json").read_text())
    assert doc["storage"] == "float16" and doc["meta"]["agreement_with_float32"] == agreement
    assert doc["meta"]["video_ids"] == [video.id for video in split.videos]
    assert len(open_gallery(tmp_path / "g")) == len(split.videos)
