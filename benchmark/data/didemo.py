"""DiDeMo paragraph retrieval: per listed video, all its descriptions (json order) joined by a space.

Pairs = `<split>_list.txt` ∩ `<split>_data.json`, in list order; the video and its paragraph share the list entry as
id. Every video is read from second 0 to 31 (the per-moment times are discarded, as in CLIP4Clip and GLSCL).
File naming: `glscl` (default; LocalizingMoments' downloader) = `<list entry>.mp4`, `clip4clip` = the list entry.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.data import register_loader
from benchmark.data.files import expect, find_annotation, pick_dir, read_json, read_lines, text_field
from benchmark.data.split import Split, TextRecord, VideoRecord

SPLITS = ("train", "val", "test")
START, END = 0.0, 31.0
NAMINGS = ("glscl", "clip4clip")
EXPECTED_FILES: dict[str, tuple[str, ...]] = {s: (f"{s}_list.txt", f"{s}_data.json") for s in SPLITS}
VIDEO_LAYOUT = (
    "naming=glscl: <video_dir>/<list entry>.mp4 (e.g. videos/10015567@N08_3655084291_d8b58466fa.mov.mp4); "
    "naming=clip4clip: <video_dir>/<list entry> (default video_dir: videos/)"
)
VIDEO_DIRS = ("videos",)


def read_descriptions(path: Path) -> dict[str, list[str]]:
    """video -> its descriptions in json order, from a LocalizingMoments `<split>_data.json`."""
    data = read_json(path)
    expect(isinstance(data, list), path, "expected a JSON list of {description, video, times, ...} objects.")
    out: dict[str, list[str]] = {}
    for number, item in enumerate(data):
        expect(isinstance(item, dict) and {"video", "description"} <= item.keys(), path,
               f"entry {str(item)[:80]} lacks `video` or `description`.")
        video = text_field(item["video"], path, f"entry {number}", "video")
        out.setdefault(video, []).append(text_field(item["description"], path, f"entry {number}", "description"))
    return out


def video_file(entry: str, naming: str) -> str:
    """The file name of list entry `entry` under a naming convention."""
    return f"{entry}.mp4" if naming == "glscl" else entry


@register_loader("didemo", splits=SPLITS, test_split="test")
def load_didemo(root: Path, split: str, naming: str = "glscl", video_dir: str | Path | None = None) -> Split:
    """DiDeMo split loader (registered as `didemo`)."""
    if naming not in NAMINGS:
        raise ValueError(f"didemo: naming must be one of {', '.join(NAMINGS)}, not `{naming}`.")
    list_path = find_annotation(root, (f"{split}_list.txt",), "didemo")
    data_path = find_annotation(root, (f"{split}_data.json",), "didemo",
                                hint="It is LocalizingMoments' data/<split>_data.json.")
    descriptions = read_descriptions(data_path)
    listed = list(dict.fromkeys(read_lines(list_path)))
    entries = [e for e in listed if e in descriptions]
    folder = pick_dir(root, video_dir, VIDEO_DIRS)
    videos = [VideoRecord(e, str(folder / video_file(e, naming)), START, END) for e in entries]
    texts = [TextRecord(e, " ".join(descriptions[e]), e) for e in entries]
    meta = {
        "annotations": [str(list_path), str(data_path)],
        "naming": naming,
        "n_descriptions": sum(len(descriptions[e]) for e in entries),
        "dropped_without_descriptions": len(listed) - len(entries),
    }
    return Split("didemo", split, videos, texts, meta)
