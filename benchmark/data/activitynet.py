"""ActivityNet Captions paragraph retrieval: per video, all its sentences joined by a space, the whole video.

Pairs = ids of `<train|val>_ids.json` in file order that are keys of the caption json (`train.json`, `val_1.json`);
the video and its paragraph share the `v_<youtube id>` key as id; window [0, ceil(duration)].
File naming: `glscl` (default; standard ActivityNet) = `v_<id>.<ext>`, `clip4clip` = `<id>.<ext>`; any extension.
"""

from __future__ import annotations

import math
from pathlib import Path

from benchmark.data import register_loader
from benchmark.data.files import expect, find_annotation, index_videos, pick_dir, read_json, text_field
from benchmark.data.split import Split, TextRecord, VideoRecord

SPLITS = ("train", "val_1")
FILES = {"train": ("train_ids.json", "train.json"), "val_1": ("val_ids.json", "val_1.json")}
EXPECTED_FILES: dict[str, tuple[str, ...]] = dict(FILES)
NAMINGS = ("glscl", "clip4clip")
VIDEO_LAYOUT = (
    "naming=glscl: <video_dir>/v_<youtube id>.<any extension> (e.g. videos/v_uqiMw7tQ1Cc.mp4); "
    "naming=clip4clip: <video_dir>/<youtube id>.<any extension> (default video_dir: videos/)"
)
VIDEO_DIRS = ("videos",)
EXTRA_DIRS = ("captions",)


def file_stem(key: str, naming: str) -> str:
    """The file stem of caption key `v_<id>` under a naming convention."""
    return key if naming == "glscl" else key[2:]


@register_loader("activitynet", splits=SPLITS, test_split="val_1")
def load_activitynet(root: Path, split: str, naming: str = "glscl", video_dir: str | Path | None = None) -> Split:
    """ActivityNet split loader (registered as `activitynet`)."""
    if naming not in NAMINGS:
        raise ValueError(f"activitynet: naming must be one of {', '.join(NAMINGS)}, not `{naming}`.")
    ids_name, captions_name = FILES[split]
    ids_path = find_annotation(root, (ids_name,), "activitynet", EXTRA_DIRS)
    captions_path = find_annotation(root, (captions_name,), "activitynet", EXTRA_DIRS,
                                    hint="It is in Stanford's ActivityNet Captions captions.zip.")
    ids = read_json(ids_path)
    expect(isinstance(ids, list) and all(isinstance(i, str) for i in ids), ids_path, "expected a JSON list of ids.")
    captions = read_json(captions_path)
    expect(isinstance(captions, dict), captions_path, "expected a JSON object `v_<id>` -> {duration, sentences}.")
    keys = [k for k in dict.fromkeys(ids) if k in captions]
    folder = pick_dir(root, video_dir, VIDEO_DIRS)
    found = index_videos(folder)
    videos, texts, n_sentences = [], [], 0
    for key in keys:
        entry = captions[key]
        expect(isinstance(entry, dict) and isinstance(entry.get("sentences"), list) and "duration" in entry,
               captions_path, f"entry `{key}` lacks `sentences` or `duration`.")
        for number, sentence in enumerate(entry["sentences"]):
            text_field(sentence, captions_path, f"entry `{key}`", f"sentences[{number}]")
        duration = entry["duration"]
        expect(isinstance(duration, (int, float)) and not isinstance(duration, bool) and math.isfinite(duration)
               and duration > 0, captions_path, f"entry `{key}`: `duration` must be a finite number of seconds "
               f"above 0, found {duration!r}.")  # fmt: skip
        stem = file_stem(key, naming)
        path = found.get(stem, folder / f"{stem}.mp4")
        videos.append(VideoRecord(key, str(path), 0.0, float(math.ceil(duration))))
        texts.append(TextRecord(key, " ".join(entry["sentences"]), key))
        n_sentences += len(entry["sentences"])
    meta = {"annotations": [str(ids_path), str(captions_path)], "naming": naming, "n_sentences": n_sentences}
    return Split("activitynet", split, videos, texts, meta)
