"""Benchmark loaders on the real annotation files (exact counts from the reference) and on small same-format files."""

from __future__ import annotations

import collections
import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.data import load_split
from benchmark.data.files import AnnotationError
from benchmark.data.msrvtt import read_video_list

# ---------------------------------------------------------------- MSR-VTT


def test_msrvtt_1k_a_real(realdata: Path) -> None:
    split = load_split("msrvtt", realdata / "msrvtt")
    assert (split.split, len(split.texts), len(split.videos)) == ("test-1k-a", 1000, 1000)
    assert np.array_equal(split.text_to_video, np.arange(1000))
    assert split.texts[0].id == "ret0" and split.texts[0].caption == "a person is connecting something to system"
    assert split.videos[0].path == str(realdata / "msrvtt" / "videos" / "video9770.mp4")
    assert len(set(split.text_ids)) == 1000
    assert load_split("msrvtt", realdata / "msrvtt", "test-1k-a").fingerprint == split.fingerprint


def test_msrvtt_9k_disjoint_from_1k_a_real(realdata: Path) -> None:
    train = read_video_list(realdata / "msrvtt" / "MSRVTT_train.9k.csv")
    test = load_split("msrvtt", realdata / "msrvtt").video_ids
    assert len(train) == len(set(train)) == 9000
    assert not set(train) & set(test)


def _write_msrvtt(root: Path, n_videos: int = 4, per_video: int = 20) -> None:
    """A small MSRVTT_data.json (sentences interleaved across videos, as in the real file) and split lists."""
    videos = [{"id": i, "video_id": f"video{i}", "split": "train"} for i in range(n_videos)]
    sentences = [
        {"sen_id": k * n_videos + i, "video_id": f"video{i}", "caption": f"caption {k} of video {i}"}
        for k in range(per_video)
        for i in range(n_videos)
    ]
    (root / "MSRVTT_data.json").write_text(json.dumps({"info": {}, "videos": videos, "sentences": sentences}))
    (root / "MSRVTT_train.9k.csv").write_text("video_id\nvideo2\nvideo0\nvideo1\n")
    (root / "MSRVTT_train.7k.csv").write_text("video_id\nvideo0\n")
    (root / "train_list_full.txt").write_text("video3\nvideo1\n")


def test_msrvtt_train_splits_small(tmp_path: Path) -> None:
    _write_msrvtt(tmp_path)
    split = load_split("msrvtt", tmp_path, "train-9k")
    assert split.video_ids == ["video2", "video0", "video1"]
    assert len(split.texts) == 60 and len(set(split.text_ids)) == 60
    assert np.bincount(split.text_to_video).tolist() == [20, 20, 20]
    # json order, not grouped by video; text id = sen_id
    assert [t.id for t in split.texts[:3]] == ["0", "1", "2"]
    assert [t.video_id for t in split.texts[:3]] == ["video0", "video1", "video2"]
    assert len(load_split("msrvtt", tmp_path, "train-7k").texts) == 20
    full = load_split("msrvtt", tmp_path, "full-train", video_dir=tmp_path / "clips")
    assert full.video_ids == ["video3", "video1"] and len(full.texts) == 40
    assert full.videos[0].path == str(tmp_path / "clips" / "video3.mp4")


def test_msrvtt_accepts_annotation_subfolder_and_missing_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "anns").mkdir()
    _write_msrvtt(tmp_path / "anns")
    assert len(load_split("msrvtt", tmp_path, "train-9k").texts) == 60
    (tmp_path / "anns" / "MSRVTT_data.json").unlink()
    with pytest.raises(FileNotFoundError, match="MSRVTT_data.json") as err:
        load_split("msrvtt", tmp_path, "train-9k")
    assert str(tmp_path / "anns" / "MSRVTT_data.json") in str(err.value)


