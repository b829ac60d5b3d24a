"""Hostile or careless annotation files are refused with a message naming the file and the item (issue 12, items 8,
10, 15/16, 19, 22): empty splits, a pickle memory bomb, pickle opcodes on the wrong objects, impossible durations,
duplicate ids, missing fields, path-like video ids, empty paragraphs and sidecar files beside videos."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from benchmark.cli import main
from benchmark.data import load_split
from benchmark.data.files import AnnotationError
from benchmark.data.split import Split, TextRecord, VideoRecord
from benchmark.presets import load_preset
from benchmark.study.reproduce import InputError, check_real_inputs

TEST_HEADER = "key,vid_key,video_id,sentence\n"


def _msrvtt(root: Path, rows: str = "", sentences: list | None = None) -> Path:
    """An MSR-VTT folder: the 1k-A csv with `rows`, and MSRVTT_data.json + a 9k list for training."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "MSRVTT_JSFUSION_test.csv").write_text(TEST_HEADER + rows)
    (root / "MSRVTT_data.json").write_text(json.dumps({"sentences": sentences or []}))
    (root / "MSRVTT_train.9k.csv").write_text("video_id\nvideo1\n")
    return root


# ---------------------------------------------------------------- item 8: an empty split is not complete


def test_data_check_fails_on_an_empty_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _msrvtt(tmp_path / "msrvtt")
    assert main(["data", "check", "msrvtt", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "msrvtt/test-1k-a" in err and "is empty (0 texts, 0 videos)" in err and "MSRVTT_JSFUSION_test.csv" in err


def test_reproduce_input_check_fails_on_empty_splits(tmp_path: Path) -> None:
    root = _msrvtt(tmp_path / "msrvtt")
    weights = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(1)}, str(weights))
    with pytest.raises(InputError) as caught:
        check_real_inputs(load_preset("msrvtt-vitb32"), root, weights, probe=False)
    message = str(caught.value)
    assert "split `train-9k`" in message and "split `test-1k-a`" in message and message.count("is empty") == 2


# ---------------------------------------------------------------- items 10, 15, 22: the MSVD captions pickle


def _msvd(root: Path, pickle_bytes: bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "test_list.txt").write_text("vidA\n")
    (root / "raw-captions.pkl").write_bytes(pickle_bytes)
    return root


def test_msvd_pickle_memory_bomb_is_refused(tmp_path: Path) -> None:
    shared = ["token"] * 1000
    captions = [shared] * 1000  # the memo stores each list once; expanded, 1e9 tokens (about 6 GB of text)
    bomb = pickle.dumps({f"vid{i}": captions for i in range(1000)} | {"vidA": [["a", "b"]]})
    assert len(bomb) < 100_000
    root = _msvd(tmp_path / "msvd", bomb)
    with pytest.raises(AnnotationError, match=rf"`{root / 'raw-captions.pkl'}`: holds more than .* memory bomb"):
        load_split("msvd", root, "test")
    looped: list = []
    looped.append(looped)
    (root / "raw-captions.pkl").write_bytes(pickle.dumps({"vidA": looped}))
    with pytest.raises(AnnotationError, match="contains itself"):
        load_split("msvd", root, "test")


@pytest.mark.parametrize("payload", [
    b"\x80\x04}}b.",  # BUILD applied to a dict
    b"\x80\x04}(X\x01\x00\x00\x00a]ub.",  # stack underflow
    os.urandom(2000),
    b"",
])
def test_msvd_damaged_pickles_name_the_file(tmp_path: Path, payload: bytes) -> None:
    root = _msvd(tmp_path / "msvd", payload)
    with pytest.raises(AnnotationError) as caught:
        load_split("msvd", root, "test")
    assert f"`{root / 'raw-captions.pkl'}` cannot be read as CLIP4Clip's raw-captions.pkl" in str(caught.value)


# ---------------------------------------------------------------- items 15/16, 19: ActivityNet durations, paragraphs


def _activitynet(root: Path, entry: dict) -> Path:
    (root / "captions").mkdir(parents=True)
    (root / "captions" / "val_1.json").write_text(json.dumps({"v_a": entry}))
    (root / "captions" / "val_ids.json").write_text(json.dumps(["v_a"]))
    return root


