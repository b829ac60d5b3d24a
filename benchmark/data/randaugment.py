"""Video-consistent RandAugment: timm's `rand-m{M}-n{N}-mstd{S}-inc{I}` policy drawn once per clip and applied to
every frame, as the official GLSCL loader does for MSR-VTT, MSVD and LSMDC training clips (`rand-m7-n4-mstd0.5-inc1`,
bicubic resampling, grey fill; glscl_official_code.md §6.4).

The ops are timm's (PIL `ImageOps` / `ImageEnhance` / affine transforms with timm's magnitude-to-argument rules), so a
drawn op gives the same pixels as timm's op with the same argument (a test checks it). What differs is only where the
randomness comes from: an explicit per-clip `numpy` generator instead of the global `random` module, so draws are
reproducible and independent of DataLoader workers. Per clip: N ops chosen uniformly with replacement; each applied
with probability 1/2, at magnitude ~ Normal(M, S) clipped to [0, 10], with a random sign where the op has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

MAX_LEVEL = 10.0
FILL = (128, 128, 128)  # the official hparams carry no image mean, so timm's grey fill applies
RESAMPLE = Image.Resampling.BICUBIC  # `create_random_augment(..., interpolation="bicubic")`
APPLY_PROB = 0.5  # timm's `rand_augment_ops(prob=0.5)`


def _affine(img: Image.Image, matrix: tuple[float, ...]) -> Image.Image:
    """PIL's inverse-mapped affine warp (output (x, y) samples input matrix @ (x, y, 1)) with grey fill."""
    return img.transform(img.size, Image.Transform.AFFINE, matrix, resample=RESAMPLE, fillcolor=FILL)


