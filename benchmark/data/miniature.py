"""A miniature copy of a real benchmark in its real file layout: annotation files in the official formats with a few
dozen items, and videos of varied codecs, containers, frame rates, sizes (up to 1280x720) and lengths (ActivityNet's
are minutes long), one of them unreadable. `tvbench reproduce --rehearse` runs the real pipeline on it.

Everything is drawn from a seed, so the same seed writes the same annotation files and the same video specs. The
unreadable file (truncated bytes under a video's name in the test split) is there for the input check to catch;
`repair` re-encodes it afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmark.io import atomic_path, write_json, write_text

# (container format, codec, pixel format) per file extension; decord reads every one of them.
CODECS: dict[str, tuple[tuple[str, str, str], ...]] = {
    ".mp4": (("mp4", "libx264", "yuv420p"), ("mp4", "hevc", "yuv420p"), ("mp4", "mpeg4", "yuv420p")),
    ".avi": (("avi", "mpeg4", "yuv420p"), ("avi", "mjpeg", "yuvj420p")),
    ".mkv": (("matroska", "libx264", "yuv420p"), ("matroska", "hevc", "yuv420p")),
    ".webm": (("webm", "libvpx-vp9", "yuv420p"),),
}
SIZES = ((320, 240), (480, 360), (640, 360), (426, 240), (360, 640), (1280, 720))
FRAME_RATES = (Fraction(15), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30))
FAST = {"libx264": {"preset": "ultrafast"}, "hevc": {"preset": "ultrafast", "x265-params": "log-level=none"},
        "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"}}
SUBJECTS = ("a man", "a woman", "two kids", "a dog", "a chef", "a band", "a cyclist", "an old car", "a group of people")
ACTIONS = ("is cooking pasta in a kitchen", "plays guitar on a stage", "runs along a beach", "explains a card trick",
           "rides down a mountain trail", "dances in the rain", "repairs an engine", "swims in a lake",
           "paints a wall blue")  # fmt: skip


@dataclass(frozen=True)
class VideoSpec:
    """One video file to write: where, in which container and codec, at what size, rate and length."""

    path: Path
    container: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: Fraction
    seconds: float

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * float(self.fps)))


@dataclass
class Miniature:
    """A fabricated benchmark: its data root, the videos written and the one left unreadable."""

    benchmark: str
    root: Path
    videos: list[VideoSpec] = field(default_factory=list)
    broken: VideoSpec | None = None

    def summary(self) -> dict:
        """Counts for the rehearsal report: codecs, sizes, frame rates, lengths."""
        return {"benchmark": self.benchmark, "root": str(self.root), "videos": len(self.videos),
                "codecs": sorted({f"{v.container}/{v.codec}" for v in self.videos}),
                "sizes": sorted({f"{v.width}x{v.height}" for v in self.videos}),
                "frame_rates": sorted({f"{float(v.fps):.3f}" for v in self.videos}),
                "seconds": [min(v.seconds for v in self.videos), max(v.seconds for v in self.videos)],
                "unreadable": str(self.broken.path) if self.broken else None}


def _frame(index: int, width: int, height: int, seed: int) -> np.ndarray:
    """A moving colour gradient with a bouncing square: cheap at 720p, different in every frame."""
    y = np.arange(height, dtype=np.int32)[:, None]
    x = np.arange(width, dtype=np.int32)[None, :]
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = (x * 255 // max(1, width - 1) + index * 3 + seed * 40) % 256
    frame[..., 1] = (y * 255 // max(1, height - 1) + index * 2) % 256
    frame[..., 2] = (seed * 67 + index) % 256
    side = max(8, min(width, height) // 5)
    cx = int((width - side) * (0.5 + 0.5 * np.sin(index / 7 + seed)))
    cy = int((height - side) * (0.5 + 0.5 * np.cos(index / 11 + seed)))
    frame[cy : cy + side, cx : cx + side] = (255 - 30 * (seed % 5), 40 * (seed % 6), 200)
    return frame


def encode(spec: VideoSpec, seed: int) -> None:
    """Write `spec` with PyAV (atomically)."""
    import av

    with atomic_path(spec.path) as tmp:
        with av.open(str(tmp), mode="w", format=spec.container) as container:
            stream = container.add_stream(spec.codec, rate=spec.fps)
            stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, spec.pix_fmt
            stream.options = {**FAST.get(spec.codec, {}), "threads": "1"}
            for index in range(spec.frames):
                image = av.VideoFrame.from_ndarray(_frame(index, spec.width, spec.height, seed), format="rgb24")
                container.mux(stream.encode(image))
            container.mux(stream.encode(None))


def _spec(path: Path, rng: np.random.Generator, seconds: tuple[float, float], *, max_side: int = 640,
          rates: tuple[Fraction, ...] = FRAME_RATES, hd: bool = False) -> VideoSpec:
    """A random video spec (`hd`: 1280x720). HD clips are capped at 6 s unless `seconds` starts above that, and never
    use HEVC (its encoder takes ~50-100 ms per 720p frame), which keeps a whole fabrication to seconds."""
    sizes = [s for s in SIZES if max(s) <= max_side]
    width, height = (1280, 720) if hd else sizes[int(rng.integers(len(sizes)))]
    choices = [c for c in CODECS[path.suffix] if not (hd and c[1] == "hevc")]
    container, codec, pix_fmt = choices[int(rng.integers(len(choices)))]
    rate = rates[int(rng.integers(len(rates)))]
    length = float(rng.uniform(*seconds))
    length = min(length, max(6.0, seconds[0])) if hd else length
    return VideoSpec(path, container, codec, pix_fmt, width, height, rate, round(length, 2))


def _caption(rng: np.random.Generator) -> str:
    return f"{SUBJECTS[int(rng.integers(len(SUBJECTS)))]} {ACTIONS[int(rng.integers(len(ACTIONS)))]}"


def _ids(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{start + i}" for i in range(n)]


# ---- one writer per benchmark: annotation files in the official format + the videos they name ----------------

def _msrvtt(root: Path, rng: np.random.Generator) -> list[VideoSpec]:
    train, test = _ids("video", 10), _ids("video", 6, start=9000)
    write_text(root / "MSRVTT_train.9k.csv", "video_id\n" + "".join(f"{v}\n" for v in train))
    rows = [f"ret{i},msr{v[5:]},{v},{_caption(rng)}\n" for i, v in enumerate(test)]
    write_text(root / "MSRVTT_JSFUSION_test.csv", "key,vid_key,video_id,sentence\n" + "".join(rows))
    sentences = [{"caption": _caption(rng), "video_id": v, "sen_id": 2 * i + k}
                 for i, v in enumerate(train + test) for k in range(2)]
    write_json(root / "MSRVTT_data.json", {"info": {"contributor": "tvbench rehearsal"},
                                           "videos": [{"video_id": v, "id": i} for i, v in enumerate(train + test)],
                                           "sentences": sentences})
    return [_spec(root / "videos" / f"{v}.mp4", rng, (8.0, 24.0), hd=i == 0) for i, v in enumerate(train + test)]


def _msvd(root: Path, rng: np.random.Generator) -> list[VideoSpec]:
    ids = [f"{chr(97 + i)}{i}Yt-x{i}_{5 * i}_{5 * i + 7}" for i in range(16)]
    lists = {"train": ids[:8], "val": ids[8:11], "test": ids[11:]}
    for split, listed in lists.items():
        write_text(root / f"{split}_list.txt", "".join(f"{v}\n" for v in listed))
    write_json(root / "captions_msvd.json", {v: [_caption(rng) for _ in range(2 + i % 3)] for i, v in enumerate(ids)})
    extensions = (".avi", ".mp4", ".mkv", ".webm")
    return [_spec(root / "videos" / f"{v}{extensions[i % 4]}", rng, (3.0, 15.0), hd=i == 0) for i, v in enumerate(ids)]


def _didemo(root: Path, rng: np.random.Generator) -> list[VideoSpec]:
    entries = [f"{10000000 + 97 * i}@N0{i % 9}_{3600000000 + i}_{i:08x}ab.{('mov', 'm4v', 'mp4')[i % 3]}"
               for i in range(16)]
    splits = {"train": entries[:8], "val": entries[8:11], "test": entries[11:]}
    for split, listed in splits.items():
        write_text(root / f"{split}_list.txt", "".join(f"{e}\n" for e in listed))
        data = [{"num_segments": 6, "description": _caption(rng), "dl_link": "https://example.invalid/video",
                 "times": [[k, k]] * 4, "video": e, "annotation_id": 10 * i + k}
                for i, e in enumerate(listed) for k in range(2 + i % 2)]
        write_json(root / f"{split}_data.json", data)
    rates = (Fraction(10), Fraction(15), Fraction(24))
    return [_spec(root / "videos" / f"{e}.mp4", rng, (25.0, 36.0), rates=rates, hd=i == 0)
            for i, e in enumerate(entries)]


def _lsmdc(root: Path, rng: np.random.Generator) -> list[VideoSpec]:
    movies = ("0001_American_Beauty", "1010_TITANIC", "3001_21_JUMP_STREET")
    clips = []
    for i in range(16):
        start = 60 + 13 * i
        stamp = f"00.{start // 60:02d}.{start % 60:02d}.{(37 * i) % 1000:03d}"
        end = f"00.{(start + 4) // 60:02d}.{(start + 4) % 60:02d}.{(91 * i) % 1000:03d}"
        clips.append(f"{movies[i % 3]}_{stamp}-{end}")
    files = {"LSMDC16_annos_training.csv": clips[:8], "LSMDC16_annos_val.csv": clips[8:11],
             "LSMDC16_challenge_1000_publictect.csv": clips[11:]}
    for name, listed in files.items():
        rows = [f"{c}\t{c.split('_')[-1].split('-')[0]}\t{c.split('-')[-1]}\t{c.split('_')[-1].split('-')[0]}\t"
                f"{c.split('-')[-1]}\t{_caption(rng)}\n"
                for i, c in enumerate(listed) for _ in range(1 + (i % 2 if name.endswith("training.csv") else 0))]
        write_text(root / name, "".join(rows))
    return [_spec(root / "avi" / c.split(".")[0][:-3] / f"{c}.avi", rng, (2.0, 8.0), hd=i == 0)
            for i, c in enumerate(clips)]


def _activitynet(root: Path, rng: np.random.Generator) -> list[VideoSpec]:
    keys = [f"v_{''.join(chr(65 + (7 * i + k) % 26) for k in range(4))}-{i:02d}xQ_z" for i in range(10)]
    splits = {"train": keys[:6], "val_1": keys[6:]}
    write_json(root / "train_ids.json", splits["train"])
    write_json(root / "val_ids.json", [*splits["val_1"], "v_listed-without-captions"])
    specs = []
    for split, listed in splits.items():
        captions = {}
        for i, key in enumerate(listed):  # minutes long at a few frames per second (the sampler takes 1 fps)
            spec = _spec(root / "videos" / f"{key}{('.mp4', '.mkv', '.webm')[i % 3]}", rng, (60.0, 180.0),
                         max_side=480, rates=(Fraction(5), Fraction(6)), hd=split == "train" and i == 0)
            specs.append(spec)
            cuts = sorted(rng.uniform(0, spec.seconds, size=2).round(2).tolist())
            captions[key] = {"duration": spec.seconds, "timestamps": [[0.0, cuts[0]], [cuts[0], cuts[1]],
                                                                      [cuts[1], spec.seconds]],
                             "sentences": [_caption(rng).capitalize() + "." for _ in range(3)]}
        write_json(root / ("train.json" if split == "train" else "val_1.json"), captions)
    return specs


WRITERS: dict[str, Callable[[Path, np.random.Generator], list[VideoSpec]]] = {
    "msrvtt": _msrvtt, "msvd": _msvd, "didemo": _didemo, "lsmdc": _lsmdc, "activitynet": _activitynet,
}


def fabricate(benchmark: str, root: str | Path, seed: int = 0, broken_index: int = -1,
              progress: Callable[[str], None] | None = None) -> Miniature:
    """Write the miniature `benchmark` under `root`: annotation files, then every video; the video at `broken_index`
    (in writing order; the default, the last one, is in the test split) is left as truncated, unreadable bytes."""
    if benchmark not in WRITERS:
        raise KeyError(f"No miniature for benchmark `{benchmark}`; available: {', '.join(sorted(WRITERS))}.")
    root = Path(root)
    rng = np.random.default_rng(seed)
    specs = WRITERS[benchmark](root, rng)
    broken = specs[broken_index]
    for index, spec in enumerate(specs):
        if spec is broken:
            with atomic_path(spec.path) as tmp:  # a container header and nothing decodable after it
                tmp.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(rng.integers(0, 256, 2048, dtype=np.uint8)))
            continue
        encode(spec, seed * 1000 + index)
        if progress:
            progress(f"{index + 1}/{len(specs)} {spec.path.name} {spec.codec} {spec.width}x{spec.height} "
                     f"{float(spec.fps):.2f} fps {spec.seconds:.0f} s")
    write_json(root / "miniature.json", {"benchmark": benchmark, "seed": seed,
                                         "videos": [{**spec.__dict__, "path": str(spec.path.relative_to(root)),
                                                     "fps": str(spec.fps)} for spec in specs],
                                         "unreadable": str(broken.path.relative_to(root))})
    return Miniature(benchmark, root, specs, broken)


def repair(miniature: Miniature, seed: int = 0) -> None:
    """Re-encode the unreadable video as a readable one."""
    if miniature.broken is not None:
        encode(miniature.broken, seed)
        miniature.broken = None


def read_manifest(root: str | Path) -> dict:
    """The `miniature.json` a fabrication wrote."""
    return json.loads((Path(root) / "miniature.json").read_text(encoding="utf-8"))
