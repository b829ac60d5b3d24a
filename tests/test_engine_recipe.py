"""The official GLSCL training recipe as switches, each checked against hand-written arithmetic: BertAdam and its fp16
in-place update (rounding and the second-moment underflow), the official warmup_cosine with ActivityNet's restart,
the weight-decay rule, the temporal LayerNorm epsilon, parity selection and `--set parity=official`."""

# ruff: noqa: F811  (pytest fixtures imported from fixtures_synth are parameters by name)
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_synth import synth_cache, synth_clip_weights, synth_root  # noqa: F401 (pytest fixtures)

from benchmark.engine.backbone import Backbone, BackboneSpec
from benchmark.engine.optimization import (
    BertAdam,
    apply_schedule,
    lr_multiplier,
    make_optimizer,
    official_lr_multiplier,
    parameter_groups,
)
from benchmark.engine.run_setup import prepare_model_run
from benchmark.engine.train import LOG_FILE, train_run
from benchmark.presets import TrainConfig, load_preset, resolve
from benchmark.registry import build_model
from benchmark.runs import load_run

B1, B2, EPS = 0.9, 0.98, 1e-6


def _bertadam_reference(w: list[float], grads: list[list[float]], lr: float, wd: float, clip: float) -> list[float]:
    """BertAdam written out per element in float64: per-tensor clip, moments without bias correction, decoupled
    decay added to the update, then w -= lr * update."""
    m, v = [0.0] * len(w), [0.0] * len(w)
    for g in grads:
        norm = math.sqrt(sum(x * x for x in g))
        scale = min(1.0, clip / (norm + 1e-6))
        g = [x * scale for x in g]
        m = [B1 * a + (1 - B1) * x for a, x in zip(m, g, strict=True)]
        v = [B2 * b + (1 - B2) * x * x for b, x in zip(v, g, strict=True)]
        w = [p - lr * (a / (math.sqrt(b) + EPS) + wd * p) for p, a, b in zip(w, m, v, strict=True)]
    return w


def _step(param: torch.Tensor, grads: list[torch.Tensor], lr: float, wd: float = 0.0, clip: float = 1.0) -> BertAdam:
    opt = BertAdam([{"params": [param], "weight_decay": wd}], lr=lr, betas=(B1, B2), eps=EPS, max_grad_norm=clip)
    for g in grads:
        param.grad = g.to(param.dtype)
        opt.step()
    return opt


def test_bertadam_matches_hand_written_update() -> None:
    w0 = [0.5, -1.0, 2.0]
    grads = [[3.0, 4.0, 0.0], [0.1, -0.2, 0.05], [-0.3, 0.0, 0.2]]  # the first is clipped (norm 5 > 1)
    param = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = _step(param, [torch.tensor(g, dtype=torch.float64) for g in grads], lr=1e-2, wd=0.2)
    expected = _bertadam_reference(w0, grads, lr=1e-2, wd=0.2, clip=1.0)
    assert torch.allclose(param.detach(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    assert opt.state[param]["step"] == 3


def test_fp16_second_moment_underflows_and_step_becomes_g_times_1e6() -> None:
    """|g| = 1e-3: 0.02 g^2 = 2e-8 is below half of fp16's smallest subnormal (2.98e-8), so v stays 0 and every
    step is m / eps (eps itself rounded to the fp16 subnormal 1.013e-6); m -> g, so the step -> g x 1e6. In fp32 the
    same gradients keep v > 0 and the step is O(1)."""
    half = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    opt = BertAdam([half], lr=1.0, betas=(B1, B2), eps=EPS, max_grad_norm=0.0)
    eps16, m_ref = float(np.float16(EPS)), 0.0
    for _ in range(60):
        half.data.zero_()  # measure each step from 0, where fp16 represents it to 11 bits
        half.grad = torch.full((4,), 1e-3, dtype=torch.float16)
        opt.step()
        m = opt.state[half]["next_m"]
        m_ref = B1 * m_ref + (1 - B1) * 1e-3  # the exact recurrence; fp16 rounding drifts from it by < 1%
        assert torch.all(opt.state[half]["next_v"] == 0)
        assert torch.allclose(m.float(), torch.tensor(m_ref), rtol=1e-2, atol=0)
        assert torch.allclose(-half.detach().float(), m.float() / eps16, rtol=2e-3, atol=0)
    assert float(m[0]) / eps16 == pytest.approx(1e-3 / eps16 * (1 - B1**60), rel=1e-2)  # 987 = g x 1e6 / 1.013
    single = torch.nn.Parameter(torch.zeros(4))
    _step(single, [torch.full((4,), 1e-3)] * 60, lr=1.0, clip=0.0)
    assert float(single.detach()[0]) > -60 * 1.5  # fp32: |m / sqrt(v)| is O(1) per step (no bias correction)
    above = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    opt = _step(above, [torch.full((4,), 2e-3)], lr=1.0, clip=0.0)  # 0.02 x 4e-6 = 8e-8 survives in fp16
    assert torch.all(opt.state[above]["next_v"] > 0)


def test_fp16_update_below_half_an_ulp_is_rounded_away() -> None:
    """At lr 1e-7 the step (~7e-8) is far below half an ulp of 1.0 in fp16 (4.9e-4): the weight does not move."""
    half = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    single = torch.nn.Parameter(torch.ones(3))
    for p in (half, single):
        _step(p, [torch.tensor([0.1, -0.2, 0.3])] * 5, lr=1e-7, clip=0.0)
    assert torch.all(half.detach() == 1.0)
    assert torch.all(single.detach() != 1.0)


def test_official_schedule_arithmetic_and_activitynet_restart() -> None:
    total, warm = 100, 0.1
    assert official_lr_multiplier(0, total, warm) == 0.0  # the first step runs at lr 0
    assert official_lr_multiplier(5, total, warm) == pytest.approx(0.5)
    assert official_lr_multiplier(10, total, warm) == pytest.approx(0.5 * (1 + math.cos(0.1 * math.pi)))  # 0.976
    assert official_lr_multiplier(100, total, warm) == pytest.approx(0.0)  # epoch 5 of a 5-epoch total
    assert official_lr_multiplier(150, total, warm) == pytest.approx(0.5)  # climbing back ...
    assert official_lr_multiplier(200, total, warm) == pytest.approx(1.0)  # ... to the full lr at epoch 10
    assert lr_multiplier(150, total, warm) == 0.0  # tvbench's clamped cosine stays at 0 (the wrong old note)
    assert lr_multiplier(10, total, warm) == pytest.approx(1.0)  # re-based: continuous at the end of warm-up
    steps = 1406 * 5  # MSR-VTT: 180,000 pairs / 128 per step, 5 epochs
    ratio = sum(lr_multiplier(s, steps, warm) for s in range(steps)) / sum(
        official_lr_multiplier(s, steps, warm) for s in range(steps))
    assert ratio == pytest.approx(1.109, abs=1e-3)  # the preset notes' "10.9% more total lr"
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "base_lr": 2.0}], lr=2.0)
    apply_schedule(opt, 150, total, warm, kind="official")
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)