def _solarize_add(img: Image.Image, add: int) -> Image.Image:
    """Add `add` to every channel value below 128 (saturating at 255)."""
    lut = [min(255, i + add) if i < 128 else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


def _posterize(img: Image.Image, bits: int) -> Image.Image:
    return img if bits >= 8 else ImageOps.posterize(img, bits)


# op name -> PIL function of (image, argument); argument-free ops take None. The order is timm's `_RAND_TRANSFORMS`
# (and `_RAND_INCREASING_TRANSFORMS`, the same ops with increasing-severity arguments); the draw indexes into it.
OPS: dict[str, Callable[[Image.Image, float | int | None], Image.Image]] = {
    "AutoContrast": lambda img, _: ImageOps.autocontrast(img),
    "Equalize": lambda img, _: ImageOps.equalize(img),
    "Invert": lambda img, _: ImageOps.invert(img),
    "Rotate": lambda img, deg: img.rotate(deg, resample=RESAMPLE, fillcolor=FILL),
    "Posterize": _posterize,
    "Solarize": lambda img, thresh: ImageOps.solarize(img, thresh),
    "SolarizeAdd": _solarize_add,
    "Color": lambda img, f: ImageEnhance.Color(img).enhance(f),
    "Contrast": lambda img, f: ImageEnhance.Contrast(img).enhance(f),
    "Brightness": lambda img, f: ImageEnhance.Brightness(img).enhance(f),
    "Sharpness": lambda img, f: ImageEnhance.Sharpness(img).enhance(f),
    "ShearX": lambda img, f: _affine(img, (1, f, 0, 0, 1, 0)),
    "ShearY": lambda img, f: _affine(img, (1, 0, 0, f, 1, 0)),
    "TranslateXRel": lambda img, pct: _affine(img, (1, 0, pct * img.size[0], 0, 1, 0)),
    "TranslateYRel": lambda img, pct: _affine(img, (1, 0, 0, 0, 1, pct * img.size[1])),
}

# Argument rules (timm's `LEVEL_TO_ARG`): magnitude m in [0, 10] and a sign; with inc1 every op's severity grows with m.
_ENHANCE = ("Color", "Contrast", "Brightness", "Sharpness")
_GEOMETRY = {"Rotate": 30.0, "ShearX": 0.3, "ShearY": 0.3, "TranslateXRel": 0.45, "TranslateYRel": 0.45}
UNSIGNED_OPS = ("AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "SolarizeAdd")


def level_to_arg(op: str, magnitude: float, sign: int, increasing: bool) -> float | int | None:
    """timm's argument of `op` at `magnitude` (sign +1 or -1 for the ops that have one)."""
    m = magnitude / MAX_LEVEL
    if op in ("AutoContrast", "Equalize", "Invert"):
        return None
    if op in _GEOMETRY:
        return sign * m * _GEOMETRY[op]
    if op in _ENHANCE:
        return 1.0 + sign * m * 0.9 if increasing else m * 1.8 + 0.1
    if op == "Posterize":
        return 4 - int(m * 4) if increasing else int(m * 4)
    if op == "Solarize":
        return 256 - int(m * 256) if increasing else int(m * 256)
    if op == "SolarizeAdd":
        return int(m * 110)
    raise KeyError(f"Unknown RandAugment op `{op}`; known: {sorted(OPS)}.")


@dataclass(frozen=True)
class RandAugmentSpec:
    """A parsed timm RandAugment string: magnitude M, N ops per clip, magnitude noise S, increasing op set."""

    magnitude: float = 10.0
    num_ops: int = 2
    magnitude_std: float = 0.0
    increasing: bool = False

    @classmethod
    def parse(cls, text: str) -> RandAugmentSpec:
        """`rand-m7-n4-mstd0.5-inc1` -> RandAugmentSpec(7, 4, 0.5, True). Weighted op choice (`w`) is refused."""
        parts = text.split("-")
        if parts[0] != "rand":
            raise ValueError(f"RandAugment spec must start with `rand-`, got `{text}` (e.g. rand-m7-n4-mstd0.5-inc1).")
        values: dict[str, str] = {}
        for part in parts[1:]:
            match = re.fullmatch(r"(mstd|inc|m|n)(\d+(?:\.\d+)?)", part)
            if not match:
                raise ValueError(f"RandAugment spec `{text}`: cannot read `{part}` (known: m, n, mstd, inc).")
            values[match.group(1)] = match.group(2)
        spec = cls(magnitude=float(values.get("m", 10)), num_ops=int(float(values.get("n", 2))),
                   magnitude_std=float(values.get("mstd", 0)), increasing=bool(int(float(values.get("inc", 0)))))
        if not 0 <= spec.magnitude <= MAX_LEVEL or spec.num_ops < 1:
            raise ValueError(f"RandAugment spec `{text}`: need 0 <= m <= 10 and n >= 1.")
        return spec


Draw = tuple[str, float | int | None]


@dataclass(frozen=True)
class VideoRandAugment:
    """RandAugment drawn once per clip (`draw`) and applied identically to all its frames (`apply`)."""

    spec: RandAugmentSpec

    @classmethod
    def from_spec(cls, text: str) -> VideoRandAugment:
        return cls(RandAugmentSpec.parse(text))

    def draw(self, rng: np.random.Generator) -> list[Draw]:
        """The ops of one clip with their arguments, in application order (skipped ops left out)."""
        spec, ops = self.spec, tuple(OPS)
        out = []
        for index in rng.integers(0, len(ops), size=spec.num_ops):
            if rng.random() > APPLY_PROB:
                continue
            magnitude = rng.normal(spec.magnitude, spec.magnitude_std) if spec.magnitude_std > 0 else spec.magnitude
            magnitude = min(MAX_LEVEL, max(0.0, float(magnitude)))
            op = ops[index]
            sign = 1 if op in UNSIGNED_OPS or rng.random() <= 0.5 else -1
            out.append((op, level_to_arg(op, magnitude, sign, spec.increasing)))
        return out

    @staticmethod
    def apply(frames: torch.Tensor, draws: list[Draw]) -> torch.Tensor:
        """uint8 [T, H, W, 3] frames with every drawn op applied to each frame."""
        if not draws:
            return frames
        out = []
        for frame in frames.numpy():
            img = Image.fromarray(frame)
            for op, arg in draws:
                img = OPS[op](img, arg)
            out.append(np.asarray(img))
        return torch.from_numpy(np.stack(out))

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return self.apply(frames, self.draw(rng))
