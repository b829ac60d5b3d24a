"""SynthVTT: determinism, caption/video agreement read from decoded MP4s, MSR-VTT formats, manifest, loader."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import decord
import numpy as np
import pytest

from benchmark.data import load_split
from benchmark.data.synth_scene import (
    COLOURS,
    SceneOptions,
    SceneSampler,
    binding_twin,
    description_key,
    render,
    reverse_twin,
    sample_scene,
)
from benchmark.data.synth_text import (
    BACKGROUND_PHRASES,
    BACKGROUND_WORDS,
    MOTION_PHRASES,
    REGION_PHRASES,
    SHAPE_NOUNS,
    SIZE_WORDS,
    image_caption,
)
from benchmark.data.synthvtt import HASHED_FILES, MANIFEST, generate, load_image_captions, sha256_file

SMALL = {"n_train": 20, "n_val": 5, "n_test": 10, "captions_per_video": 4, "n_images": 12, "workers": 1,
         "progress": False}  # fmt: skip
PALETTE = np.array(list(COLOURS.values()), dtype=np.int64)
NAMES = list(COLOURS)


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "synthvtt"
    generate(root, seed=0, **SMALL)
    return root


def decode(path: Path) -> np.ndarray:
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


# ------------------------------------------------------------------ recovering attributes from pixels (independent)


def blobs(frame: np.ndarray) -> dict[str, np.ndarray]:
    """Colour name -> boolean mask of the saturated pixels closest to that palette colour (>= 8 pixels)."""
    f = frame.astype(np.int64)
    saturated = (f.max(-1) - f.min(-1)) > 80
    dist = ((f[:, :, None, :] - PALETTE[None, None]) ** 2).sum(-1)
    nearest, close = dist.argmin(-1), dist.min(-1) < 70**2
    out = {}
    for k, name in enumerate(NAMES):
        mask = saturated & close & (nearest == k)
        if mask.sum() >= 8:
            out[name] = mask
    return out


def segment_motion(a: np.ndarray, b: np.ndarray, between: list[np.ndarray], size: int) -> str:
    """Motion from mask `a` to mask `b` (masks in between catch rotations)."""
    (ya, xa), (yb, xb) = (np.argwhere(m).mean(0) for m in (a, b))
    dx, dy = xb - xa, yb - ya
    if max(abs(dx), abs(dy)) > 0.07 * size:
        return ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
    ratio = b.sum() / a.sum()
    if ratio > 1.4 or ratio < 1 / 1.4:
        return "grow" if ratio > 1 else "shrink"
    iou = min((m & a).sum() / (m | a).sum() for m in between)
    return "rotate" if iou < 0.8 else "still"


def recovered_motions(frames: np.ndarray) -> dict[str, tuple[str, ...]]:
    """Colour -> phases seen in the frames: one phase, or two when the halves translate in different directions."""
    per_frame = [blobs(f) for f in frames]
    size, last, mid = frames.shape[1], len(frames) - 1, (len(frames) - 1) // 2
    out = {}
    for colour in per_frame[0]:
        masks = [p[colour] for p in per_frame]
        whole = segment_motion(masks[0], masks[-1], masks, size)
        first = segment_motion(masks[0], masks[mid], masks[: mid + 1], size)
        second = segment_motion(masks[mid], masks[last], masks[mid:], size)
        translations = {"left", "right", "up", "down"}
        two = first in translations and second in translations and first != second
        out[colour] = (first, second) if two else (whole,)
    return out


# ------------------------------------------------------------------ reading the attributes back from a caption


def caption_colours(caption: str) -> set[str]:
    return {c for c in NAMES if re.search(rf"\b{c}\b", caption)}


def phrase_hits(text: str) -> list[tuple[int, str]]:
    """(position, motion) of every motion phrasing in `text`; rotations count as "rotate"."""
    hits = []
    for motion, pairs in MOTION_PHRASES.items():
        name = "rotate" if "clockwise" in motion else motion
        hits += [(text.find(p), name) for pair in pairs for p in pair if p in text]
    return sorted(set(hits))


def caption_motions(caption: str, colour: str, others: set[str]) -> tuple[str, ...]:
    """The phases the caption gives the object of `colour`, in time order ("after X-ing, ..." / "before X-ing")."""
    clause = caption
    if others:  # two objects: from this colour's word to the other object's, or to the end
        start = caption.index(colour)
        ends = [caption.index(o) for o in others if caption.index(o) > start]
        clause = caption[start : min(ends, default=len(caption))]
    hits = phrase_hits(clause)
    order = list(dict.fromkeys(m for _, m in hits))
    for pos, motion in hits:
        if clause[:pos].endswith("after "):
            order = [motion] + [m for m in order if m != motion]
        elif clause[:pos].endswith("before "):
            order = [m for m in order if m != motion] + [motion]
    return tuple(order)


def video_captions(root: Path) -> dict[str, list[str]]:
    data = json.loads((root / "MSRVTT_data.json").read_text())
    out: dict[str, list[str]] = {}
    for s in data["sentences"]:
        out.setdefault(s["video_id"], []).append(s["caption"])
    with (root / "MSRVTT_JSFUSION_test.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["video_id"], []).append(row["sentence"])
    return out


# ------------------------------------------------------------------ tests


def test_caption_video_agreement_from_decoded_mp4(ds: Path) -> None:
    """Every caption's colours, per-object motions and phase order match what the decoded frames show."""
    captions = video_captions(ds)
    scenes = json.loads((ds / "synthvtt_scenes.json").read_text())["videos"]
    assert len(captions) == len(scenes) == 35
    kinds = {r["kind"] for r in scenes.values()}
    assert kinds == {"single", "two-phase", "two-object"}, kinds
    checked_order = 0
    for vid, texts in captions.items():
        frames = decode(ds / "videos" / f"{vid}.mp4")
        assert frames.shape == (scenes[vid]["scene"]["n_frames"], 64, 64, 3)
        seen = recovered_motions(frames)
        for text in texts:
            assert caption_colours(text) == set(seen), (vid, text, seen)
            for colour, phases in seen.items():
                said = caption_motions(text, colour, set(seen) - {colour})
                assert said == phases, (vid, text, colour, phases)
                checked_order += len(phases) == 2
    assert checked_order > 0


