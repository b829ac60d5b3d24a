"""MSVD: train/val/test lists with every caption of every video (multi-caption; text id `<video>#<k>`).

Captions come from `captions_msvd.json` (X-Pool; preferred) or CLIP4Clip's `raw-captions.pkl`. The pickle is read
with an unpickler that can build nothing but dicts, lists and strings (it resolves no class or function at all),
so a hostile file cannot run code; its structure is then checked. Videos are matched by file stem, any extension.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from benchmark.data import register_loader
from benchmark.data.files import AnnotationError, expect, find_annotation, index_videos, pick_dir, read_json, read_lines
from benchmark.data.split import Split, TextRecord, VideoRecord

SPLITS = ("train", "val", "test")
CAPTIONS_JSON = "captions_msvd.json"
CAPTIONS_PKL = "raw-captions.pkl"
LISTS = {split: f"{split}_list.txt" for split in SPLITS}
EXPECTED_FILES: dict[str, tuple[str, ...]] = {split: (name, f"{CAPTIONS_JSON} or {CAPTIONS_PKL}")
                                              for split, name in LISTS.items()}
VIDEO_LAYOUT = (
    "<video_dir>/<video_id>.<any extension>, e.g. videos/-4wsuPCjDBc_5_15.avi (default video_dir: videos/ or "
    "YouTubeClips/)"
)
VIDEO_DIRS = ("videos", "YouTubeClips")
EXTRA_DIRS = ("msvd_data",)


# Bounds of a captions pickle, about 15x the real file (4.1 MB; 0.65 M objects, 2.3 M characters of tokens). Objects
# and characters are counted as a tree: a list the pickle reuses through its memo counts once per reference.
MAX_PICKLE_BYTES = 64 * 2**20
MAX_OBJECTS = 10_000_000
MAX_CHARACTERS = 32_000_000


class _DataOnlyUnpickler(pickle.Unpickler):
    """Refuses every global lookup: only pickle's built-in containers (dict, list, str, ...) can be rebuilt."""

    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"refusing to load `{module}.{name}`: the captions pickle may hold only data")


_TEXT = {str, bytes, bytearray}


def _children(item: object) -> list:
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    return list(item) if isinstance(item, (list, tuple, set, frozenset)) else []


def _check_bounds(data: object, path: Path) -> None:
    """Refuse `data` when, expanded as a tree, it holds more than MAX_OBJECTS objects or MAX_CHARACTERS characters,
    or contains itself. Sizes are summed once per distinct container (post-order, memoised by identity), so a small
    pickle that reuses one list a billion times is measured in time proportional to the file."""
    sizes: dict[int, tuple[int, int]] = {}  # id(container) -> (objects, characters) of its expanded tree
    open_: set[int] = set()
    stack: list[tuple[object, bool]] = [(data, False)]
    while stack:
        item, done = stack.pop()
        key = id(item)
        if key in sizes:
            continue
        children = _children(item)
        nested = [] if set(map(type, children)) <= _TEXT else [c for c in children if type(c) not in _TEXT]
        if not done and nested:
            if key in open_:
                raise AnnotationError(f"`{path}`: contains itself (a cyclic structure); it is not MSVD's captions.")
            open_.add(key)
            stack.append((item, True))
            stack.extend((child, False) for child in nested)
            continue
        open_.discard(key)
        texts = [c for c in children if type(c) in _TEXT] if nested else children
        objects = 1 + len(texts) + sum(sizes[id(child)][0] for child in nested)
        characters = sum(map(len, texts)) + sum(sizes[id(child)][1] for child in nested)
        if objects > MAX_OBJECTS or characters > MAX_CHARACTERS:
            raise AnnotationError(f"`{path}`: holds more than {MAX_OBJECTS:,} objects or {MAX_CHARACTERS:,} characters "
                                  "when expanded (a list reused through the pickle memo counts once per reference); "
                                  "refusing it as a memory bomb, not MSVD's captions.")  # fmt: skip
        sizes[key] = (objects, characters)


def read_captions_pkl(path: Path) -> dict[str, list[str]]:
    """Captions of CLIP4Clip's raw-captions.pkl (`dict[video] -> list[list[token]]`), tokens joined by spaces."""
    size = path.stat().st_size
    expect(size <= MAX_PICKLE_BYTES, path, f"is {size:,} bytes; MSVD's captions pickle has about 4 MB (limit "
           f"{MAX_PICKLE_BYTES:,}).")
    try:
        data = _DataOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as err:  # a hostile or damaged pickle raises many types; each becomes one message naming the file
        raise AnnotationError(f"`{path}` cannot be read as CLIP4Clip's raw-captions.pkl ({type(err).__name__}: "
                              f"{err}). Use captions_msvd.json, or re-download the pickle.") from err
    _check_bounds(data, path)
    expect(isinstance(data, dict), path, "expected a dict video_id -> list of token lists.")
    out: dict[str, list[str]] = {}
    for key, caps in data.items():
        ok = isinstance(key, str) and isinstance(caps, list)
        ok = ok and all(isinstance(c, list) and all(isinstance(t, str) for t in c) for c in caps)
        expect(ok, path, f"entry {str(key)[:80]!r} is not a list of token lists.")
        out[key] = [" ".join(c) for c in caps]
    return out


def read_captions_json(path: Path) -> dict[str, list[str]]:
    """Captions of X-Pool's captions_msvd.json (`dict[video] -> list[str]`)."""
    data = read_json(path)
    expect(isinstance(data, dict), path, "expected a JSON object video_id -> list of captions.")
    for key, caps in data.items():
        expect(isinstance(caps, list) and all(isinstance(c, str) for c in caps), path, f"entry `{key}` is not a "
               "list of strings.")
    return data


def read_captions(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """The captions file under `root` (json preferred over pkl) and its captions."""
    try:
        path = find_annotation(root, (CAPTIONS_JSON,), "msvd", EXTRA_DIRS)
        return path, read_captions_json(path)
    except FileNotFoundError:
        pass
    try:
        path = find_annotation(root, (CAPTIONS_PKL,), "msvd", EXTRA_DIRS)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"msvd: neither `{CAPTIONS_JSON}` nor `{CAPTIONS_PKL}` found. {err}") from None
    return path, read_captions_pkl(path)


@register_loader("msvd", splits=SPLITS, test_split="test")
def load_msvd(root: Path, split: str, video_dir: str | Path | None = None) -> Split:
    """MSVD split loader (registered as `msvd`): every caption of each listed video, video by video."""
    list_path = find_annotation(root, (LISTS[split],), "msvd", EXTRA_DIRS)
    captions_path, captions = read_captions(root)
    ids = read_lines(list_path)
    missing = [v for v in ids if v not in captions]
    expect(not missing, captions_path, f"no captions for {len(missing)} videos of {list_path.name}, e.g. "
           f"`{missing[0] if missing else ''}`; is it the MSVD captions file?")
    folder = pick_dir(root, video_dir, VIDEO_DIRS)
    found = index_videos(folder)
    videos = [VideoRecord(v, str(found.get(v, folder / f"{v}.avi"))) for v in ids]
    texts = [TextRecord(f"{v}#{k}", cap, v) for v in ids for k, cap in enumerate(captions[v])]
    return Split("msvd", split, videos, texts, {"annotations": [str(list_path), str(captions_path)]})