def test_fingerprint_stable_and_changes_with_one_caption(tmp_path: Path) -> None:
    rows = "key,vid_key,video_id,sentence\nret0,msr1,video1,a dog runs\nret1,msr2,video2,a cat sits\n"
    (tmp_path / "MSRVTT_JSFUSION_test.csv").write_text(rows)
    first = load_split("msrvtt", tmp_path).fingerprint
    assert load_split("msrvtt", tmp_path).fingerprint == first
    (tmp_path / "MSRVTT_JSFUSION_test.csv").write_text(rows.replace("a cat sits", "a cat sleeps"))
    assert load_split("msrvtt", tmp_path).fingerprint != first


def test_unknown_split_is_an_error(realdata: Path) -> None:
    with pytest.raises(ValueError, match="no split `test`"):
        load_split("msrvtt", realdata / "msrvtt", "test")


# ---------------------------------------------------------------- MSVD


@pytest.mark.parametrize(("split", "n_texts", "n_videos"), [("train", 48774, 1200), ("val", 4290, 100),
                                                             ("test", 27763, 670)])
def test_msvd_counts_real(realdata: Path, split: str, n_texts: int, n_videos: int) -> None:
    s = load_split("msvd", realdata / "msvd", split)
    assert (len(s.texts), len(s.videos)) == (n_texts, n_videos)
    assert len(set(s.text_ids)) == n_texts
    # texts are laid out video by video, in list order
    assert np.all(np.diff(s.text_to_video) >= 0)
    assert s.texts[0].id == f"{s.videos[0].id}#0"


