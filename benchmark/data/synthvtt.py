"""SynthVTT: the text-video retrieval benchmark tvbench generates itself, in exactly MSR-VTT's file layout.

`generate(out_dir, ...)` writes H.264 MP4 clips (PyAV) to `videos/<video_id>.mp4` and `MSRVTT_data.json`,
`MSRVTT_train.9k.csv` (train + val ids), `MSRVTT_JSFUSION_test.csv` (one complete caption per test clip), plus
`synthvtt_val.csv` (held-out val ids), `synthvtt_scenes.json` (every clip's attributes, kind and twin, for per-kind
analysis), `pretrain/images.npy` + `pretrain/captions.json` (single frames with static captions for the tiny CLIP
stand-in) and the manifest `synthvtt.json`. The `synthvtt` loader is a thin alias over the `msrvtt` loader.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import io as atomic
from benchmark.data import register_loader
from benchmark.data.files import AnnotationError, find_annotation, read_json
from benchmark.data.msrvtt import CAPTIONS_FILE, TEST_CSV, TRAIN_CSV, msrvtt_split, read_video_list
from benchmark.data.split import Split, TextRecord
from benchmark.data.synth_scene import Scene, SceneOptions, SceneSampler, render, sample_scene
from benchmark.data.synth_text import image_caption, video_captions

GENERATOR_VERSION = "1"
MANIFEST = "synthvtt.json"
VAL_CSV = "synthvtt_val.csv"
SCENES_FILE = "synthvtt_scenes.json"
TRAIN_LIST = TRAIN_CSV["train-9k"]
IMAGES_FILE = "pretrain/images.npy"
IMAGE_CAPTIONS_FILE = "pretrain/captions.json"
HASHED_FILES = (CAPTIONS_FILE, TRAIN_LIST, TEST_CSV, VAL_CSV, SCENES_FILE, IMAGES_FILE, IMAGE_CAPTIONS_FILE)
SPLIT_NAMES = {"train": "train", "val": "validate", "test": "test"}  # our split -> MSR-VTT's `split` field
KIND_CATEGORY = {"single": 0, "two-phase": 1, "two-object": 2}  # MSR-VTT `category` field
GENERATE_HINT = "Generate it with `tvbench data synth --out DIR`."


@dataclass(frozen=True)
class SynthOptions:
    """Everything that determines a SynthVTT dataset (recorded in its manifest)."""

    seed: int = 0
    n_train: int = 1500
    n_val: int = 200
    n_test: int = 300
    size: int = 64
    captions_per_video: int = 10
    n_images: int = 2000
    fps: int = 1  # one frame per second: a 1-fps sampler (the MSR-VTT protocol) sees every frame
    crf: int = 20
    image_synonyms: bool = True  # False: pretraining captions phrase each attribute one way (a vocabulary shift)
    scene: SceneOptions = SceneOptions()

    def __post_init__(self) -> None:
        checks = [
            (self.n_train >= 1 and self.n_val >= 1 and self.n_test >= 1, "--train, --val and --test must be >= 1"),
            (self.size % 2 == 0 and 32 <= self.size <= 512, f"--size must be even and in 32..512, got {self.size}"),
            (self.captions_per_video >= 1, f"--captions must be >= 1, got {self.captions_per_video}"),
            (self.n_images >= 0, f"--images must be >= 0, got {self.n_images}"),
            (1 <= self.fps <= 60, f"fps must be in 1..60, got {self.fps}"),
            (0 <= self.crf <= 51, f"crf must be in 0..51, got {self.crf}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SynthVTT option error: {message}.")

    def to_json(self) -> dict[str, Any]:
        """JSON form (tuples as lists), as stored in the manifest."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass(frozen=True)
class GenerateResult:
    """What `generate` did: the dataset folder, whether an identical one was already there, counts, size, time."""

    root: Path
    skipped: bool
    counts: dict[str, Any]
    bytes_on_disk: int
    seconds: float


# ---------------------------------------------------------------------------------------------------------------
# Generation


