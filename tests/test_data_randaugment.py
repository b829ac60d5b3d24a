"""Video-consistent RandAugment: the same pixels as timm's ops for the same arguments, timm's magnitude rules, the
official spec parsed, one draw per clip applied identically to every frame, reproducible per clip seed."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import auto_augment as timm_aa

from benchmark.data.randaugment import (
    FILL,
    OPS,
    RESAMPLE,
    RandAugmentSpec,
    VideoRandAugment,
    level_to_arg,
)
from benchmark.data.video import VideoConfig, to_tensor

OFFICIAL = "rand-m7-n4-mstd0.5-inc1"
TIMM_NAME = {"Posterize": "PosterizeIncreasing", "Solarize": "SolarizeIncreasing", "Color": "ColorIncreasing",
             "Contrast": "ContrastIncreasing", "Brightness": "BrightnessIncreasing",
             "Sharpness": "SharpnessIncreasing"}


def _image(seed: int = 0) -> Image.Image:
    """A 48 x 64 RGB image with gradients, edges and noise, so every op changes something."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:64]
    base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) % 256
    base[10:30, 20:40] = [200, 30, 90]
    return Image.fromarray(np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8))


def test_official_spec_is_parsed() -> None:
    assert RandAugmentSpec.parse(OFFICIAL) == RandAugmentSpec(7.0, 4, 0.5, True)
    assert RandAugmentSpec.parse("rand-m9-n2") == RandAugmentSpec(9.0, 2, 0.0, False)
    with pytest.raises(ValueError, match="cannot read `w0`"):
        RandAugmentSpec.parse("rand-m9-w0")
    with pytest.raises(ValueError, match="must start with `rand-`"):
        RandAugmentSpec.parse("augmix-m5")


def test_op_set_and_order_are_timms_increasing_set() -> None:
    assert [TIMM_NAME.get(op, op) for op in OPS] == list(timm_aa._RAND_INCREASING_TRANSFORMS)


@pytest.mark.parametrize("magnitude", [0.0, 3.3, 7.0, 10.0])
def test_arguments_follow_timms_level_rules(magnitude: float) -> None:
    hparams = {"translate_const": 100, "img_mean": FILL}
    for op in OPS:
        random.seed(0)  # timm draws the sign from `random`; compare magnitudes and both signs separately
        timm_fn = timm_aa.LEVEL_TO_ARG[TIMM_NAME.get(op, op)]
        expected = timm_fn(magnitude, hparams)[0] if timm_fn is not None else None
        ours = {level_to_arg(op, magnitude, sign, increasing=True) for sign in (1, -1)}
        if expected is None:
            assert ours == {None}
            continue
        centre = 1.0 if op in ("Color", "Contrast", "Brightness", "Sharpness") else 0.0  # enhance: 1 +- m/10 x 0.9
        assert any(v == pytest.approx(expected) for v in ours)
        assert all(abs(v - centre) == pytest.approx(abs(expected - centre)) for v in ours)


@pytest.mark.parametrize("op", list(OPS))
def test_ops_give_timms_pixels(op: str) -> None:
    """For the same argument our op and timm's give identical images (bicubic, grey fill as the official code)."""
    img = _image()
    for sign in (1, -1):
        arg = level_to_arg(op, 7.0, sign, increasing=True)
        timm_op = timm_aa.NAME_TO_OP[TIMM_NAME.get(op, op)]
        args = () if arg is None else (arg,)
        expected = timm_op(img, *args, fillcolor=FILL, resample=RESAMPLE)
        assert np.array_equal(np.asarray(OPS[op](img, arg)), np.asarray(expected)), (op, arg)


def test_one_draw_per_clip_applied_to_every_frame() -> None:
    augment = VideoRandAugment.from_spec(OFFICIAL)
    frame = torch.from_numpy(np.array(_image()))
    clip = frame.expand(5, -1, -1, -1).contiguous()
    for seed in range(20):
        out = augment(clip, np.random.default_rng(seed))
        assert all(torch.equal(out[0], out[t]) for t in range(1, 5))
    a = augment(clip, np.random.default_rng([3, 1, 7]))
    assert torch.equal(a, augment(clip, np.random.default_rng([3, 1, 7])))  # reproducible per (seed, epoch, item)
    changed = [not torch.equal(augment(clip, np.random.default_rng(s)), clip) for s in range(20)]
    assert 10 <= sum(changed) < 20  # P(no op applied) = 1/2^4 per clip


def test_draw_statistics_match_the_policy() -> None:
    """4 ops per clip, each applied with probability 1/2, magnitude ~N(7, 0.5): mean 2 ops, rotation ~21 degrees."""
    augment = VideoRandAugment.from_spec(OFFICIAL)
    draws = [augment.draw(np.random.default_rng(s)) for s in range(4000)]
    assert np.mean([len(d) for d in draws]) == pytest.approx(2.0, abs=0.05)
    rotations = [abs(arg) for d in draws for op, arg in d if op == "Rotate"]
    assert np.mean(rotations) == pytest.approx(21.0, abs=0.2) and max(rotations) <= 30.0
    chosen = [op for d in draws for op, _ in d]
    assert set(chosen) == set(OPS)


def test_to_tensor_augments_before_the_resize_and_crop() -> None:
    cfg = VideoConfig(max_frames=3, size=32)
    frames = torch.from_numpy(np.stack([np.array(_image(s)) for s in range(2)]))
    augment = VideoRandAugment.from_spec("rand-m10-n2-inc1")
    seed = next(s for s in range(100) if augment.draw(np.random.default_rng(s)))
    out, mask = to_tensor(frames, cfg, augment, np.random.default_rng(seed))
    expected, _ = to_tensor(augment(frames, np.random.default_rng(seed)), cfg)
    assert out.shape == (3, 3, 32, 32) and mask.tolist() == [1, 1, 0] and torch.equal(out, expected)
    assert not torch.equal(out, to_tensor(frames, cfg)[0])
