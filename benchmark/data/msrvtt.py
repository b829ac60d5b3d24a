"""MSR-VTT: the 1k-A (JSFusion) test split, the 9k/7k training splits (all 20 captions per video) and the full split.

Test texts are the JSFusion csv rows (id = `key`); training texts are every `sentences[]` item of `MSRVTT_data.json`
whose video is in the split's list, in json order (id = `sen_id`). Videos are `<video_dir>/<video_id>.mp4`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from benchmark.data import register_loader
from benchmark.data.files import expect, find_annotation, pick_dir, read_json, read_lines, text_field
from benchmark.data.split import Split, TextRecord, VideoRecord

CAPTIONS_FILE = "MSRVTT_data.json"
# Frozen-in-Time ships the same file as annotation/MSR_VTT.json.
CAPTIONS_NAMES = (CAPTIONS_FILE, "MSR_VTT.json")
TEST_CSV = "MSRVTT_JSFUSION_test.csv"
TRAIN_CSV = {"train-9k": "MSRVTT_train.9k.csv", "train-7k": "MSRVTT_train.7k.csv"}
FULL_LISTS = {"full-train": "train_list_full.txt", "full-val": "val_list_full.txt", "full-test": "test_list_full.txt"}
SPLITS = ("train-9k", "train-7k", "test-1k-a", *FULL_LISTS)

# Files each split needs under --root (or its anns/, annotations/, annotation/, data/ or msrvtt_data/ sub-folder).
EXPECTED_FILES: dict[str, tuple[str, ...]] = {
    "test-1k-a": (TEST_CSV,),
    **{split: (name, CAPTIONS_FILE) for split, name in TRAIN_CSV.items()},
    **{split: (name, CAPTIONS_FILE) for split, name in FULL_LISTS.items()},
}
VIDEO_LAYOUT = "<video_dir>/<video_id>.mp4, e.g. videos/video9770.mp4 (default video_dir: videos/ or videos/all/)"
VIDEO_DIRS = ("videos", "videos/all", "MSRVTT/videos/all")
EXTRA_DIRS = ("msrvtt_data", "MSRVTT/annotation")
CAPTIONS_HINT = (
    f"`{CAPTIONS_FILE}` holds the training captions (CLIP4Clip's msrvtt_data.zip; Frozen-in-Time's "
    "annotation/MSR_VTT.json is the same file)."
)


def read_captions(path: Path) -> list[tuple[str, str, str]]:
    """(sen_id, video_id, caption) of every sentence in an MSRVTT_data.json, in file order."""
    data = read_json(path)
    expect(isinstance(data, dict) and isinstance(data.get("sentences"), list), path, "no `sentences` list.")
    rows = []
    for number, item in enumerate(data["sentences"]):
        expect(
            isinstance(item, dict) and {"sen_id", "video_id", "caption"} <= item.keys(),
            path,
            f"sentence entry {str(item)[:80]} lacks one of `sen_id`, `video_id`, `caption`.",
        )
        where = f"sentences[{number}]"
        rows.append((text_field(item["sen_id"], path, where, "sen_id", number_ok=True),
                     text_field(item["video_id"], path, where, "video_id", number_ok=True),
                     text_field(item["caption"], path, where, "caption")))  # fmt: skip
    return rows


def read_video_list(path: Path) -> list[str]:
    """Video ids of a split list: a csv with a `video_id` column or a plain one-id-per-line file."""
    if path.suffix != ".csv":
        return read_lines(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        expect("video_id" in (reader.fieldnames or []), path, "no `video_id` column in the header.")
        return [row["video_id"].strip() for row in reader if row["video_id"].strip()]


def _videos(ids: list[str], video_dir: Path) -> list[VideoRecord]:
    return [VideoRecord(v, str(video_dir / f"{v}.mp4")) for v in ids]


def _test_split(root: Path, split: str, benchmark: str, video_dir: Path) -> Split:
    path = find_annotation(root, (TEST_CSV,), benchmark, EXTRA_DIRS)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        expect({"key", "video_id", "sentence"} <= set(reader.fieldnames or []), path, "header must have "
               "`key,vid_key,video_id,sentence`.")
        rows = [tuple(text_field(r.get(name), path, f"line {number}", name) for name in ("key", "video_id", "sentence"))
                for number, r in enumerate(reader, start=2)]  # fmt: skip
    texts = [TextRecord(key, sentence, vid) for key, vid, sentence in rows]
    ids = list(dict.fromkeys(vid for _, vid, _ in rows))
    return Split(benchmark, split, _videos(ids, video_dir), texts, {"annotations": [str(path)]})


def _caption_split(root: Path, split: str, benchmark: str, video_dir: Path, list_name: str) -> Split:
    list_path = find_annotation(root, (list_name,), benchmark, EXTRA_DIRS)
    captions_path = find_annotation(root, CAPTIONS_NAMES, benchmark, EXTRA_DIRS, hint=CAPTIONS_HINT)
    ids = read_video_list(list_path)
    wanted = set(ids)
    texts = [TextRecord(sen, cap, vid) for sen, vid, cap in read_captions(captions_path) if vid in wanted]
    meta = {"annotations": [str(list_path), str(captions_path)]}
    return Split(benchmark, split, _videos(ids, video_dir), texts, meta)


def msrvtt_split(root: Path, split: str, *, benchmark: str = "msrvtt", video_dir: str | Path | None = None) -> Split:
    """Build MSR-VTT split `split` from the files under `root` (also used by benchmarks in MSR-VTT's layout)."""
    videos = pick_dir(root, video_dir, VIDEO_DIRS)
    if split == "test-1k-a":
        return _test_split(root, split, benchmark, videos)
    list_name = TRAIN_CSV.get(split) or FULL_LISTS.get(split)
    if list_name is None:
        raise ValueError(f"{benchmark}: unknown split `{split}`. Splits: {', '.join(SPLITS)}.")
    return _caption_split(root, split, benchmark, videos, list_name)


@register_loader("msrvtt", splits=SPLITS, test_split="test-1k-a")
def load_msrvtt(root: Path, split: str, video_dir: str | Path | None = None) -> Split:
    """MSR-VTT split loader (registered as `msrvtt`)."""
    return msrvtt_split(root, split, video_dir=video_dir)
