"""GLSCL: functional pieces on hand-computed cases, the model contract, gradients, and every ablation."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from fixtures_synth import synth_cache, synth_clip_weights, synth_root  # noqa: F401 (pytest fixtures)

import glscl.model as glscl_model
from benchmark.engine.losses import symmetric_infonce
from benchmark.engine.train import train_run
from benchmark.registry import build_model, config_to_json, model_spec
from benchmark.runs import load_run
from glscl.functional import (
    gim_weights,
    global_interaction,
    inter_consistency_loss,
    intra_diversity_loss,
    local_similarity,
)

TINY = {
    "backbone": "tvbench-tiny",
    "clip_weights": "random",
    "num_queries": 4,
    "decoder_heads": 4,
    "decoder_ff": 256,
    "temporal_layers": 1,
}
ABLATIONS = {
    "glscl": ["nce", "icl", "idl"],
    "glscl-no-icl": ["nce", "idl"],
    "glscl-no-idl": ["nce", "icl"],
    "glscl-no-aux": ["nce"],
    "glscl-global-only": ["nce"],
    "glscl-local-only": ["nce", "icl", "idl"],
}
LOSS_FUNCTIONS = {"icl": "inter_consistency_loss", "idl": "intra_diversity_loss"}


def tiny(name: str = "glscl", **overrides: object) -> glscl_model.GLSCL:
    torch.manual_seed(0)
    return build_model(name, **{**TINY, **overrides})


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    """4 videos of up to 4 frames (two padded) and 4 captions of varying length (SOT ... EOT, zero padding)."""
    gen = torch.Generator().manual_seed(1)
    frames = torch.randn(4, 4, 3, 64, 64, generator=gen)
    frame_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]])
    tokens = torch.zeros(4, 8, dtype=torch.long)
    for i, length in enumerate((3, 5, 8, 4)):
        tokens[i, 0] = 49406
        tokens[i, 1 : length - 1] = torch.randint(1, 1000, (length - 2,), generator=gen)
        tokens[i, length - 1] = 49407
    return {"frames": frames, "frame_mask": frame_mask, "tokens": tokens, "mask": (tokens != 0).long()}


def encode(model: glscl_model.GLSCL, batch: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    return model.encode_text(batch["tokens"], batch["mask"]), model.encode_video(batch["frames"], batch["frame_mask"])


# ---------------------------------------------------------------- functional core, hand-computed cases


def test_gim_masked_frame_after_vs_before_softmax() -> None:
    # t = [1,0]; frames f1=[2,0], f2=[0,1], f3=[0,3] padded; temp 2 -> logits [1, 0, 0].
    text = torch.tensor([[1.0, 0.0]])
    frames = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]]])
    mask = torch.tensor([[1, 1, 0]])
    e = math.e
    after, _ = gim_weights(text, frames, mask, 2.0, "after-softmax")
    before, _ = gim_weights(text, frames, mask, 2.0, "before-softmax")
    # Official: the padded frame stays in the denominator: [e/(e+2), 1/(e+2), 0] = [0.57612, 0.21194, 0].
    assert torch.allclose(after[0, 0], torch.tensor([e / (e + 2), 1 / (e + 2), 0.0]))
    assert torch.allclose(after[0, 0], torch.tensor([0.57612, 0.21194, 0.0]), atol=1e-5)
    # Corrected: [e/(e+1), 1/(e+1), 0] = [0.73106, 0.26894, 0]; the ratio is (e+2)/(e+1) on every valid frame.
    assert torch.allclose(before[0, 0], torch.tensor([0.73106, 0.26894, 0.0]), atol=1e-5)
    assert torch.allclose(before[0, 0, :2] / after[0, 0, :2], torch.full((2,), (e + 2) / (e + 1)))
    # v is [2 w1, w2] in both cases up to that factor, so Sim1 = 2e / sqrt(4e^2 + 1) = 0.98350 for both.
    expected = 2 * e / math.sqrt(4 * e * e + 1)
    for mode in ("after-softmax", "before-softmax"):
        sim = global_interaction(text, frames, mask, 2.0, mode)
        assert sim.shape == (1, 1)
        assert sim.item() == pytest.approx(expected, abs=1e-6)
        assert sim.item() == pytest.approx(0.98350, abs=1e-5)
    # Were the padded frame pooled, w = [e, 1, 1]/(e+2), v ~ [2e, 1+3] and Sim1 = 2e/sqrt(4e^2+16) = 0.80547.
    unmasked = global_interaction(text, frames, torch.ones(1, 3), 2.0)
    assert unmasked.item() == pytest.approx(0.80547, abs=1e-5)


def test_gim_temperature_sharpens_and_all_padded_video_scores_zero() -> None:
    text = torch.tensor([[1.0, 0.0]])
    frames = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]])
    mask = torch.tensor([[1, 1], [0, 0]])
    cold = global_interaction(text, frames, mask, 1e-3)
    hot = global_interaction(text, frames, mask, 1e6)
    assert cold[0, 0].item() == pytest.approx(1.0, abs=1e-6)  # argmax frame f1 = [2,0]
    assert hot[0, 0].item() == pytest.approx(2 / math.sqrt(5), abs=1e-5)  # mean pooling: v ~ [1, 0.5]
    for mode in ("after-softmax", "before-softmax"):
        assert global_interaction(text, frames, mask, 1.0, mode)[0, 1].item() == 0.0


def test_local_similarity_matches_only_same_query_index() -> None:
    text = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    video = torch.tensor([[[3.0, 4.0], [0.0, -1.0]], [[0.0, 5.0], [7.0, 0.0]]])
    sim = local_similarity(text, video)
    # video 0: cos q1 = 0.6, cos q2 = -1 -> -0.2; video 1: cos q1 = 0, cos q2 = 0 -> 0 (cross-index pairs ignored).
    assert torch.allclose(sim, torch.tensor([[-0.2, 0.0]]), atol=1e-6)
    unit = torch.nn.functional.normalize
    assert torch.allclose(local_similarity(unit(text, dim=-1), unit(video, dim=-1), unit=True), sim, atol=1e-7)
    with pytest.raises(ValueError, match="share"):
        local_similarity(text, torch.zeros(1, 3, 2))


def test_intra_diversity_loss_hand_cases() -> None:
    # B=1, Q=2, cos = 0.95: G_01 = 0.95 -> 2 * max(0, 0.1 + 0.95 - 1) / (2*1) * 2 pairs = 0.1.
    close = torch.tensor([[[1.0, 0.0], [0.95, math.sqrt(1 - 0.95**2)]]])
    assert intra_diversity_loss(close).item() == pytest.approx(0.1, abs=1e-6)
    # Batch mean of the Gram: cos 1.0 and cos 0.9 average to 0.95 -> 0.1 again (concept norms do not matter).
    pair = torch.tensor([[[1.0, 0.0], [2.0, 0.0]], [[1.0, 0.0], [0.9, math.sqrt(1 - 0.81)]]])
    assert intra_diversity_loss(pair).item() == pytest.approx(0.1, abs=1e-6)
    # Cos 1.0 and 0.0 average to 0.5, below 1 - margin: no loss.
    assert intra_diversity_loss(torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])).item() == 0.0
    # Q=3, two identical queries: pairs (0,1),(1,0) each give 2*margin; the others 0; / (3*2).
    three = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert intra_diversity_loss(three).item() == pytest.approx(0.4 / 6, abs=1e-6)
    assert intra_diversity_loss(three, margin=0.5).item() == pytest.approx(2.0 / 6, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2 queries"):
        intra_diversity_loss(torch.ones(2, 1, 3))


def icl_case() -> tuple[torch.Tensor, torch.Tensor]:
    video = torch.tensor(
        [[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]]
    )  # B=3, Q=2, D=2
    text = torch.tensor([[[1.0, 0.0], [3.0, 0.0]], [[0.0, 2.0], [0.0, 1.0]], [[1.0, 0.0], [-1.0, 0.0]]])
    return video, text


def test_inter_consistency_loss_hand_cases_both_normalisations() -> None:
    video, text = icl_case()
    # Means over the batch: q1 equal; q2 video [1/3, 2/3] vs text [0, 1/3] -> MSE = (1/9 + 1/9) / 4 = 1/18.
    # Paired cosines summed over the batch: q1 = 3, q2 = 0 + 1 - 1 = 0.
    mse = 1 / 18
    # "queries" (official): H = [3/2, 0] -> (0.75)^2 + (0.75)^2 = 1.125.
    assert inter_consistency_loss(video, text, 0.1).item() == pytest.approx(mse + 0.1 * 1.125, abs=1e-6)
    # "batch": H = [1, 0] -> 0.0625 + 0.5625 = 0.625.
    got = inter_consistency_loss(video, text, 0.1, normalize_by="batch").item()
    assert got == pytest.approx(mse + 0.1 * 0.625, abs=1e-6)
    assert inter_consistency_loss(video, text, 0.0).item() == pytest.approx(mse, abs=1e-7)
    assert inter_consistency_loss(video, text, 1.0, target=0.0, mse_weight=0.0).item() == pytest.approx(2.25, abs=1e-6)
    with pytest.raises(ValueError, match="weight 0"):
        inter_consistency_loss(video, text, 0.0, mse_weight=0.0)
    with pytest.raises(ValueError, match="normalize_by"):
        inter_consistency_loss(video, text, 0.1, normalize_by="items")  # type: ignore[arg-type]


# ---------------------------------------------------------------- model: score, contract, switches


def naive_score(text: dict, video: dict, temp: float, lam: float, before_softmax: bool) -> torch.Tensor:
    """Per-pair loop: explicit pooled video vector for every (text, video), then cosines."""
    n_text, n_video = text["eos"].shape[0], video["frames"].shape[0]
    out = torch.empty(n_text, n_video)
    for a in range(n_text):
        t = text["eos"][a]
        for b in range(n_video):
            f, m = video["frames"][b], video["frame_mask"][b].bool()
            logits = f @ t / temp
            if before_softmax:
                w = torch.zeros_like(logits)
                w[m] = torch.softmax(logits[m], dim=0)
            else:
                w = torch.softmax(logits, dim=0) * m
            v = (w[:, None] * f).sum(0)
            sim1 = torch.dot(t, v) / (t.norm() * v.norm())
            tq, vq = text["concepts"][a], video["concepts"][b]
            sim2 = torch.stack([torch.dot(tq[q], vq[q]) / (tq[q].norm() * vq[q].norm()) for q in range(len(tq))])
            out[a, b] = sim1 + lam * sim2.mean()
    return out


@pytest.fixture(scope="module")
def model() -> glscl_model.GLSCL:
    """One default tiny GLSCL shared by the tests that only change call-time switches (via `configured`)."""
    return tiny()


@contextlib.contextmanager
def configured(model: glscl_model.GLSCL, **changes: object) -> Iterator[glscl_model.GLSCL]:
    """Temporarily change config fields that are read at call time (switches that build nothing)."""
    original = model.config
    model.config = dataclasses.replace(original, **changes)
    try:
        yield model
    finally:
        model.config = original


@pytest.mark.parametrize("gim_mask", ["after-softmax", "before-softmax"])
def test_score_equals_naive_per_pair_and_is_chunk_invariant(
    model: glscl_model.GLSCL, batch: dict, gim_mask: str
) -> None:
    with configured(model.eval(), gim_mask=gim_mask, temp=0.7), torch.no_grad():
        text, video = encode(model, batch)
        full = model.score(text, video)
        naive = naive_score(text, video, 0.7, 0.5, gim_mask == "before-softmax")
        assert full.shape == (4, 4)
        assert torch.allclose(full, naive, atol=1e-5)
        for tc, vc in ((1, 1), (3, 2), (2, 3)):
            rows = []
            for a in range(0, 4, tc):
                t_chunk = {k: x[a : a + tc] for k, x in text.items()}
                cols = [model.score(t_chunk, {k: x[b : b + vc] for k, x in video.items()}) for b in range(0, 4, vc)]
                rows.append(torch.cat(cols, dim=1))
            assert torch.allclose(torch.cat(rows), full, atol=1e-6)


def test_features_hold_item_dim_first_and_per_branch_only(model: glscl_model.GLSCL, batch: dict) -> None:
    with torch.no_grad():
        text, video = encode(model.eval(), batch)
        assert set(text) == {"eos", "concepts"} and set(video) == {"frames", "frame_mask", "frame_gram", "concepts"}
        assert all(x.shape[0] == 4 for x in [*text.values(), *video.values()])
        assert video["concepts"].shape == text["concepts"].shape == (4, 4, 128)
        for concepts in (video["concepts"], text["concepts"]):  # stored unit-norm: score() never normalises again
            torch.testing.assert_close(concepts.norm(dim=-1), torch.ones(4, 4))
        g_text, g_video = encode(tiny("glscl-global-only").eval(), batch)
        assert set(g_text) == {"eos"} and "concepts" not in g_video
        l_text, l_video = encode(tiny("glscl-local-only").eval(), batch)
        assert set(l_text) == {"concepts"} and set(l_video) == {"concepts"}


def test_decoder_key_padding_switch(model: glscl_model.GLSCL, batch: dict) -> None:
    """Off (official #7): padded frames change the video concepts; on: they do not."""
    changed = batch["frames"].clone()
    changed[1, 2:] = torch.randn(2, 3, 64, 64)
    for enabled in (False, True):
        with configured(model.eval(), decoder_key_padding_mask=enabled), torch.no_grad():
            a = model.encode_video(batch["frames"], batch["frame_mask"])["concepts"]
            b = model.encode_video(changed, batch["frame_mask"])["concepts"]
        assert torch.allclose(a[1], b[1], atol=1e-5) is enabled
        assert torch.allclose(a[0], b[0])


def test_decoder_structure_switches(model: glscl_model.GLSCL) -> None:
    layers = model.local.decoder.layers
    assert isinstance(layers[0], torch.nn.TransformerDecoderLayer) and len(layers) == 3
    assert all(torch.equal(p0, p1) for p0, p1 in zip(layers[0].parameters(), layers[2].parameters(), strict=True))
    assert model.local.text_queries is None and model.local.text_decoder is None
    assert 0.0 <= model.local.queries.min() and model.local.queries.max() < 1.0
    fresh = tiny(
        decoder_identical_init=False, decoder_layer="cross-attention", share_queries=False, share_decoder=False
    )
    fl = fresh.local.decoder.layers
    assert not torch.equal(fl[0].attn.in_proj_weight, fl[1].attn.in_proj_weight)
    assert not hasattr(fl[0], "self_attn") and not hasattr(fl[0], "linear1")
    assert fresh.local.text_queries is not None and fresh.local.text_decoder is not None
    names = {n for n, _ in fresh.named_parameters()}
    assert "local.text_queries" in names and any(n.startswith("local.text_decoder.") for n in names)
    # No parameter tensor is registered twice (safetensors refuses shared storage).
    state = model.state_dict()
    assert len({t.data_ptr() for t in state.values()}) == len(state)


def test_config_validation_terms_and_json() -> None:
    def config(name: str = "glscl", **overrides: object) -> glscl_model.GLSCLConfig:
        return model_spec(name).make_config(**{**TINY, **overrides})

    with pytest.raises(ValueError, match="gim_mask"):
        config(gim_mask="never")
    with pytest.raises(ValueError, match="use_icl=false"):
        config(use_local=False)
    with pytest.raises(ValueError, match="both be false"):
        config("glscl-global-only", use_global=False)
    with pytest.raises(ValueError, match="num_queries >= 2"):
        config(num_queries=1)
    assert config("glscl-no-idl", num_queries=1).loss_terms() == ["nce", "icl"]
    assert config(alpha=0.0, beta=0.0, icl_mse_weight=0.0).loss_terms() == ["nce"]
    assert config(beta=0.0).loss_terms() == ["nce", "icl", "idl"]  # the unweighted MSE part remains (#6)
    # Ablation names win over any loss weight a preset or --set brings.
    for name, terms in ABLATIONS.items():
        assert config(name, alpha=0.5, beta=0.5).loss_terms() == terms
    cfg = config_to_json(config("glscl-no-aux"))
    assert cfg["use_icl"] is False and cfg["gim_mask"] == "after-softmax" and cfg["icl_normalize_by"] == "queries"


# ---------------------------------------------------------------- gradients and ablations


@pytest.mark.parametrize("term", ["nce", "icl", "idl"])
def test_each_term_alone_reaches_queries_and_decoder(model: glscl_model.GLSCL, batch: dict, term: str) -> None:
    model.train().zero_grad(set_to_none=True)
    model.backbone.requires_grad_(False)  # only the head is under test; keeps the backward cheap
    with configured(model, idl_margin=2.0):  # margin 2 keeps every IDL hinge active on a random model
        text, video = encode(model, batch)
        model.losses(text, video, torch.arange(4))[term].backward()
    first, last = model.local.decoder.layers[0], model.local.decoder.layers[-1]
    assert model.local.queries.grad.abs().sum() > 0
    for layer in (first, last):
        assert layer.self_attn.in_proj_weight.grad.abs().sum() > 0
        assert layer.multihead_attn.in_proj_weight.grad.abs().sum() > 0
        assert layer.linear2.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_text_side_idl_and_same_video_positives(model: glscl_model.GLSCL, batch: dict) -> None:
    with torch.no_grad():
        text, video = encode(model.eval(), batch)
        with configured(model, idl_margin=2.0):
            single = model.losses(text, video, torch.arange(4))["idl"]
        with configured(model, idl_margin=2.0, idl_modalities="both"):
            both = model.losses(text, video, torch.arange(4))["idl"]
        extra = model.config.alpha * intra_diversity_loss(text["concepts"], 2.0)
        assert torch.allclose(both, single + extra)
        ids = torch.tensor([0, 0, 1, 2])
        sim = model.score(text, video)
        diag = model.losses(text, video, ids)["nce"]
        with configured(model, nce_same_video_positives=True):
            multi = model.losses(text, video, ids)["nce"]
        assert torch.allclose(diag, symmetric_infonce(sim, model.logit_scale()))
        assert torch.allclose(multi, symmetric_infonce(sim, model.logit_scale(), ids))
        assert not torch.allclose(diag, multi)


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_terms_graph_and_training(batch: dict, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny(name, decoder_dropout=0.0, alpha=0.05, beta=0.1)  # presets never turn a removed term back on
    expected = ABLATIONS[name]
    assert model.active_loss_terms() == expected
    if name == "glscl-global-only":
        assert model.local is None and not any(n.startswith("local.") for n, _ in model.named_parameters())
        monkeypatch.setattr(glscl_model, "local_similarity", _raise("local_similarity"))
    if name == "glscl-local-only":
        monkeypatch.setattr(glscl_model, "global_interaction", _raise("global_interaction"))
    for term, fn in LOSS_FUNCTIONS.items():
        if term not in expected:
            monkeypatch.setattr(glscl_model, fn, _raise(fn))
    model.backbone.requires_grad_(False)  # the head is under test; the backbone's backward would dominate the time
    optimiser = torch.optim.Adam(model.head_parameters(), lr=3e-4)
    totals = []
    for _ in range(4):
        text, video = encode(model, batch)
        losses = model.losses(text, video, torch.arange(4))
        assert sorted(losses) == sorted(expected)
        total = sum(losses.values())
        assert torch.isfinite(total)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        totals.append(total.item())
    assert totals[-1] < totals[0]
    with torch.no_grad():
        text, video = encode(model.eval(), batch)
        assert torch.isfinite(model.score(text, video)).all()


def test_zero_weight_removes_term_without_calling_it(
    model: glscl_model.GLSCL, batch: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for fn in LOSS_FUNCTIONS.values():
        monkeypatch.setattr(glscl_model, fn, _raise(fn))
    with configured(model.eval(), alpha=0.0, beta=0.0, icl_mse_weight=0.0), torch.no_grad():
        assert model.active_loss_terms() == ["nce"]
        text, video = encode(model, batch)
        assert list(model.losses(text, video, torch.arange(4))) == ["nce"]


def _raise(name: str) -> Callable[..., torch.Tensor]:
    """A stand-in for a loss function that fails the test when called."""

    def fail(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError(f"{name} was called although its term is removed")

    return fail


def test_presets_are_valid_configs() -> None:
    folder = Path(glscl_model.__file__).parent / "presets"
    names = {p.stem for p in folder.glob("*.json")}
    expected = {"msrvtt-vitb32", "msrvtt-vitb16", "msvd-vitb32", "didemo-vitb32", "lsmdc-vitb32", "activitynet-vitb32"}
    assert expected | {"synthvtt"} == names
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        assert set(data) == {"model", "train", "notes"} and data["notes"]
        assert not any(k.startswith("use_") for k in data["model"])  # presets never change the ablation structure
        for name in ABLATIONS:
            model_spec(name).make_config(**data["model"])
    lsmdc = json.loads((folder / "lsmdc-vitb32.json").read_text())["model"]
    assert (lsmdc["temp"], lsmdc["alpha"], lsmdc["beta"]) == (5.0, 0.01, 0.005)


# ---------------------------------------------------------------- through the training engine on a tiny SynthVTT


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_engine_trains_and_evaluates_on_synthvtt(
    tmp_path: Path,
    synth_root: Path,  # noqa: F811 (fixture)
    synth_clip_weights: Path,  # noqa: F811 (fixture)
    name: str,
) -> None:
    """`train_run` merges glscl/presets/synthvtt.json, takes a step, evaluates, and records the active terms."""
    sets = ["batch_size=8", "max_frames=2", "eval_batch_size=16", "epochs=1", "decoder_ff=64", "decoder_layers=1"]
    record_dir = train_run(
        "synthvtt",
        name,
        0,
        tmp_path / name,
        sets,
        data_root=synth_root,
        clip_weights=str(synth_clip_weights),
        max_steps=1,
        progress=False,
    )
    record = load_run(record_dir)
    assert record.method == name
    assert record.protocol["loss_terms"] == ABLATIONS[name]
    assert record.config["model"]["num_queries"] == 4  # glscl/presets/synthvtt.json was merged
    assert all(math.isfinite(record.metrics[d]["R@1"]) for d in ("t2v", "v2t"))