def rgb_to_nv12(frame: np.ndarray) -> np.ndarray:
    """BT.601 limited-range NV12 of an RGB frame [H, W, 3]: the Y plane over interleaved 4:2:0 Cb/Cr, [H * 3 / 2, W].

    Converted here in numpy (exact, the same everywhere) rather than by swscale, and handed to x264 in its native
    layout, so nothing between the frames and the encoder can vary.
    """
    rgb = frame.astype(np.float64)
    y = 16 + rgb @ np.array([65.481, 128.553, 24.966]) / 255
    cb = 128 + rgb @ np.array([-37.797, -74.203, 112.0]) / 255
    cr = 128 + rgb @ np.array([112.0, -93.786, -18.214]) / 255
    h, w = y.shape
    cb, cr = (c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) for c in (cb, cr))
    uv = np.stack([cb, cr], axis=-1).reshape(h // 2, w)
    return np.clip(np.rint(np.concatenate([y, uv])), 0, 255).astype(np.uint8)


def encode_mp4(frames: np.ndarray, fps: int, crf: int) -> bytes:
    """H.264 (4:2:0) MP4 bytes of uint8 RGB frames [T, H, W, 3]; the same frames always give the same bytes.

    Single-threaded and without B-frames: on frames this small, x264's B-frame lookahead made runs in one process
    differ (measured: 11 of 300 clips changed between two encodes); with bframes=0 they are identical (+1% size).
    """
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "nv12"
        stream.options = {"crf": str(crf), "preset": "medium", "threads": "1", "x264-params": "bframes=0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb_to_nv12(frame), format="nv12")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _clip_bytes(job: tuple[Scene, int, int, int]) -> bytes:
    scene, size, fps, crf = job
    return encode_mp4(render(scene, size), fps, crf)


def sample_scenes(opts: SynthOptions) -> dict[str, list[Scene]]:
    """The scenes of each split (train, val, test); descriptions are unique across the whole dataset."""
    sampler = SceneSampler(np.random.default_rng([opts.seed, 0]), opts.scene)
    counts = {"train": opts.n_train, "val": opts.n_val, "test": opts.n_test}
    return {split: sampler.sample(n) for split, n in counts.items()}


def _csv(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def annotation_texts(opts: SynthOptions, scenes: dict[str, list[Scene]]) -> dict[str, str]:
    """File name -> content of every annotation file (MSR-VTT layout + SynthVTT extras), all deterministic."""
    rng = np.random.default_rng([opts.seed, 1])
    videos, sentences, records, val_ids, test_rows, train_ids = [], [], {}, [], [], []
    index = 0
    for split, split_scenes in scenes.items():
        for scene in split_scenes:
            vid = f"video{index}"
            captions = video_captions(rng, scene, opts.captions_per_video)
            duration = round(scene.n_frames / opts.fps, 3)
            videos.append({"category": KIND_CATEGORY[scene.kind], "url": f"synthvtt://seed{opts.seed}/{vid}",
                           "video_id": vid, "start time": 0.0, "end time": duration,
                           "split": SPLIT_NAMES[split], "id": index})  # fmt: skip
            if split == "test":
                test_rows.append([f"ret{len(test_rows)}", f"msr{index}", vid, captions[0]])
            else:
                first_id = len(sentences)
                sentences += [{"caption": c, "video_id": vid, "sen_id": first_id + k} for k, c in enumerate(captions)]
                train_ids.append(vid)
                val_ids += [vid] if split == "val" else []
            twin_of = f"video{index - 1}" if scene.twin else None
            records[vid] = {"split": split, "kind": scene.kind, "twin": scene.twin, "twin_of": twin_of,
                            "scene": scene.to_json()}  # fmt: skip
            index += 1
    info = {"contributor": "tvbench SynthVTT generator", "description": "SynthVTT: synthetic text-video retrieval",
            "version": GENERATOR_VERSION, "year": "2026", "seed": opts.seed}  # fmt: skip
    data = {"info": info, "videos": videos, "sentences": sentences}
    return {
        CAPTIONS_FILE: json.dumps(data, ensure_ascii=False),
        TRAIN_LIST: _csv(["video_id"], [[v] for v in train_ids]),
        TEST_CSV: _csv(["key", "vid_key", "video_id", "sentence"], test_rows),
        VAL_CSV: _csv(["video_id"], [[v] for v in val_ids]),
        SCENES_FILE: json.dumps({"generator_version": GENERATOR_VERSION, "videos": records}, indent=1) + "\n",
    }


def image_caption_set(opts: SynthOptions) -> tuple[np.ndarray, list[str]]:
    """The pretraining set: `n_images` single frames of still scenes, uint8 [N, size, size, 3], with captions."""
    rng = np.random.default_rng([opts.seed, 2])
    images = np.empty((opts.n_images, opts.size, opts.size, 3), dtype=np.uint8)
    captions = []
    for i in range(opts.n_images):
        scene = sample_scene(rng, opts.scene, static=True)
        images[i] = render(scene, opts.size)[0]
        captions.append(image_caption(rng, scene, opts.image_synonyms))
    return images, captions


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _counts(scenes: dict[str, list[Scene]], opts: SynthOptions) -> dict[str, Any]:
    every = [s for split in scenes.values() for s in split]
    return {
        **{split: len(s) for split, s in scenes.items()},
        "videos": len(every),
        "train_captions": (opts.n_train + opts.n_val) * opts.captions_per_video,
        "test_queries": opts.n_test,
        "images": opts.n_images,
        "kinds": {split: dict(sorted(Counter(s.kind for s in sc).items())) for split, sc in scenes.items()},
        "twins": {split: dict(sorted(Counter(s.twin for s in sc if s.twin).items())) for split, sc in scenes.items()},
    }


def _clips(jobs: list[tuple[Scene, int, int, int]], workers: int) -> Iterator[bytes]:
    if workers <= 1:
        yield from map(_clip_bytes, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_clip_bytes, jobs, chunksize=16)


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a SynthVTT folder, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(root: Path, opts: SynthOptions) -> bool:
    """True when `root` holds a finished dataset of these options: manifest, file hashes and every video."""
    manifest = read_manifest(root)
    expected = (GENERATOR_VERSION, opts.to_json())
    if not manifest or (manifest.get("generator_version"), manifest.get("options")) != expected:
        return False
    for name, digest in manifest.get("files", {}).items():
        if not (root / name).is_file() or sha256_file(root / name) != digest:
            return False
    n_videos = opts.n_train + opts.n_val + opts.n_test
    return all((root / "videos" / f"video{i}.mp4").is_file() for i in range(n_videos))


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def generate(
    out_dir: str | Path,
    seed: int = 0,
    n_train: int = 1500,
    n_val: int = 200,
    n_test: int = 300,
    frames: int | tuple[int, int] = (8, 16),
    size: int = 64,
    captions_per_video: int = 10,
    n_images: int = 2000,
    workers: int = 2,
    progress: bool = True,
    **knobs: Any,
) -> GenerateResult:
    """Write SynthVTT to `out_dir` (atomically: built in a temporary sibling, then renamed) and return a summary.

    `frames` is a clip length or an inclusive (min, max) range; `knobs` are SceneOptions difficulty fields
    (two_object, two_phase, twins, n_colours, n_shapes, noise, distractors) or SynthOptions fields (fps, crf,
    image_synonyms).
    An existing complete dataset with the same options is kept as is (skipped=True).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    out_dir = Path(out_dir)
    atomic.remove_stale_temporaries(out_dir.parent, out_dir.name)  # folders of a generation killed earlier
    scene_fields = {f.name for f in dataclasses.fields(SceneOptions)}
    synth_fields = {"fps", "crf", "image_synonyms"}
    unknown = sorted(set(knobs) - scene_fields - synth_fields)
    if unknown:
        raise TypeError(f"generate() got unknown option(s) {unknown}; valid: {sorted(scene_fields | synth_fields)}.")
    frame_range = (frames, frames) if isinstance(frames, int) else tuple(frames)
    scene_opts = SceneOptions(frames=frame_range, **{k: v for k, v in knobs.items() if k in scene_fields})
    opts = SynthOptions(seed, n_train, n_val, n_test, size, captions_per_video, n_images,
                        scene=scene_opts, **{k: v for k, v in knobs.items() if k in synth_fields})  # fmt: skip
    if is_complete(out_dir, opts):
        counts = read_manifest(out_dir)["counts"]  # type: ignore[index]
        return GenerateResult(out_dir, True, counts, _disk_bytes(out_dir), time.perf_counter() - started)
    if out_dir.exists() and any(out_dir.iterdir()) and read_manifest(out_dir) is None:
        raise FileExistsError(
            f"`{out_dir}` is not empty and is not a SynthVTT folder (no {MANIFEST}); generating there would replace "
            "its content. Choose an empty or new folder for --out."
        )

    scenes = sample_scenes(opts)
    texts = annotation_texts(opts, scenes)
    ordered = [s for split in scenes.values() for s in split]
    jobs = [(s, opts.size, opts.fps, opts.crf) for s in ordered]
    with atomic.atomic_dir(out_dir) as tmp:
        bar = tqdm(total=len(jobs) + opts.n_images, desc="SynthVTT", unit="item", disable=not progress)
        for i, clip in enumerate(_clips(jobs, workers)):
            atomic.write_bytes(tmp / "videos" / f"video{i}.mp4", clip)
            bar.update()
        for name, text in texts.items():
            atomic.write_text(tmp / name, text)
        images, image_captions = image_caption_set(opts)
        atomic.write_npy(tmp / IMAGES_FILE, images)
        atomic.write_json(tmp / IMAGE_CAPTIONS_FILE, image_captions)
        bar.update(opts.n_images)
        bar.close()
        counts = _counts(scenes, opts)
        manifest = {
            "name": "SynthVTT",
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "options": opts.to_json(),
            "counts": counts,
            "files": {name: sha256_file(tmp / name) for name in HASHED_FILES},
            "videos": {"dir": "videos", "pattern": "video<i>.mp4", "count": len(jobs), "codec": "h264",
                       "fps": opts.fps},  # fmt: skip
        }
        atomic.write_json(tmp / MANIFEST, manifest)
    return GenerateResult(out_dir, False, counts, _disk_bytes(out_dir), time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_image_captions(root: str | Path) -> tuple[np.ndarray, list[str]]:
    """The pretraining image-caption set of a SynthVTT folder: uint8 images [N, H, W, 3] and N captions."""
    root = Path(root)
    images_path, captions_path = root / IMAGES_FILE, root / IMAGE_CAPTIONS_FILE
    for path in (images_path, captions_path):
        if not path.is_file():
            raise FileNotFoundError(f"SynthVTT pretraining file `{path}` is missing. {GENERATE_HINT}")
    images = np.load(images_path, allow_pickle=False)
    captions = read_json(captions_path)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise AnnotationError(f"`{images_path}` must hold uint8 [N, H, W, 3], got {images.dtype} {images.shape}.")
    if not isinstance(captions, list) or len(captions) != len(images) or not all(isinstance(c, str) for c in captions):
        raise AnnotationError(f"`{captions_path}` must be a list of {len(images)} strings, one per image.")
    return images, captions


@register_loader("synthvtt", splits=("train", "val", "test"), test_split="test")
def load_synthvtt(root: Path, split: str, video_dir: str | Path | None = None) -> Split:
    """SynthVTT split: `train` = train-9k minus the val ids (all captions), `val` = the val ids with their first
    (complete) caption, `test` = the JSFusion-style csv (one complete caption per clip)."""
    if split == "test":
        base = msrvtt_split(root, "test-1k-a", benchmark="synthvtt", video_dir=video_dir)
        return Split("synthvtt", split, base.videos, base.texts, base.meta)
    base = msrvtt_split(root, "train-9k", benchmark="synthvtt", video_dir=video_dir)
    val_path = find_annotation(root, (VAL_CSV,), "synthvtt", hint=f"It lists the held-out val clips. {GENERATE_HINT}")
    val = set(read_video_list(val_path))
    meta = {"annotations": [*base.meta.get("annotations", []), str(val_path)]}
    keep = (lambda vid: vid in val) if split == "val" else (lambda vid: vid not in val)
    videos = [v for v in base.videos if keep(v.id)]
    texts = [t for t in base.texts if keep(t.video_id)]
    if split == "val":  # one query per clip, like the test: its first (complete) caption
        first: dict[str, TextRecord] = {}
        texts = [first.setdefault(t.video_id, t) for t in texts if t.video_id not in first]
    return Split("synthvtt", split, videos, texts, meta)


# ---------------------------------------------------------------------------------------------------------------
# CLI (`tvbench data synth`, wired by benchmark/data/cli.py)


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `tvbench data synth`."""
    d = SceneOptions()
    parser.add_argument("--out", required=True, type=Path, help="folder to write (created; replaced if it holds "
                        "another SynthVTT dataset; left alone if it already holds this one)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--train", type=int, default=1500, help="training clips (default 1500)")
    parser.add_argument("--val", type=int, default=200, help="held-out validation clips (default 200)")
    parser.add_argument("--test", type=int, default=300, help="test clips = test queries (default 300)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels, e.g. 64 or 112 (default 64)")
    parser.add_argument("--frames", type=int, help="frames per clip (default: random in 8..16)")
    parser.add_argument("--captions", type=int, default=10, help="captions per train/val clip (default 10)")
    parser.add_argument("--images", type=int, default=2000, help="pretraining images (default 2000)")
    parser.add_argument("--workers", type=int, default=2, help="encoding processes (default 2)")
    parser.add_argument("--canonical-image-words", action="store_true", help="pretraining captions phrase each shape, "
                        "size, position and background one way, so only fine-tuning teaches the clip captions' other "
                        "phrasings")  # fmt: skip
    knobs = parser.add_argument_group("difficulty")
    knobs.add_argument("--two-object", type=float, default=d.two_object, help=f"fraction of two-object scenes "
                       f"(default {d.two_object})")  # fmt: skip
    knobs.add_argument("--two-phase", type=float, default=d.two_phase, help=f"fraction of one-object scenes with "
                       f"a two-phase motion (default {d.two_phase})")  # fmt: skip
    knobs.add_argument("--twins", type=float, default=d.twins, help=f"fraction of scenes followed by a hard-negative "
                       f"twin (default {d.twins})")  # fmt: skip
    knobs.add_argument("--colours", type=int, default=d.n_colours, help=f"colours in use (default {d.n_colours})")
    knobs.add_argument("--shapes", type=int, default=d.n_shapes, help=f"shapes in use (default {d.n_shapes})")
    knobs.add_argument("--noise", type=float, default=d.noise, help=f"background texture std (default {d.noise})")
    knobs.add_argument("--distractors", type=int, default=d.distractors, help=f"max distractor dots per clip "
                       f"(default {d.distractors})")  # fmt: skip


def run_synth(args: argparse.Namespace) -> int:
    """Generate SynthVTT from parsed arguments and print a summary table; a user error (ValueError, FileExistsError)
    reaches `tvbench`, which prints `tvbench data: error: ...` and exits with status 2."""
    from tabulate import tabulate

    result = generate(
        args.out, seed=args.seed, n_train=args.train, n_val=args.val, n_test=args.test,
        frames=args.frames if args.frames is not None else (8, 16), size=args.size,
        captions_per_video=args.captions, n_images=args.images, workers=args.workers,
        image_synonyms=not args.canonical_image_words, two_object=args.two_object, two_phase=args.two_phase,
        twins=args.twins, n_colours=args.colours,
        n_shapes=args.shapes, noise=args.noise, distractors=args.distractors,
    )  # fmt: skip
    c = result.counts
    rows = [
        ["folder", str(result.root)],
        ["status", "already complete, nothing written" if result.skipped else "generated"],
        ["clips train / val / test", f"{c['train']} / {c['val']} / {c['test']}"],
        ["train+val captions", c["train_captions"]],
        ["test queries", c["test_queries"]],
        ["pretraining images", c["images"]],
        ["size on disk", f"{result.bytes_on_disk / 1e6:.1f} MB"],
        ["time", f"{result.seconds:.1f} s"],
    ]
    print(tabulate(rows, tablefmt="simple"))
    return 0
