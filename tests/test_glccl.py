"""GLCCL: CSC arithmetic against hand-written references, the four scores against a literal per-pair loop, chunk
invariance, masking switches, removed terms, per-pair MACs, presets, training and the registry."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures_synth import synth_cache, synth_clip_weights, synth_root  # noqa: F401 (pytest fixtures)
from test_baselines import make_batch

import baselines.glccl as glccl_module
from baselines.glccl import GLCCL, contrastive_score_consistency, glccl_pair_macs
from baselines.xclip import xclip_dot_macs, xclip_mixing_macs
from benchmark.cli import main
from benchmark.engine import efficiency
from benchmark.engine.train import train_run
from benchmark.presets import load_preset, package_preset_path, resolve
from benchmark.registry import build_model, config_to_json, model_spec
from benchmark.runs import load_run

NAMES = {"glccl": ["nce", "csc"], "glccl-no-csc": ["nce"], "glccl-video-only": ["nce"]}
TINY = {"backbone": "tvbench-tiny", "clip_weights": "random", "temporal_layers": 1, "max_words": 10}


def tiny(name: str = "glccl", seed: int = 0, **overrides: object) -> GLCCL:
    """A tiny random GLCCL with its learnable matrices moved off the identity (so mixing bugs show)."""
    torch.manual_seed(seed)
    model = build_model(name, **{**TINY, **overrides})
    with torch.no_grad():
        for p in model.head_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def encode(model: GLCCL, batch: tuple[torch.Tensor, ...]) -> tuple[dict, dict]:
    tokens, mask, frames, frame_mask = batch
    return model.encode_text(tokens, mask), model.encode_video(frames, frame_mask)


def _raise(name: str) -> Callable[..., torch.Tensor]:
    """A stand-in that fails the test when called."""

    def fail(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError(f"{name} was called although it is removed")

    return fail


# ---------------------------------------------------------------- registry and CLI


def test_tvbench_models_lists_glccl_and_its_ablations(capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert set(NAMES) <= listed
    for name, terms in NAMES.items():
        config = model_spec(name).make_config()
        assert config.loss_terms() == terms
        assert json.loads(json.dumps(config_to_json(config)))["text_padding_mask"] is False  # X-CLIP's causal tower


def test_config_validation() -> None:
    spec = model_spec("glccl")
    with pytest.raises(ValueError, match="use_csc=false"):
        spec.make_config(multi_grained=False)
    with pytest.raises(ValueError, match="csc_denominator"):
        spec.make_config(csc_denominator="diagonal")
    with pytest.raises(ValueError, match="pool_temperature"):
        spec.make_config(pool_temperature=0.0)
    assert spec.make_config(csc_weight=0.0).loss_terms() == ["nce"]


def test_seqtransf_layernorm_epsilon_is_a_switch() -> None:
    """CLIP's 1e-5 by default; `temporal_ln_eps=1e-12` is the official module_cross LayerNorm (the parity harness)."""
    for eps in (1e-5, 1e-12):
        model = tiny(temporal_ln_eps=eps) if eps != 1e-5 else tiny()
        norms = [m for m in model.seq_transf.modules() if isinstance(m, torch.nn.LayerNorm)]
        assert norms and all(n.eps == eps for n in norms)
        text_tower = [m for m in model.backbone.modules() if isinstance(m, torch.nn.LayerNorm)]
        assert all(n.eps == 1e-5 for n in text_tower)  # only the temporal module changes
    with pytest.raises(ValueError, match="epsilon must be positive"):
        tiny(temporal_ln_eps=0.0)


# ---------------------------------------------------------------- CSC arithmetic


def test_csc_hand_computed_case_and_official_denominator() -> None:
    # Scores of the four granularities for a batch of 2 pairs (diagonal = positives).
    # (0,0): 1,2,3,4 -> unbiased var 5/3; (1,1): constant -> 0; (0,1): 0,0,0,4 -> 4; (1,0): constant -> 0.
    scores = torch.tensor(
        [
            [[1.0, 0.0], [2.0, 0.0]],
            [[2.0, 0.0], [2.0, 0.0]],
            [[3.0, 0.0], [2.0, 0.0]],
            [[4.0, 4.0], [2.0, 0.0]],
        ]
    )
    positive = (5 / 3 + 0) / 2
    assert contrastive_score_consistency(scores).item() == pytest.approx(positive / ((4 + 0) / 4))  # / B^2
    assert contrastive_score_consistency(scores, "negatives").item() == pytest.approx(positive / ((4 + 0) / 2))


