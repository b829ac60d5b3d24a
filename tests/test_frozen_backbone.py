# ruff: noqa: F811  (pytest fixtures imported from fixtures_synth are parameters by name)
"""The frozen-encoder regime (cached backbone outputs, heads trained on top, equal to lr 0 on the backbone) and the
shipped backbone sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fixtures_synth import synth_cache, synth_clip_weights, synth_root  # noqa: F401 (pytest fixtures)
from safetensors.torch import load_file

from benchmark.engine.backbone import BACKBONE_CONFIG_DIR, Backbone, BackboneSpec, count_parameters
from benchmark.engine.feature_cache import FeatureCache
from benchmark.engine.train import BEST, train_run
from benchmark.registry import build_model
from benchmark.runs import load_run

SETS = ["batch_size=8", "max_frames=2", "eval_batch_size=16", "epochs=2", "grad_clip=0"]


def _train(out: Path, root: Path, weights: Path, model: str, extra: list[str]) -> Path:
    return train_run("synthvtt", model, 0, out, [*SETS, *extra], data_root=root, clip_weights=str(weights),
                     progress=False)  # fmt: skip


def test_frozen_equals_backbone_at_lr_zero(tmp_path: Path, synth_root: Path, synth_clip_weights: Path) -> None:
    # grad_clip 0: with clipping, the unfrozen path's norm would include the (unused) backbone gradients.
    lr0 = _train(tmp_path / "lr0", synth_root, synth_clip_weights, "glscl", ["coef_lr=0"])
    frozen = _train(tmp_path / "frozen", synth_root, synth_clip_weights, "glscl", ["freeze_backbone=true"])
    a, b = load_run(lr0), load_run(frozen)
    assert a.metrics == b.metrics and a.extra["trained"] and b.extra["trained"]
    for d in ("t2v", "v2t"):
        assert (a.ranks[d].greater == b.ranks[d].greater).all()
    wa, wb = load_file(str(tmp_path / "lr0" / BEST / "model.safetensors")), load_file(
        str(tmp_path / "frozen" / BEST / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6, msg=key)
    pretrained = load_file(str(synth_clip_weights))
    backbone = [k for k in wa if k.startswith("backbone.clip.")]
    assert backbone and all(torch.equal(wb[k], pretrained[k.removeprefix("backbone.clip.")]) for k in backbone)


def test_meanp_has_nothing_to_train_when_frozen(tmp_path: Path, synth_root: Path, synth_clip_weights: Path) -> None:
    record = load_run(_train(tmp_path / "m", synth_root, synth_clip_weights, "clip4clip-meanp",
                             ["freeze_backbone=true"]))  # fmt: skip
    zero = load_run(_train(tmp_path / "z", synth_root, synth_clip_weights, "clip-zeroshot", []))
    assert record.extra["trained"] is False and "frozen backbone" in record.extra["untrained_reason"]
    assert record.metrics == zero.metrics and not (tmp_path / "m" / "checkpoints").exists()


def test_cache_computes_each_row_once_and_keys_by_weights() -> None:
    torch.manual_seed(0)
    cache = FeatureCache()
    backbone = Backbone(BackboneSpec("tvbench-tiny"), allow_random=True)
    expected = backbone.encode_frames(images := torch.randn(5, 3, 64, 64)).detach()
    backbone.freeze(cache)
    assert not any(p.requires_grad for p in backbone.parameters())
    torch.testing.assert_close(backbone.encode_frames(images), expected)
    torch.testing.assert_close(backbone.encode_frames(images[[4, 0, 0]]), expected[[4, 0, 0]])
    assert cache.computed == 5
    other = Backbone(BackboneSpec("tvbench-tiny"), allow_random=True)  # different random weights: new keys
    other.freeze(cache)
    assert not torch.allclose(other.encode_frames(images[:1]), expected[:1]) and cache.computed == 6
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize("backbone", sorted(p.stem for p in BACKBONE_CONFIG_DIR.glob("*.json")))
@pytest.mark.parametrize("model", ["clip4clip-seqtransf", "glscl", "glccl", "xclip"])
def test_every_shipped_backbone_runs_the_temporal_heads(backbone: str, model: str) -> None:
    # seqTransf copies the text tower's blocks onto frame features: the text width must equal the embedding size.
    torch.manual_seed(0)
    extra = {"num_queries": 4, "decoder_heads": 4, "decoder_ff": 512} if model == "glscl" else {}
    built = build_model(model, backbone=backbone, clip_weights="random", **extra)
    size = built.backbone.image_size
    video = built.encode_video(torch.randn(2, 3, 3, size, size), torch.ones(2, 3, dtype=torch.long))
    assert all(torch.isfinite(v).all() for v in video.values())


def test_parameter_count_matches_a_built_model_and_sizes_step_by_four() -> None:
    tiny = Backbone(BackboneSpec("tvbench-tiny"), allow_random=True)
    assert count_parameters("tvbench-tiny") == sum(p.numel() for p in tiny.clip.parameters())
    assert count_parameters("tvbench-small") >= 4 * count_parameters("tvbench-tiny")
    assert count_parameters("tvbench-tiny") >= 4 * count_parameters("tvbench-nano")
    with pytest.raises(KeyError, match="tvbench-huge"):
        count_parameters("tvbench-huge")