def test_official_decay_groups_cover_norms_positions_and_temperature() -> None:
    model = build_model("glscl", backbone="tvbench-tiny", clip_weights="random")
    names = {id(p): n for n, p in model.named_parameters()}

    def decayed(rule: str) -> set[str]:
        groups = parameter_groups(model, 1e-4, 1e-3, 0.2, decay=rule)
        return {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}

    official, default = decayed("official"), decayed("tvbench")
    for name in ("temporal.position", "backbone.clip.logit_scale", "backbone.clip.ln_final.weight",
                 "temporal.blocks.0.ln_1.weight", "backbone.clip.positional_embedding"):
        assert name in official and name not in default
    assert not any("bias" in n for n in official)
    assert official == {n for n in names.values() if "bias" not in n}


def test_temporal_layernorm_epsilon_switch() -> None:
    model = build_model("glscl", backbone="tvbench-tiny", clip_weights="random", temporal_ln_eps=1e-12)
    norms = [m for m in model.temporal.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-12 for m in norms)
    assert all(m.eps == 1e-5 for m in model.backbone.clip.transformer.modules() if isinstance(m, torch.nn.LayerNorm))


def test_parity_flag_turns_on_every_official_switch_and_set_still_wins() -> None:
    preset = load_preset("msrvtt-vitb32")
    resolved = resolve(preset, "glscl", ["parity=official", "select_every_steps=20"])
    train = resolved.train
    assert (train.optimizer, train.decay_groups, train.schedule, train.schedule_epochs) == (
        "bertadam", "official", "official", 5)
    assert (train.backbone_dtype, train.amp, train.select_on, train.select_ties) == ("fp16", "none", "test", "last")
    assert train.rand_augment == "rand-m7-n4-mstd0.5-inc1" and train.freeze_patch_embedding
    assert train.parity == "official" and train.select_every_steps == 20  # the later --set wins
    assert resolved.model["temporal_ln_eps"] == 1e-12
    assert any("parity[official]" in s for s in resolved.sources)
    assert resolve(preset, "clip4clip-meanp", ["parity=official"]).model.get("temporal_ln_eps") == 1e-5
    default = resolve(preset, "glscl").train
    assert (default.optimizer, default.schedule, default.amp, default.parity) == ("adamw", "tvbench", "bf16", "none")
    with pytest.raises(KeyError, match="no parity mode `exact`"):
        resolve(preset, "glscl", ["parity=exact"])
    anet = resolve(load_preset("activitynet-vitb32"), "glscl", ["parity=official"]).train
    assert anet.epochs == 10 and anet.schedule_epochs == 5 and anet.select_every_steps == 30 and not anet.rand_augment


def test_select_on_test_trains_on_the_whole_training_split(synth_root: Path, synth_clip_weights: Path) -> None:
    setup = prepare_model_run(model_name="clip4clip-meanp", preset="synthvtt", data_root=synth_root,
                              clip_weights=str(synth_clip_weights), sets=["select_on=test"], seed=0)
    train, val = setup.train_val()
    assert setup.select_on_test and val.split == setup.preset.test_split
    assert len(train.videos) == 24  # the tiny SynthVTT's whole training split, nothing held out