def test_decoded_frames_round_trip(ds: Path) -> None:
    from benchmark.data.synth_scene import Scene

    scenes = json.loads((ds / "synthvtt_scenes.json").read_text())["videos"]
    for vid, record in list(scenes.items())[:10]:
        rendered = render(Scene.from_json(record["scene"]), 64).astype(np.int64)
        assert np.abs(decode(ds / "videos" / f"{vid}.mp4").astype(np.int64) - rendered).mean() < 4.0


def test_same_seed_same_bytes_and_frames(ds: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, seed=0, **SMALL)
    for name in HASHED_FILES:
        assert (ds / name).read_bytes() == (again / name).read_bytes(), name
    for i in range(35):
        assert np.array_equal(decode(ds / "videos" / f"video{i}.mp4"), decode(again / "videos" / f"video{i}.mp4"))
    other = tmp_path / "other"
    generate(other, seed=1, **SMALL)
    assert (ds / "MSRVTT_data.json").read_bytes() != (other / "MSRVTT_data.json").read_bytes()
    assert not np.array_equal(decode(ds / "videos" / "video0.mp4")[:1], decode(other / "videos" / "video0.mp4")[:1])


def test_msrvtt_file_formats(ds: Path) -> None:
    data = json.loads((ds / "MSRVTT_data.json").read_text())
    assert set(data) == {"info", "videos", "sentences"}
    assert len(data["videos"]) == 35
    for v in data["videos"]:
        assert set(v) == {"id", "video_id", "category", "url", "start time", "end time", "split"}
        assert v["split"] in {"train", "validate", "test"} and v["end time"] > v["start time"]
    assert [s["sen_id"] for s in data["sentences"]] == list(range(25 * 4))
    assert all(set(s) == {"sen_id", "video_id", "caption"} for s in data["sentences"])
    with (ds / "MSRVTT_train.9k.csv").open(newline="") as f:
        train = list(csv.DictReader(f))
    assert list(train[0]) == ["video_id"] and len(train) == 25
    with (ds / "MSRVTT_JSFUSION_test.csv").open(newline="") as f:
        test = list(csv.DictReader(f))
    assert list(test[0]) == ["key", "vid_key", "video_id", "sentence"] and len(test) == 10
    assert test[0]["key"] == "ret0" and test[0]["vid_key"] == "msr" + test[0]["video_id"].removeprefix("video")
    assert len({r["sentence"] for r in test}) == 10  # complete captions single a clip out
    with (ds / "synthvtt_val.csv").open(newline="") as f:
        val = [r["video_id"] for r in csv.DictReader(f)]
    assert val == [r["video_id"] for r in train[20:]]


