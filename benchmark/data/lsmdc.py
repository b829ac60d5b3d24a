"""LSMDC16: tab-separated 6-column csvs (clip id, aligned and extracted times, sentence), one sentence per row.

Text ids are `<clip id>#<k>` (k-th sentence of that clip in file order); videos are the distinct clips in order of
first appearance, found by stem anywhere under the video folder (default `<movie>/<clip id>.avi`). The three clips
GLSCL/DiCoSA drop are excluded by default (`exclude_glscl=False` keeps them).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.data import register_loader
from benchmark.data.files import expect, find_annotation, index_videos, pick_dir
from benchmark.data.split import Split, TextRecord, VideoRecord

SPLITS = ("train", "val", "test")
CSV_FILES = {
    "train": "LSMDC16_annos_training.csv",
    "val": "LSMDC16_annos_val.csv",
    "test": "LSMDC16_challenge_1000_publictect.csv",
}
EXPECTED_FILES: dict[str, tuple[str, ...]] = {split: (name,) for split, name in CSV_FILES.items()}
VIDEO_LAYOUT = (
    "<video_dir>/**/<clip id>.<any extension>, e.g. avi/1010_TITANIC/1010_TITANIC_00.41.32.072-00.41.40.196.avi "
    "(default video_dir: videos/ or avi/)"
)
VIDEO_DIRS = ("videos", "avi")
GLSCL_EXCLUDED = frozenset({
    "0017_Pianist_00.23.28.872-00.23.34.843",
    "0017_Pianist_00.30.36.767-00.30.38.009",
    "3064_SPARKLE_2012_01.41.07.000-01.41.11.793",
})


def read_csv(path: Path) -> list[tuple[str, str]]:
    """(clip id, sentence) of each row of an LSMDC16 csv; any row without exactly 6 tab-separated fields is an error."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        expect(len(fields) == 6, path, f"line {number} has {len(fields)} tab-separated fields, expected 6 "
               "(clip id, start/end aligned, start/end extracted, sentence).")
        rows.append((fields[0].strip(), fields[5].strip()))
    return rows


def default_path(folder: Path, clip: str) -> Path:
    """Where an LSMDC clip lives in the MPII download: `<movie>/<clip>.avi`."""
    return folder / clip.split(".")[0][:-3] / f"{clip}.avi"


@register_loader("lsmdc", splits=SPLITS, test_split="test")
def load_lsmdc(root: Path, split: str, exclude_glscl: bool = True, video_dir: str | Path | None = None) -> Split:
    """LSMDC split loader (registered as `lsmdc`)."""
    path = find_annotation(root, (CSV_FILES[split],), "lsmdc", hint="The LSMDC16 csvs are distributed by MPII.")
    rows = [(c, s) for c, s in read_csv(path) if not (exclude_glscl and c in GLSCL_EXCLUDED)]
    counts: dict[str, int] = {}
    texts = []
    for clip, sentence in rows:
        k = counts.get(clip, 0)
        counts[clip] = k + 1
        texts.append(TextRecord(f"{clip}#{k}", sentence, clip))
    folder = pick_dir(root, video_dir, VIDEO_DIRS)
    found = index_videos(folder)
    videos = [VideoRecord(c, str(found.get(c, default_path(folder, c)))) for c in counts]
    return Split("lsmdc", split, videos, texts, {"annotations": [str(path)], "exclude_glscl": exclude_glscl})
