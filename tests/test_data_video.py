"""Decoding, frame sampling, augmentation, datasets and `tvbench data check` on MP4s written here with PyAV."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.data import Split, TextRecord, VideoRecord
from benchmark.data import dataset as dataset_module
from benchmark.data.dataset import PairDataset, VideoDataset, clear_frame_cache
from benchmark.data.text import TextTokenizer
from benchmark.data.video import (
    CLIP_MEAN,
    CLIP_STD,
    ClipAugment,
    VideoConfig,
    VideoDecodeError,
    decode_frames,
    load_clip,
    probe_video,
    sample_indices,
)

FPS = 10
SIDE = 48


def write_mp4(
    path: Path, n_frames: int = 30, moving: bool = True, faststart: bool = False, noise: bool = False
) -> Path:
    """A white 8x8 square on black moving 1 px right per frame (or still), H.264 at FPS frames per second;
    `noise` draws random pixels instead (every frame costs many bytes, so a cut always loses frame data)."""
    options = {"movflags": "faststart"} if faststart else {}
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIDE + 16, SIDE, "yuv420p"
        for i in range(n_frames):
            x = 4 + (i if moving else 0)
            image = np.zeros((SIDE, SIDE + 16, 3), np.uint8)
            image[20:28, x : x + 8] = 255
            if noise:
                image = rng.integers(0, 256, image.shape, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def square_x(frame: torch.Tensor) -> float:
    """Column centroid of the bright pixels of one uint8 [H, W, 3] frame."""
    cols = np.nonzero(frame.numpy().mean(axis=2) > 128)[1]
    return float(cols.mean())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mp4(tmp_path_factory.mktemp("v") / "moving.mp4")


# ---------------------------------------------------------------- sampling


def test_sample_indices_fps_window_and_subsampling() -> None:
    cfg = VideoConfig(max_frames=12, framerate=1.0)
    assert sample_indices(30, 10.0, None, None, cfg).tolist() == [0, 10, 20]
    assert sample_indices(300, 10.0, 5.0, 8.0, cfg).tolist() == [50, 60, 70, 80]
    long = sample_indices(3000, 10.0, None, None, cfg)  # 300 positions -> 12, uniformly, ends included
    assert len(long) == 12 and long[0] == 0 and long[-1] == 2990 and np.all(np.diff(long) > 0)
    # a window past the end of the video is clamped to its last frame
    assert sample_indices(30, 10.0, 40.0, 50.0, cfg).tolist() == [29]
    uniform = VideoConfig(max_frames=4, sampling="uniform")
    assert sample_indices(40, 10.0, None, None, uniform).tolist() == [5, 15, 25, 35]
    assert sample_indices(3, 10.0, None, None, uniform).tolist() == [0, 1, 2]


def test_load_clip_short_video_mask_and_frame_content(clip: Path) -> None:
    cfg = VideoConfig(max_frames=12, framerate=2.0, size=32)
    frames, mask = load_clip(clip, None, None, cfg)
    assert frames.shape == (12, 3, 32, 32) and frames.dtype == torch.float32 and mask.dtype == torch.int64
    assert mask.tolist() == [1] * 6 + [0] * 6  # 30 frames at 10 fps, every 5th frame
    assert torch.all(frames[6:] == 0)
    raw = decode_frames(clip, None, None, cfg)
    # the square's centre is at x = 7.5 + frame index: frames 0, 5, ..., 25 (then 10, 15, 20 for window [1 s, 2 s])
    assert np.allclose([square_x(f) for f in raw], [7.5 + 5 * k for k in range(6)], atol=1.0)
    window = decode_frames(clip, 1.0, 2.0, cfg)
    assert np.allclose([square_x(f) for f in window], [17.5, 22.5, 27.5], atol=1.0)


def test_normalisation_uses_mean_and_std(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "still.mp4", n_frames=5, moving=False)
    cfg = VideoConfig.from_preprocess({"size": (24, 24), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)},
                                      max_frames=2, framerate=10.0)
    assert (cfg.size, cfg.mean, cfg.max_frames) == (24, (0.5, 0.5, 0.5), 2)
    frames, mask = load_clip(path, None, None, cfg)
    assert mask.tolist() == [1, 1]
    assert frames.min().item() == pytest.approx(-2.0, abs=0.05) and frames.max().item() == pytest.approx(2.0, abs=0.1)
    assert VideoConfig().mean == CLIP_MEAN and VideoConfig().std == CLIP_STD


def test_augmentation_is_identical_across_frames_and_seeded(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "still.mp4", n_frames=20, moving=False)
    cfg = VideoConfig(max_frames=4, framerate=2.0, size=32)
    aug = ClipAugment(scale=(0.2, 0.5))
    a, mask = load_clip(path, None, None, cfg, augment=aug, rng=np.random.default_rng(1))
    assert mask.sum() == 4
    for k in range(1, 4):  # the same crop and flip on every frame of the (static) clip
        assert torch.allclose(a[k], a[0], atol=0.05)
    again, _ = load_clip(path, None, None, cfg, augment=aug, rng=np.random.default_rng(1))
    assert torch.equal(a, again)
    draws = [load_clip(path, None, None, cfg, augment=aug, rng=np.random.default_rng(s))[0] for s in range(2, 6)]
    assert any(not torch.allclose(d, a, atol=0.05) for d in draws)
    plain, _ = load_clip(path, None, None, cfg)
    assert not torch.allclose(plain, a, atol=0.05)


# ---------------------------------------------------------------- broken files


def _broken_files(tmp_path: Path, good: Path) -> list[Path]:
    data = good.read_bytes()
    fast = write_mp4(tmp_path / "fast.mp4", n_frames=30, faststart=True, noise=True).read_bytes()
    files = [tmp_path / "empty.mp4", tmp_path / "truncated.mp4", tmp_path / "missing.mp4"]
    files[0].write_bytes(b"")
    files[1].write_bytes(data[: len(data) // 2])
    for frac in (0.5, 0.99):  # index at the front: the file opens (or not), then frame data is missing
        files.append(tmp_path / f"fast_cut_{frac}.mp4")
        files[-1].write_bytes(fast[: int(len(fast) * frac)])
    return files


def test_bad_files_raise_video_decode_error_naming_the_file(tmp_path: Path, clip: Path) -> None:
    cfg = VideoConfig(max_frames=4, framerate=10.0, size=16)
    for path in _broken_files(tmp_path, clip):
        for call in (lambda p: load_clip(p, None, None, cfg), probe_video):
            with pytest.raises(VideoDecodeError) as err:
                call(path)
            assert str(path) in str(err.value) and err.value.path == str(path)
            assert isinstance(err.value, RuntimeError)
    with pytest.raises(VideoDecodeError, match="damaged frames"):  # decord's DECORDError while reading frames
        probe_video(tmp_path / "fast_cut_0.99.mp4")
    with pytest.raises(VideoDecodeError, match="empty"):
        probe_video(tmp_path / "empty.mp4")
    with pytest.raises(VideoDecodeError, match="not found"):
        probe_video(tmp_path / "missing.mp4")
    probe_video(clip)


# ---------------------------------------------------------------- datasets


def _split(videos: list[Path]) -> Split:
    records = [VideoRecord(f"v{i}", str(p)) for i, p in enumerate(videos)]
    texts = [TextRecord(f"t{i}", f"a square number {i}", f"v{i}") for i in range(len(videos))]
    return Split("tiny", "test", records, texts)


def test_pair_and_video_datasets(tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    split = _split([clip, bad, clip])
    cfg = VideoConfig(max_frames=4, framerate=2.0, size=16)
    tok = TextTokenizer(8)
    item = PairDataset(split, cfg, tok)[0]
    assert item["tokens"].shape == (8,) and item["frames"].shape == (4, 3, 16, 16)
    assert (item["text_index"].item(), item["video_index"].item(), item["skipped"].item()) == (0, 0, 0)
    with pytest.raises(VideoDecodeError, match="bad.mp4"):
        PairDataset(split, cfg, tok)[1]
    skipping = PairDataset(split, cfg, tok, on_bad_video="skip")
    replaced = skipping[1]
    assert (replaced["text_index"].item(), replaced["skipped"].item()) == (2, 1)
    assert skipping[1]["text_index"].item() == 2  # deterministic, and the bad clip is not decoded again
    assert skipping.skipped == 2 and skipping.bad_videos == {"v1"}
    with pytest.raises(VideoDecodeError, match="bad.mp4"):
        VideoDataset(split, cfg)[1]
    gallery = VideoDataset(split, cfg)[2]
    assert torch.equal(gallery["frames"], item["frames"]) and gallery["video_index"].item() == 2

    calls = []
    monkeypatch.setattr(dataset_module, "decode_frames", lambda *a: calls.append(a) or decode_frames(*a))
    clear_frame_cache()
    cached = PairDataset(split, cfg, tok, cache_frames=True)
    cached[0], cached[0], VideoDataset(split, cfg, cache_frames=True)[0]
    assert len(calls) == 1
    clear_frame_cache()


def test_pair_dataset_augmentation_depends_on_seed_and_epoch(clip: Path) -> None:
    split = _split([clip])
    cfg = VideoConfig(max_frames=2, framerate=1.0, size=16)
    ds = PairDataset(split, cfg, TextTokenizer(8), augment=ClipAugment(scale=(0.1, 0.3)), seed=3)
    first = ds[0]["frames"]
    assert torch.equal(first, ds[0]["frames"])
    draws = []
    for epoch in range(1, 5):
        ds.set_epoch(epoch)
        draws.append(ds[0]["frames"])
    assert any(not torch.equal(first, d) for d in draws)


# ---------------------------------------------------------------- tvbench data check


def test_data_check_cli(tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "videos").mkdir()
    rows = ["key,vid_key,video_id,sentence"]
    for i in range(3):
        (tmp_path / "videos" / f"video{i}.mp4").write_bytes(clip.read_bytes())
        rows.append(f"ret{i},msr{i},video{i},a square moves {i}")
    (tmp_path / "MSRVTT_JSFUSION_test.csv").write_text("\n".join(rows) + "\n")
    assert main(["data", "check", "msrvtt", "--root", str(tmp_path)]) == 0
    assert "complete" in capsys.readouterr().out
    (tmp_path / "videos" / "video1.mp4").unlink()
    (tmp_path / "videos" / "video2.mp4").write_bytes(b"")
    assert main(["data", "check", "msrvtt", "--root", str(tmp_path), "--split", "test-1k-a", "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert (rep["n_texts"], rep["n_videos"], rep["complete"]) == (3, 3, False)
    assert rep["missing"] == [str(tmp_path / "videos" / "video1.mp4")]
    assert list(rep["unreadable"]) == [str(tmp_path / "videos" / "video2.mp4")]
    assert main(["data", "check", "msrvtt", "--root", str(tmp_path)]) == 1
    assert "video1.mp4" in capsys.readouterr().out
    assert main(["data", "check", "msrvtt", "--root", str(tmp_path), "--split", "train-9k"]) == 2
    err = capsys.readouterr().err
    assert "MSRVTT_train.9k.csv" in err and "expected annotation files" in err