def csc_reference(scores: np.ndarray, denominator: str) -> float:
    """The official loop in NumPy: ddof=1 variance per pair, diagonal mean over the mean of the zeroed-diagonal matrix
    (all B^2 entries), or over the B(B-1) negatives."""
    var = scores.var(axis=0, ddof=1)
    batch = var.shape[0]
    off = sum(var[a, b] for a in range(batch) for b in range(batch) if a != b)
    negatives = batch * batch if denominator == "all-pairs" else batch * (batch - 1)
    return float(np.mean(np.diag(var)) / (off / negatives))


@pytest.mark.parametrize("denominator", ["all-pairs", "negatives"])
def test_csc_matches_numpy_reference_and_is_scale_free(denominator: str) -> None:
    scores = torch.randn(4, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = contrastive_score_consistency(scores, denominator)  # type: ignore[arg-type]
    assert got.item() == pytest.approx(csc_reference(scores.numpy(), denominator), rel=1e-12)
    assert contrastive_score_consistency(100 * scores, denominator).item() == pytest.approx(got.item(), rel=1e-12)


@pytest.mark.parametrize("shape", [(1, 3, 3), (4, 1, 1), (4, 3, 2), (4, 3)])
def test_csc_refuses_what_it_cannot_compute(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\[M,B,B\]"):
        contrastive_score_consistency(torch.ones(shape))


# ---------------------------------------------------------------- the four scores


def aosm_ref(x: torch.Tensor, mix: torch.Tensor, keep: list[int], tau: float) -> torch.Tensor:
    """Σ_j x_j [softmax(x/τ) U]_j over the kept positions only (U restricted to them)."""
    x = x[keep]
    return (x * (torch.softmax(x / tau, dim=0) @ mix[keep][:, keep])).sum()


def pooled(query: torch.Tensor, frames: torch.Tensor, temp: float) -> torch.Tensor:
    """softmax_i(<q, f_i>/temp)-weighted sum of the frames (GLIM, one query)."""
    return torch.softmax(frames @ query / temp, dim=0) @ frames


def reference_scores(model: GLCCL, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The four GLCCL scores from the equations (glccl_paper.md §3), pair by pair, pooled features materialised."""
    cfg, aosm = model.config, model.aosm
    tokens, mask, frames, frame_mask = batch
    tau = cfg.aosm_temperature
    eos, states = model.backbone.encode_text(tokens, mask)
    temporal = model.seq_transf(model.frame_features(frames), frame_mask)
    out = torch.zeros(4, len(tokens), len(frames))
    for a in range(len(tokens)):
        slots = [int(k) for k in mask[a].nonzero()] if cfg.padding_masks else list(range(tokens.shape[1]))
        t = F.normalize(eos[a], dim=0)
        w = F.normalize(states[a], dim=-1)
        for b in range(len(frames)):
            kept = [int(i) for i in frame_mask[b].nonzero()] if cfg.padding_masks else list(range(frames.shape[1]))
            f = temporal[b, kept]
            v = F.normalize(pooled(eos[a], f, cfg.pool_temperature), dim=0)
            u = F.normalize(torch.stack([pooled(states[a, k], f, cfg.pool_temperature) for k in range(len(w))]), dim=-1)
            out[0, a, b] = t @ model.sentence_video @ v
            out[1, a, b] = aosm_ref(w @ v, aosm.video_word.mix, slots, tau)
            out[2, a, b] = aosm_ref(u @ t, aosm.sentence_frame.mix, slots, tau)
            e = w @ model.word_frame @ u.t()  # [word k, word-guided frame j]
            r = torch.stack([aosm_ref(e[:, j], aosm.words_per_frame.mix, slots, tau) for j in range(len(w))])
            c = torch.stack([aosm_ref(e[k], aosm.frames_per_word.mix, slots, tau) for k in range(len(w))])
            out[3, a, b] = 0.5 * (
                aosm_ref(r, aosm.frame_aggregate.mix, slots, tau) + aosm_ref(c, aosm.word_aggregate.mix, slots, tau)
            )
    return out


@pytest.mark.parametrize("padding_masks", [False, True])
def test_scores_equal_an_independent_per_pair_loop(padding_masks: bool) -> None:
    model = tiny(padding_masks=padding_masks)
    batch = make_batch(4, seed=7)
    with torch.no_grad():
        got = model.scores(*encode(model, batch))
        want = reference_scores(model, batch)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.score(*encode(model, batch)), want.mean(0), rtol=1e-4, atol=1e-5)
        video_only = tiny("glccl-video-only", padding_masks=padding_masks)
        video_only.load_state_dict(model.state_dict(), strict=False)  # same backbone, seqTransf and G
        torch.testing.assert_close(video_only.score(*encode(video_only, batch)), want[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "padding_masks"), [("glccl", False), ("glccl", True), ("glccl-video-only", False)])
def test_score_chunk_invariance(name: str, padding_masks: bool) -> None:
    model = tiny(name, padding_masks=padding_masks)
    with torch.no_grad():
        text, video = encode(model, make_batch(7, seed=1))
        full = model.score(text, video)
        assert full.shape == (7, 7)
        for cut_t, cut_v in [([1, 4], [2, 3]), ([3], [6]), ([2, 5], [1, 5])]:
            for a, b in zip([0, *cut_t], [*cut_t, 7]):
                for c, d in zip([0, *cut_v], [*cut_v, 7]):
                    part = model.score({k: x[a:b] for k, x in text.items()}, {k: x[c:d] for k, x in video.items()})
                    torch.testing.assert_close(part, full[a:b, c:d], rtol=1e-5, atol=1e-5)


def test_padding_switch_official_uses_padding_and_masked_ignores_it() -> None:
    """Official (no masks): garbage in padded frames and token slots changes the scores; padding_masks removes it."""
    clean, dirty = make_batch(5, seed=2), make_batch(5, seed=2, garbage=True)
    for padding_masks in (False, True):
        model = tiny(padding_masks=padding_masks)
        with torch.no_grad():
            same = torch.allclose(model.scores(*encode(model, clean)), model.scores(*encode(model, dirty)), atol=1e-5)
        assert same is padding_masks


# ---------------------------------------------------------------- losses, removed terms, training


def test_losses_are_infonce_on_the_mean_plus_weighted_csc() -> None:
    model = tiny(csc_weight=0.3)
    with torch.no_grad():
        text, video = encode(model, make_batch(4, seed=3))
        parts = model.scores(text, video)
        losses = model.losses(text, video, torch.arange(4))
        logits = model.logit_scale() * parts.mean(0)
        target = torch.arange(4)
        nce = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    assert list(losses) == ["nce", "csc"]
    torch.testing.assert_close(losses["nce"], nce)
    assert losses["csc"].item() == pytest.approx(0.3 * csc_reference(parts.double().numpy(), "all-pairs"), rel=1e-5)


@pytest.mark.parametrize(("name", "overrides"), [("glccl-no-csc", {}), ("glccl", {"csc_weight": 0.0})])
def test_removed_csc_is_never_computed(name: str, overrides: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glccl_module, "contrastive_score_consistency", _raise("contrastive_score_consistency"))
    model = tiny(name, **overrides)
    text, video = encode(model, make_batch(4, seed=4))
    assert list(model.losses(text, video, torch.arange(4))) == ["nce"]


def test_video_only_builds_and_runs_no_multi_grained_part(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny("glccl-video-only")
    assert model.aosm is None and model.word_frame is None
    assert not any(n.startswith(("aosm.", "word_frame")) for n, _ in model.named_parameters())
    monkeypatch.setattr(glccl_module, "contrastive_score_consistency", _raise("contrastive_score_consistency"))
    with torch.no_grad():
        text, video = encode(model, make_batch(3, seed=5))
        assert set(text) == {"eos", "text", "text_g"}
        assert model.scores(text, video).shape == (1, 3, 3)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_training_reaches_the_head_and_lowers_the_loss(name: str) -> None:
    model = tiny(name).train()
    model.backbone.requires_grad_(False)  # the head is under test; the backbone's backward would dominate the time
    batch = make_batch(4, seed=8)
    optimiser = torch.optim.Adam(model.head_parameters(), lr=3e-4)
    totals = []
    for _ in range(4):
        losses = model.losses(*encode(model, batch), torch.arange(4))
        assert list(losses) == NAMES[name]
        total = sum(losses.values())
        optimiser.zero_grad()
        total.backward()
        if not totals:
            for p in model.head_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
        optimiser.step()
        totals.append(total.item())
    assert all(math.isfinite(x) for x in totals) and totals[-1] < totals[0]


# ---------------------------------------------------------------- cost


@pytest.mark.parametrize("name", ["glccl", "glccl-video-only"])
def test_per_pair_macs_equal_the_formula(name: str) -> None:
    model = tiny(name, max_words=8)
    block = efficiency.efficiency_block(model, frames=4, words=8)  # what `tvbench efficiency` reports
    multi = name == "glccl"
    assert block["per_pair_macs"] == glccl_pair_macs(model.embed_dim, 8, 4, multi)
    with efficiency.measuring(model):
        probe = efficiency.make_probe(model, frames=4, words=8)
        costs = efficiency.pair_costs(model.score, probe.text_feats, probe.video_feats)
    assert costs["score_per_text"] == costs["score_per_video"] == 0  # everything per item is done in encode_*


def test_pair_cost_at_the_paper_setting_against_xclip() -> None:
    dim, words, frames = 512, 32, 12
    assert glccl_pair_macs(dim, words, frames) == 492_956
    xclip = xclip_dot_macs(dim, words, frames) + xclip_mixing_macs(words, frames)
    assert glccl_pair_macs(dim, words, frames) / xclip == pytest.approx(2.06, abs=0.01)
    assert glccl_pair_macs(dim, words, frames, multi_grained=False) == 2 * frames * dim + frames**2 + frames


# ---------------------------------------------------------------- presets and the engine


def test_presets_are_valid_and_merged_for_glccl_only() -> None:
    folder = Path(glccl_module.__file__).parent / "presets" / "glccl"
    assert {p.stem for p in folder.glob("*.json")} == {"msrvtt-vitb32", "didemo-vitb32", "synthvtt"}
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        assert set(data) == {"model", "train", "notes"} and "README" in data["notes"]
        assert not {"multi_grained", "use_csc"} & set(data["model"])  # presets never change the ablation structure
        for name in NAMES:
            model_spec(name).make_config(**data["model"])
    assert package_preset_path("glccl", "msrvtt-vitb32") == folder / "msrvtt-vitb32.json"
    didemo = resolve(load_preset("didemo-vitb32"), "glccl-no-csc")
    assert (didemo.model["max_words"], didemo.train.max_words, didemo.train.epochs, didemo.train.batch_size) == (
        64,
        64,
        20,
        64,
    )
    assert resolve(load_preset("msrvtt-vitb32"), "glccl").model["csc_weight"] == 0.5
    assert not package_preset_path("xclip", "msrvtt-vitb32").exists()  # other baselines are untouched


@pytest.mark.slow
def test_engine_trains_and_evaluates_glccl_on_synthvtt(
    tmp_path: Path,
    synth_root: Path,  # noqa: F811 (fixture)
    synth_clip_weights: Path,  # noqa: F811 (fixture)
) -> None:
    """`train_run` merges baselines/presets/glccl/synthvtt.json, takes a step, evaluates, and records CSC."""
    sets = ["batch_size=8", "max_frames=2", "eval_batch_size=16", "epochs=1", "temporal_layers=1"]
    record_dir = train_run(
        "synthvtt",
        "glccl",
        0,
        tmp_path / "glccl",
        sets,
        data_root=synth_root,
        clip_weights=str(synth_clip_weights),
        max_steps=1,
        progress=False,
    )
    record = load_run(record_dir)
    assert record.protocol["loss_terms"] == ["nce", "csc"]
    assert record.config["model"]["csc_weight"] == 0.5
    assert all(math.isfinite(record.metrics[d]["R@1"]) for d in ("t2v", "v2t"))