@pytest.mark.parametrize(("entry", "message"), [
    ({"duration": float("inf"), "sentences": ["A."]}, "`duration` must be a finite number of seconds above 0, found "
     "inf"),
    ({"duration": float("nan"), "sentences": ["A."]}, "found nan"),
    ({"duration": -5.0, "sentences": ["A."]}, "found -5.0"),
    ({"duration": "12", "sentences": ["A."]}, "found '12'"),
    ({"duration": 3.0, "sentences": ["A.", None]}, "`sentences[1]` must be non-empty text, found None"),
    ({"duration": 3.0, "sentences": []}, "text `v_a` has no caption"),
    ({"duration": 3.0, "sentences": ["  "]}, "`sentences[0]` must be non-empty text"),
])
def test_activitynet_bad_entries_name_file_and_item(tmp_path: Path, entry: dict, message: str) -> None:
    root = _activitynet(tmp_path / "anet", entry)
    with pytest.raises(ValueError) as caught:
        load_split("activitynet", root)
    assert message in str(caught.value) and "val_1.json" in str(caught.value) and "v_a" in str(caught.value)


# ---------------------------------------------------------------- item 19: ids, missing fields, paths, sidecars


@pytest.mark.parametrize(("rows", "message"), [
    ("ret0,x,video1,a cat\nret0,x,video2,a dog\n", "text id `ret0` appears more than once"),
    ("ret0,x,video1\n", "line 2: `sentence` must be non-empty text, found None"),
    ("ret0,x,../../etc/passwd,a cat\n", "video id '../../etc/passwd' is empty or contains a path separator"),
    ("ret0,x,..\\evil,a cat\n", "contains a path separator"),
    ("ret0,x,video1,   \n", "line 2: `sentence` must be non-empty text"),
])
def test_msrvtt_test_csv_problems_name_file_and_item(tmp_path: Path, rows: str, message: str) -> None:
    root = _msrvtt(tmp_path / "msrvtt", rows)
    with pytest.raises(ValueError) as caught:
        load_split("msrvtt", root)
    assert message in str(caught.value) and "MSRVTT_JSFUSION_test.csv" in str(caught.value)


def test_a_missing_caption_never_becomes_the_text_none(tmp_path: Path) -> None:
    sentences = [{"sen_id": 0, "video_id": "video1", "caption": "a cat"},
                 {"sen_id": 1, "video_id": "video1", "caption": None}]
    root = _msrvtt(tmp_path / "msrvtt", sentences=sentences)
    with pytest.raises(AnnotationError, match=r"MSRVTT_data.json`: sentences\[1\]: `caption` must be non-empty text"):
        load_split("msrvtt", root, "train-9k")


def test_didemo_missing_description_and_empty_paragraph(tmp_path: Path) -> None:
    (tmp_path / "test_list.txt").write_text("a.mov\n")
    data = tmp_path / "test_data.json"
    data.write_text(json.dumps([{"video": "a.mov", "description": None}]))
    with pytest.raises(AnnotationError, match=r"test_data.json`: entry 0: `description` must be non-empty text"):
        load_split("didemo", tmp_path)
    data.write_text(json.dumps([{"video": "a.mov", "description": ""}]))
    with pytest.raises(AnnotationError, match="`description` must be non-empty text, found ''"):
        load_split("didemo", tmp_path)


def test_msvd_path_like_ids_and_sidecars(tmp_path: Path) -> None:
    root = tmp_path / "msvd"
    (root / "videos").mkdir(parents=True)
    (root / "test_list.txt").write_text("vidA\nvidB\n")
    (root / "captions_msvd.json").write_text(json.dumps({"vidA": ["a cat"], "vidB": ["a dog"]}))
    (root / "videos" / "vidB.info").write_text("sidecar")
    (root / "videos" / "vidB.mp4").write_bytes(b"")
    assert load_split("msvd", root, "test").videos[1].path == str(root / "videos" / "vidB.mp4")
    (root / "test_list.txt").write_text("vidA\n../vidB\n")
    (root / "captions_msvd.json").write_text(json.dumps({"vidA": ["a cat"], "../vidB": ["a dog"]}))
    with pytest.raises(ValueError, match=r"msvd/test \(from .*test_list.txt.*\): video id '../vidB'"):
        load_split("msvd", root, "test")


@pytest.mark.parametrize(("start", "end"), [(-1.0, 5.0), (0.0, -2.0), (3.0, 3.0), (0.0, float("inf")), (None, 4.0)])
def test_split_refuses_impossible_windows(start: float | None, end: float) -> None:
    with pytest.raises(ValueError, match="must be finite with 0 <= start < end"):
        Split("b", "s", [VideoRecord("v", "v.mp4", start, end)], [TextRecord("t", "a cat", "v")])