def test_manifest_and_idempotence(ds: Path, tmp_path: Path) -> None:
    manifest = json.loads((ds / MANIFEST).read_text())
    assert manifest["seed"] == 0 and manifest["options"]["n_train"] == 20
    assert manifest["counts"]["videos"] == 35 and manifest["counts"]["test_queries"] == 10
    for name, digest in manifest["files"].items():
        assert sha256_file(ds / name) == digest
    stamp = (ds / MANIFEST).stat().st_mtime_ns
    assert generate(ds, seed=0, **SMALL).skipped
    assert (ds / MANIFEST).stat().st_mtime_ns == stamp
    (ds / "videos" / "video3.mp4").unlink()  # incomplete -> regenerated
    assert not generate(ds, seed=0, **SMALL).skipped
    assert (ds / "videos" / "video3.mp4").stat().st_size > 0
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a SynthVTT folder"):
        generate(foreign, **SMALL)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="two_object"):
        generate(tmp_path / "bad", two_object=1.5, **SMALL)
    assert not (tmp_path / "bad").exists()


def test_loader_counts(ds: Path) -> None:
    train, val, test = (load_split("synthvtt", ds, s) for s in ("train", "val", "test"))
    assert (len(train.videos), len(train.texts)) == (20, 80)
    assert (len(val.videos), len(val.texts)) == (5, 5)
    assert (len(test.videos), len(test.texts)) == (10, 10)
    assert {s.benchmark for s in (train, val, test)} == {"synthvtt"}
    assert not set(train.video_ids) & set(val.video_ids)
    first = {}
    for s in json.loads((ds / "MSRVTT_data.json").read_text())["sentences"]:
        first.setdefault(s["video_id"], s["caption"])
    assert [t.caption for t in val.texts] == [first[v] for v in val.video_ids]
    assert load_split("synthvtt", ds).split == "test"


def test_image_caption_set(ds: Path) -> None:
    images, captions = load_image_captions(ds)
    assert images.shape == (12, 64, 64, 3) and images.dtype == np.uint8 and len(captions) == 12
    for image, text in zip(images, captions):
        assert caption_colours(text) == set(blobs(image)), text
        assert not phrase_hits(text), text  # static: no motion


def test_canonical_image_words_leave_the_synonyms_to_the_clips() -> None:
    """Without synonyms, pretraining captions phrase each shape, size, position and background one way (the first
    of each list); with them (the default) the other phrasings occur too."""
    scenes = SceneSampler(np.random.default_rng(0), SceneOptions(n_shapes=6)).sample(400)
    lists = [*SHAPE_NOUNS.values(), *SIZE_WORDS.values(), *REGION_PHRASES.values(), *BACKGROUND_WORDS.values(),
             BACKGROUND_PHRASES, ("in the top left corner", "at the top left")]  # fmt: skip
    firsts = {p.split("{")[0].strip() for p in (words[0] for words in lists)}
    others = {p.split("{")[0].strip() for words in lists for p in words[1:]} - firsts

    def phrases(synonyms: bool) -> set[str]:
        rng = np.random.default_rng(1)
        text = " | ".join(image_caption(rng, s, synonyms) for s in scenes)
        return {p for p in others | firsts if re.search(rf"\b{p}\b", text)}

    assert phrases(False) == firsts
    assert phrases(True) == others | firsts


def test_hard_negative_twins() -> None:
    rng = np.random.default_rng(3)
    scenes = SceneSampler(rng, SceneOptions(twins=1.0)).sample(200)
    keys = [description_key(s) for s in scenes]
    assert len(set(keys)) == len(keys)
    twins = {s.twin for s in scenes}
    assert {"binding", "order", "reverse"} <= twins
    for prev, scene in zip(scenes, scenes[1:]):
        if scene.twin == "binding":
            assert [o.colour for o in scene.objects] == [o.colour for o in prev.objects][::-1]
            assert [o.shape for o in scene.objects] == [o.shape for o in prev.objects]
        if scene.twin == "order":
            assert scene.objects[0].phases == prev.objects[0].phases[::-1]
        if scene.twin == "reverse":  # the same frames played backwards (up to edge pixels of rounding)
            differ = np.any(render(scene, 64)[::-1] != render(prev, 64), axis=-1).mean()
            assert differ < 0.01


def test_twins_of_a_two_object_scene() -> None:
    scene = sample_scene(np.random.default_rng(0), SceneOptions(two_object=1.0))
    swapped = binding_twin(scene)
    assert description_key(swapped) != description_key(scene)
    assert sorted(description_key(swapped)[1]) != sorted(description_key(scene)[1])
    assert np.any(np.any(render(swapped, 32) != render(scene, 32), axis=-1))
    differ = np.any(render(reverse_twin(scene), 32)[::-1] != render(scene, 32), axis=-1).mean()
    assert differ < 0.01
