"""Presets load, merge in the documented order, and reject unknown keys; optimiser groups and schedule values."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmark.engine.optimization import lr_multiplier, parameter_groups, warmup_steps
from benchmark.presets import list_presets, load_preset, parse_sets, resolve, resolve_model_config
from benchmark.registry import build_model

REAL = ["msrvtt-vitb32", "msrvtt-vitb16", "msvd-vitb32", "didemo-vitb32", "lsmdc-vitb32", "activitynet-vitb32"]


@pytest.mark.parametrize("name", ["synthvtt", "synthvtt-full", *REAL])
def test_every_preset_loads_and_resolves(name: str) -> None:
    preset = load_preset(name)
    assert name in list_presets()
    cfg = resolve(preset, "clip4clip-meanp")
    assert cfg.model["backbone"] == preset.backbone["name"]
    assert cfg.train.epochs >= 1 and cfg.train.batch_size >= 1
    assert preset.notes


def test_encoder_axis_merges_backbone_and_training_and_rejects_unknown_keys(tmp_path) -> None:
    full = load_preset("synthvtt-full")
    assert list(full.encoder_presets()) == list(full.encoders) and len(full.encoders) >= 2
    raw = json.loads(full.path.read_text())
    raw["encoders"] = {"tiny-finetuned": {"backbone": {"name": "tvbench-tiny"}},
                       "small-frozen": {"backbone": {"name": "tvbench-small"}, "training": {"freeze_backbone": True}}}
    (path := tmp_path / "axis.json").write_text(json.dumps(raw))
    axis = load_preset(path).encoder_presets()
    small = axis["small-frozen"]
    assert small.backbone["name"] == "tvbench-small" and small.backbone["weights"] == "pretrain"
    assert small.backbone["pretrain"] == full.backbone["pretrain"]  # the preset's pretraining recipe, merged
    assert small.train_config().freeze_backbone and not axis["tiny-finetuned"].train_config().freeze_backbone
    assert small.train_config().coef_lr == full.train_config().coef_lr
    assert resolve(small, "glscl").model["backbone"] == "tvbench-small" and not small.encoders
    quick_glscl = resolve(load_preset("synthvtt"), "glscl").model  # the package recipe file of the synthvtt preset
    assert resolve(small, "glscl").model["num_queries"] == quick_glscl["num_queries"]
    assert list(load_preset("synthvtt").encoder_presets()) == ["tvbench-tiny"]
    raw["encoders"]["small-frozen"]["trianing"] = {}
    (bad := tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(KeyError, match="trianing"):
        load_preset(bad)
    raw["encoders"]["small-frozen"] = {"training": {"freeze_backbone": True, "epohcs": 3}}
    bad.write_text(json.dumps(raw))
    with pytest.raises(KeyError, match="epohcs"):
        load_preset(bad)


def test_official_recipe_values() -> None:
    msrvtt = load_preset("msrvtt-vitb32").train_config()
    assert (msrvtt.lr, msrvtt.coef_lr, msrvtt.batch_size) == (1e-4, 1e-3, 128)
    assert (msrvtt.max_frames, msrvtt.max_words) == (12, 32)
    assert msrvtt.betas == (0.9, 0.98) and msrvtt.eps == 1e-6 and msrvtt.weight_decay == 0.2
    didemo = load_preset("didemo-vitb32").train_config()
    assert (didemo.batch_size, didemo.max_frames, didemo.max_words) == (32, 64, 64)
    anet = load_preset("activitynet-vitb32").train_config()
    assert (anet.epochs, anet.batch_size, anet.max_frames) == (10, 64, 64)


def test_merge_order_and_sets() -> None:
    preset = load_preset("msrvtt-vitb32")
    # preset models entry: clip4clip runs the text tower without a padding mask; xpool gets its own batch/lr
    assert resolve_model_config(preset, "clip4clip-meanp")["text_padding_mask"] is False
    xpool = resolve(preset, "xpool")
    assert xpool.train.batch_size == 32 and xpool.train.lr == 3e-5
    # --set beats everything, values parse as JSON literals
    over = resolve(preset, "xpool", ["batch_size=16", "text_padding_mask=true", "betas=[0.9, 0.999]"])
    assert over.train.batch_size == 16 and over.train.betas == (0.9, 0.999)
    assert over.model["text_padding_mask"] is True
    assert parse_sets(["a=1e-4", "b=hello", "c=null"]) == {"a": 1e-4, "b": "hello", "c": None}


def test_unknown_set_key_lists_valid_keys() -> None:
    with pytest.raises(KeyError, match="Training fields: .*batch_size.*Model fields"):
        resolve(load_preset("synthvtt"), "clip4clip-meanp", ["bogus=1"])
    with pytest.raises(ValueError, match="key=value"):
        parse_sets(["novalue"])


def test_package_preset_file_is_merged(tmp_path, monkeypatch) -> None:
    import benchmark.presets as presets

    path = tmp_path / "synthvtt.json"
    path.write_text(json.dumps({"model": {"logit_scale_max": 50.0}, "train": {"epochs": 7}, "notes": "test"}))
    monkeypatch.setattr(presets, "package_preset_path", lambda model, preset: path)
    cfg = resolve(load_preset("synthvtt"), "clip4clip-meanp", ["epochs=9"])
    assert cfg.model["logit_scale_max"] == 50.0 and cfg.train.epochs == 9
    assert str(path) in cfg.sources


def test_parameter_groups_split_backbone_head_and_decay() -> None:
    model = build_model("clip4clip-seqtransf", backbone="tvbench-tiny", clip_weights="random")
    groups = {g["name"]: g for g in parameter_groups(model, lr=1e-3, coef_lr=0.1, weight_decay=0.2)}
    assert set(groups) == {"backbone", "backbone-no-decay", "head", "head-no-decay"}
    assert groups["backbone"]["lr"] == pytest.approx(1e-4) and groups["head"]["lr"] == 1e-3
    assert groups["backbone-no-decay"]["weight_decay"] == 0.0 and groups["head"]["weight_decay"] == 0.2
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for p in groups["backbone-no-decay"]["params"]}
    assert "backbone.clip.logit_scale" in no_decay and "backbone.clip.token_embedding.weight" in no_decay
    assert all(p.ndim >= 2 for p in groups["backbone"]["params"])
    total = sum(len(g["params"]) for g in groups.values())
    assert total == len([p for p in model.parameters() if p.requires_grad])
    assert isinstance(groups["head"]["params"][0], torch.nn.Parameter)


def test_warmup_then_cosine() -> None:
    total, warm = 100, warmup_steps(100, 0.1)
    assert warm == 10
    assert lr_multiplier(0, total, 0.1) == pytest.approx(0.1)
    assert lr_multiplier(4, total, 0.1) == pytest.approx(0.5)
    assert lr_multiplier(9, total, 0.1) == pytest.approx(1.0)
    assert lr_multiplier(10, total, 0.1) == pytest.approx(1.0)
    assert lr_multiplier(55, total, 0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_multiplier(99, total, 0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    values = [lr_multiplier(s, total, 0.1) for s in range(10, total)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_multiplier(0, 10, 0.0) == 1.0