def test_selection_every_n_steps_and_ties_to_the_later(tmp_path: Path, synth_root: Path,
                                                       synth_clip_weights: Path) -> None:
    sets = ["epochs=1", "batch_size=4", "max_frames=2", "select_every_steps=2", "select_ties=last",
            "optimizer=bertadam", "schedule=official", "decay_groups=official", "freeze_patch_embedding=true"]
    train_run("synthvtt", "clip4clip-meanp", 0, tmp_path / "run", sets, data_root=synth_root,
              clip_weights=str(synth_clip_weights), progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / LOG_FILE).read_text().splitlines()]
    steps = [e["step"] for e in log if e["event"] == "step"]
    validated = [e["step"] for e in log if e["event"] == "validation"]
    assert steps == [1, 2, 3, 4, 5, 6] and validated == [1, 2, 4, 6, 6]  # step 1, every 2, and the epoch end
    assert [e["lr/backbone"] for e in log if e["event"] == "step"][0] == 0.0  # the official first step at lr 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "best" / "state.json").read_text())
    values = [e["t2v"]["R@1"] for e in log if e["event"] == "validation"]
    last_best = max(i for i, v in enumerate(values) if v == max(values))
    assert state["step"] == validated[last_best]


def test_select_checkpoint_last_validates_once_and_keeps_the_final_weights(tmp_path: Path, synth_root: Path,
                                                                          synth_clip_weights: Path) -> None:
    sets = ["epochs=2", "batch_size=8", "max_frames=2", "select_checkpoint=last"]
    record = train_run("synthvtt", "clip4clip-meanp", 0, tmp_path / "run", sets, data_root=synth_root,
                       clip_weights=str(synth_clip_weights), progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / LOG_FILE).read_text().splitlines()]
    last_step = [e["step"] for e in log if e["event"] == "step"][-1]
    assert [(e["epoch"], e["step"]) for e in log if e["event"] == "validation"] == [(2, last_step)]
    state = json.loads((tmp_path / "run" / "checkpoints" / "best" / "state.json").read_text())
    assert state["step"] == last_step and state["epoch"] == 1
    assert load_run(record).extra["selection"]["checkpoint"] == "last"
    with pytest.raises(ValueError, match="select_checkpoint"):
        TrainConfig(select_checkpoint="last", select_every_steps=2)


def test_bertadam_is_built_from_the_config() -> None:
    model = build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random")
    opt = make_optimizer(parameter_groups(model, 1e-4, 1e-3, 0.2), (0.9, 0.98), 1e-6, kind="bertadam",
                         max_grad_norm=0.5)
    assert isinstance(opt, BertAdam) and opt.param_groups[0]["max_grad_norm"] == 0.5


def test_official_fp16_backbone_layout_trains_in_place() -> None:
    """to_official_fp16: matrices and projections fp16, LayerNorms / embeddings / logit scale fp32; a BertAdam step
    keeps fp16 moments and the same Parameter objects (no master copy)."""
    backbone = Backbone(BackboneSpec("tvbench-tiny"), allow_random=True)
    before = {n: p for n, p in backbone.named_parameters()}
    backbone.to_official_fp16()
    dtypes = {n: p.dtype for n, p in backbone.named_parameters()}
    assert dtypes["clip.visual.conv1.weight"] == dtypes["clip.text_projection"] == torch.float16
    assert dtypes["clip.visual.proj"] == dtypes["clip.transformer.resblocks.0.attn.in_proj_weight"] == torch.float16
    assert dtypes["clip.ln_final.weight"] == dtypes["clip.token_embedding.weight"] == torch.float32
    assert dtypes["clip.logit_scale"] == dtypes["clip.visual.class_embedding"] == torch.float32
    assert all(before[n] is p for n, p in backbone.named_parameters())
    tokens = torch.randint(1, 1000, (2, 8))
    tokens[:, -1] = 49407
    eos, _ = backbone.encode_text(tokens, torch.ones(2, 8, dtype=torch.long))
    frames = backbone.encode_frames(torch.randn(2, 3, 64, 64))
    assert eos.dtype == frames.dtype == torch.float32
    (eos.sum() + frames.sum()).backward()
    opt = BertAdam(list(backbone.parameters()), lr=1e-4)
    opt.step()
    weight = backbone.clip.visual.transformer.resblocks[0].mlp.c_fc.weight
    assert opt.state[weight]["next_m"].dtype == torch.float16 and weight.dtype == torch.float16


def test_adamw_is_fused_where_possible_and_updates_like_the_reference() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8))
    reference = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    opt = make_optimizer([{"params": list(model.parameters()), "lr": 1e-2, "weight_decay": 0.2}], (0.9, 0.98), 1e-6)
    ref = torch.optim.AdamW([{"params": reference, "lr": 1e-2, "weight_decay": 0.2}], betas=(0.9, 0.98), eps=1e-6,
                            foreach=False)
    assert opt.defaults["fused"] is True
    for _ in range(5):
        grads = [torch.randn_like(p) for p in reference]
        for p, q, g in zip(model.parameters(), reference, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    for p, q in zip(model.parameters(), reference, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=1e-7)