def test_msvd_splits_disjoint_and_cover_all_captions_real(realdata: Path) -> None:
    ids = [set(load_split("msvd", realdata / "msvd", s).video_ids) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    keys = json.loads((realdata / "msvd" / "captions_msvd.json").read_text())
    assert ids[0] | ids[1] | ids[2] == set(keys) and len(keys) == 1970
    assert max(np.bincount(load_split("msvd", realdata / "msvd", "test").text_to_video)) == 81


def _msvd_root(src: Path, dst: Path, with_json: bool, with_pkl: bool) -> Path:
    dst.mkdir()
    for name in ("train_list.txt", "val_list.txt", "test_list.txt"):
        shutil.copy(src / name, dst / name)
    captions = json.loads((src / "captions_msvd.json").read_text())
    if with_json:
        shutil.copy(src / "captions_msvd.json", dst / "captions_msvd.json")
    if with_pkl:  # the README's recipe for CLIP4Clip's raw-captions.pkl
        with open(dst / "raw-captions.pkl", "wb") as f:
            pickle.dump({k: [c.split() for c in v] for k, v in captions.items()}, f)
    return dst


def test_msvd_pkl_and_json_give_the_same_split(realdata: Path, tmp_path: Path) -> None:
    from_json = load_split("msvd", _msvd_root(realdata / "msvd", tmp_path / "j", True, False), "val")
    from_pkl = load_split("msvd", _msvd_root(realdata / "msvd", tmp_path / "p", False, True), "val")
    assert from_pkl.texts == from_json.texts
    assert from_pkl.video_ids == from_json.video_ids
    assert from_pkl.fingerprint == from_json.fingerprint
    assert from_pkl.meta["annotations"][1].endswith("raw-captions.pkl")


def test_msvd_prefers_json_and_refuses_pickled_code(realdata: Path, tmp_path: Path) -> None:
    root = _msvd_root(realdata / "msvd", tmp_path / "both", True, False)
    # a pickle that would need a global lookup (here a harmless OrderedDict) must be refused, not executed
    (root / "raw-captions.pkl").write_bytes(pickle.dumps(collections.OrderedDict(a=[["x"]])))
    assert load_split("msvd", root, "val").meta["annotations"][1].endswith("captions_msvd.json")
    (root / "captions_msvd.json").unlink()
    with pytest.raises(AnnotationError, match="refusing to load `collections.OrderedDict`"):
        load_split("msvd", root, "val")
    (root / "raw-captions.pkl").unlink()
    with pytest.raises(FileNotFoundError, match="captions_msvd.json"):
        load_split("msvd", root, "val")


def test_msvd_finds_videos_by_stem(tmp_path: Path) -> None:
    (tmp_path / "test_list.txt").write_text("a_1_2\nb_3_4\n")
    (tmp_path / "captions_msvd.json").write_text(json.dumps({"a_1_2": ["x", "y"], "b_3_4": ["z"], "c": ["w"]}))
    (tmp_path / "YouTubeClips").mkdir()
    (tmp_path / "YouTubeClips" / "a_1_2.mp4").write_bytes(b"")
    split = load_split("msvd", tmp_path, "test")
    assert [v.path for v in split.videos] == [str(tmp_path / "YouTubeClips" / "a_1_2.mp4"),
                                              str(tmp_path / "YouTubeClips" / "b_3_4.avi")]
    assert split.text_ids == ["a_1_2#0", "a_1_2#1", "b_3_4#0"]


# ---------------------------------------------------------------- DiDeMo


def test_didemo_test_real(realdata: Path) -> None:
    split = load_split("didemo", realdata / "didemo")
    assert (split.split, len(split.texts), len(split.videos)) == ("test", 1004, 1004)
    assert split.meta["n_descriptions"] == 3932
    assert np.array_equal(split.text_to_video, np.arange(1004))
    data = json.loads((realdata / "didemo" / "test_data.json").read_text())
    first = split.videos[0].id
    assert split.texts[0].caption == " ".join(d["description"] for d in data if d["video"] == first)
    assert (split.videos[0].start, split.videos[0].end) == (0.0, 31.0)
    assert split.videos[0].path.endswith(f"{first}.mp4") and first.endswith(".mov")
    c4c = load_split("didemo", realdata / "didemo", naming="clip4clip")
    assert c4c.videos[0].path.endswith(f"/{first}") and c4c.fingerprint == split.fingerprint


def test_didemo_small_and_disjoint_lists_real(realdata: Path, tmp_path: Path) -> None:
    lists = {s: set((realdata / "didemo" / f"{s}_list.txt").read_text().split()) for s in ("train", "val", "test")}
    assert not (lists["train"] & lists["val"] or lists["train"] & lists["test"] or lists["val"] & lists["test"])
    data = [{"video": v, "description": d, "times": [[0, 0]], "annotation_id": i}
            for i, (v, d) in enumerate([("b.mp4", "one."), ("a.avi", "two."), ("b.mp4", "three."), ("z.m4v", "x")])]
    for split in ("train", "val"):
        (tmp_path / f"{split}_data.json").write_text(json.dumps(data))
        (tmp_path / f"{split}_list.txt").write_text("a.avi\nb.mp4\nnot_described.\n")
    for split in ("train", "val"):
        s = load_split("didemo", tmp_path, split)
        assert [(t.id, t.caption) for t in s.texts] == [("a.avi", "two."), ("b.mp4", "one. three.")]
        assert s.meta["dropped_without_descriptions"] == 1
    with pytest.raises(FileNotFoundError, match="test_list.txt"):
        load_split("didemo", tmp_path, "test")
    with pytest.raises(ValueError, match="naming"):
        load_split("didemo", tmp_path, "val", naming="other")


# ---------------------------------------------------------------- LSMDC

CLIP_A = "1010_TITANIC_00.41.32.072-00.41.40.196"
CLIP_B = "1010_TITANIC_00.41.41.000-00.41.45.000"
PIANIST = "0017_Pianist_00.23.28.872-00.23.34.843"


def _lsmdc_row(clip: str, sentence: str) -> str:
    return f"{clip}\t00.41.32.072\t00.41.40.196\t00.41.32.000\t00.41.40.000\t{sentence}\n"


def test_lsmdc_small(tmp_path: Path) -> None:
    train = _lsmdc_row(CLIP_A, "SOMEONE waves.") + _lsmdc_row(PIANIST, "He plays.") + _lsmdc_row(CLIP_B, "Rain.")
    train += _lsmdc_row(CLIP_A, "SOMEONE smiles.")
    (tmp_path / "LSMDC16_annos_training.csv").write_text(train)
    (tmp_path / "LSMDC16_challenge_1000_publictect.csv").write_text(_lsmdc_row(CLIP_B, "Rain.") + _lsmdc_row(
        CLIP_A, "SOMEONE waves."))
    movie = tmp_path / "avi" / "1010_TITANIC"
    movie.mkdir(parents=True)
    (movie / f"{CLIP_B}.mp4").write_bytes(b"")
    split = load_split("lsmdc", tmp_path, "train")
    assert split.text_ids == [f"{CLIP_A}#0", f"{CLIP_B}#0", f"{CLIP_A}#1"]
    assert split.video_ids == [CLIP_A, CLIP_B]
    assert split.videos[0].path == str(movie / f"{CLIP_A}.avi") and split.videos[1].path == str(movie / f"{CLIP_B}.mp4")
    assert PIANIST in load_split("lsmdc", tmp_path, "train", exclude_glscl=False).video_ids
    test = load_split("lsmdc", tmp_path)
    assert (test.split, len(test.texts), len(test.videos)) == ("test", 2, 2)
    assert np.array_equal(test.text_to_video, [0, 1])
    with pytest.raises(FileNotFoundError, match="LSMDC16_annos_val.csv"):
        load_split("lsmdc", tmp_path, "val")
    (tmp_path / "LSMDC16_annos_val.csv").write_text(_lsmdc_row(CLIP_A, "ok") + f"{CLIP_B}\t1\t2\t3\tbroken\n")
    with pytest.raises(AnnotationError, match="line 2 has 5 tab-separated fields"):
        load_split("lsmdc", tmp_path, "val")


# ---------------------------------------------------------------- ActivityNet


def test_activitynet_val_1_real(realdata: Path) -> None:
    split = load_split("activitynet", realdata / "activitynet")
    assert (split.split, len(split.texts), len(split.videos)) == ("val_1", 4917, 4917)
    assert split.meta["n_sentences"] == 17505
    ids = json.loads((realdata / "activitynet" / "val_ids.json").read_text())
    captions = json.loads((realdata / "activitynet" / "val_1.json").read_text())
    assert split.video_ids == [i for i in ids if i in captions]
    assert set(split.video_ids) == set((realdata / "activitynet" / "ce_val_1_list.txt").read_text().split())
    first = split.video_ids[0]
    assert split.texts[0].caption == " ".join(captions[first]["sentences"])
    assert (split.videos[0].start, split.videos[0].end) == (0.0, float(math.ceil(captions[first]["duration"])))
    assert split.videos[0].path.endswith(f"/videos/{first}.mp4")
    c4c = load_split("activitynet", realdata / "activitynet", naming="clip4clip")
    assert c4c.videos[0].path.endswith(f"/videos/{first[2:]}.mp4")


def test_activitynet_train_small(tmp_path: Path) -> None:
    captions = {"v_b": {"duration": 10.2, "timestamps": [[0, 5], [5, 10]], "sentences": ["B one.", "  B two."]},
                "v_a": {"duration": 3.0, "timestamps": [[0, 3]], "sentences": ["A."]}}
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "train.json").write_text(json.dumps(captions))
    (tmp_path / "captions" / "train_ids.json").write_text(json.dumps(["v_a", "v_gone", "v_b"]))
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "b.mkv").write_bytes(b"")
    split = load_split("activitynet", tmp_path, "train", naming="clip4clip")
    assert split.video_ids == ["v_a", "v_b"]
    assert [t.caption for t in split.texts] == ["A.", "B one.   B two."]
    assert [(v.start, v.end) for v in split.videos] == [(0.0, 3.0), (0.0, 11.0)]
    assert [Path(v.path).name for v in split.videos] == ["a.mp4", "b.mkv"]
