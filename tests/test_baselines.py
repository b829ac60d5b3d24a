"""Reference baselines: contract shapes, chunk invariance, masking, independent per-pair references, training, FLOPs."""

from __future__ import annotations

import functools
import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import baselines  # noqa: F401  (registers the models)
from baselines.xclip import XClipHead, xclip_dot_macs, xclip_mixing_macs
from baselines.xpool import XPoolHead, xpool_folded_pair_macs, xpool_pair_macs
from benchmark.engine import efficiency
from benchmark.registry import build_model, config_to_json, list_models, model_spec

NAMES = ["clip-zeroshot", "clip4clip-meanp", "clip4clip-seqtransf", "xpool", "xclip"]
TRAINABLE = [n for n in NAMES if n != "clip-zeroshot"]
SOS, EOS = 49406, 49407
FRAMES, WORDS, SIZE = 4, 10, 64


def make_batch(n: int, seed: int, garbage: bool = False) -> tuple[torch.Tensor, ...]:
    """n texts and n videos with varying lengths; padding holds zeros, or random garbage when `garbage`."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(n, WORDS, dtype=torch.long)
    mask = torch.zeros(n, WORDS, dtype=torch.long)
    frames = torch.randn(n, FRAMES, 3, SIZE, SIZE, generator=gen)
    frame_mask = torch.zeros(n, FRAMES, dtype=torch.long)
    for i in range(n):
        length = 3 + i % (WORDS - 2)
        tokens[i, 0], tokens[i, length - 1] = SOS, EOS
        tokens[i, 1 : length - 1] = torch.randint(1, SOS, (length - 2,), generator=gen)
        mask[i, :length] = 1
        frame_mask[i, : 1 + i % FRAMES] = 1
    if garbage:
        noise = torch.Generator().manual_seed(seed + 1000)
        tokens = torch.where(mask.bool(), tokens, torch.randint(1, SOS, tokens.shape, generator=noise))
        junk = 50 * torch.randn(frames.shape, generator=noise)
        frames = torch.where(frame_mask.bool()[:, :, None, None, None], frames, junk)
    else:
        frames = frames * frame_mask[:, :, None, None, None]
    return tokens, mask, frames, frame_mask


def build(name: str, seed: int = 0, **overrides: object) -> torch.nn.Module:
    """A tiny random model with its head moved off its identity initialisation (so folding or mixing bugs show)."""
    torch.manual_seed(seed)
    model = build_model(name, backbone="tvbench-tiny", clip_weights="random", **overrides)
    with torch.no_grad():
        for p in model.head_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@functools.cache
def shared(name: str, **overrides: object) -> torch.nn.Module:
    """One evaluation-only model per configuration, shared by the tests that do not change it."""
    return build(name, **overrides)


@pytest.fixture(scope="module", params=NAMES)
def model_and_batch(request: pytest.FixtureRequest) -> tuple[torch.nn.Module, dict, dict]:
    model = shared(request.param)
    tokens, mask, frames, frame_mask = make_batch(7, seed=1)
    with torch.no_grad():
        return model, model.encode_text(tokens, mask), model.encode_video(frames, frame_mask)


def test_registered_with_descriptions_and_json_configs() -> None:
    assert set(NAMES) <= set(list_models())
    for name in NAMES:
        spec = model_spec(name)
        assert spec.description and "\n" not in spec.description
        assert json.loads(json.dumps(config_to_json(spec.make_config())))["clip_weights"] is None
    assert model_spec("clip4clip-seqtransf").make_config().temporal == "seqTransf"
    assert model_spec("clip4clip-meanp").make_config().temporal == "meanP"


def test_shapes(model_and_batch: tuple) -> None:
    model, text, video = model_and_batch
    assert all(v.shape[0] == 7 for v in [*text.values(), *video.values()])
    with torch.no_grad():
        assert model.score(text, video).shape == (7, 7)
        assert model.score(text, {k: v[:3] for k, v in video.items()}).shape == (7, 3)


def test_score_chunk_invariance(model_and_batch: tuple) -> None:
    model, text, video = model_and_batch
    with torch.no_grad():
        full = model.score(text, video)
        gen = torch.Generator().manual_seed(3)
        for _ in range(3):
            cut_t = sorted(torch.randperm(6, generator=gen)[:2].add(1).tolist())
            cut_v = sorted(torch.randperm(6, generator=gen)[:2].add(1).tolist())
            for a, b in zip([0, *cut_t], [*cut_t, 7]):
                for c, d in zip([0, *cut_v], [*cut_v, 7]):
                    part = model.score({k: v[a:b] for k, v in text.items()}, {k: v[c:d] for k, v in video.items()})
                    torch.testing.assert_close(part, full[a:b, c:d], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "causal_only"), [(n, False) for n in NAMES] + [("clip4clip-meanp", True), ("xclip", True)]
)
def test_padding_is_ignored(name: str, causal_only: bool) -> None:
    """Garbage in padded tokens and frames leaves every score unchanged (also with a causal-only text tower)."""
    model = shared(name, text_padding_mask=False) if causal_only else shared(name)
    with torch.no_grad():
        clean_t, clean_m, clean_f, clean_fm = make_batch(5, seed=2)
        dirty_t, dirty_m, dirty_f, dirty_fm = make_batch(5, seed=2, garbage=True)
        assert not torch.equal(clean_t, dirty_t) and not torch.equal(clean_f, dirty_f)
        clean = model.score(model.encode_text(clean_t, clean_m), model.encode_video(clean_f, clean_fm))
        dirty = model.score(model.encode_text(dirty_t, dirty_m), model.encode_video(dirty_f, dirty_fm))
    torch.testing.assert_close(clean, dirty, rtol=1e-5, atol=1e-5)


def test_xclip_released_word_handling_uses_padding() -> None:
    """mask_words=False reproduces the released code: padded word positions then change the score."""
    model = build("xclip", mask_words=False)
    with torch.no_grad():
        video = model.encode_video(*make_batch(4, seed=2)[2:])
        clean = model.score(model.encode_text(*make_batch(4, seed=2)[:2]), video)
        dirty = model.score(model.encode_text(*make_batch(4, seed=2, garbage=True)[:2]), video)
    assert not torch.allclose(clean, dirty)


def test_zero_shot_is_cosine_of_mean_normalised_frames() -> None:
    model = shared("clip-zeroshot")
    assert model.trainable is False and model.head_parameters() == []
    tokens, mask, frames, frame_mask = make_batch(4, seed=4)
    with torch.no_grad():
        text, video = model.encode_text(tokens, mask), model.encode_video(frames, frame_mask)
        got = model.score(text, video)
        assert torch.isfinite(batch_loss(model, (tokens, mask, frames, frame_mask)))
        eos, _ = model.backbone.encode_text(tokens, mask)
        feats = model.frame_features(frames)
    for i in range(4):
        for j in range(4):
            kept = F.normalize(feats[j, : int(frame_mask[j].sum())], dim=-1)
            want = F.cosine_similarity(eos[i], kept.mean(0), dim=0)
            torch.testing.assert_close(got[i, j], want, rtol=1e-5, atol=1e-6)


def test_seqtransf_pools_the_temporal_features() -> None:
    model = shared("clip4clip-seqtransf")
    assert len(model.seq_transf.blocks) == 4
    tokens, mask, frames, frame_mask = make_batch(3, seed=5)
    with torch.no_grad():
        got = model.score(model.encode_text(tokens, mask), model.encode_video(frames, frame_mask))
        eos, _ = model.backbone.encode_text(tokens, mask)
        contextual = model.seq_transf(model.frame_features(frames), frame_mask)
    for i in range(3):
        for j in range(3):
            kept = F.normalize(contextual[j, : int(frame_mask[j].sum())], dim=-1)
            torch.testing.assert_close(
                got[i, j], F.cosine_similarity(eos[i], kept.mean(0), dim=0), rtol=1e-5, atol=1e-6
            )


def xpool_pair(head: XPoolHead, text: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """X-Pool for one (text, valid frames) pair from the equations: W_o unfolded, an explicit loop over heads."""
    heads = head.heads
    q = head.query(head.norm_in(text)).chunk(heads)
    k = head.key(head.norm_in(frames)).chunk(heads, dim=-1)
    v = head.value(head.norm_in(frames)).chunk(heads, dim=-1)
    parts = [v[h].t() @ torch.softmax(k[h] @ q[h] / q[h].numel() ** 0.5, dim=0) for h in range(heads)]
    o = head.norm_attn(head.out(torch.cat(parts)))
    z = head.norm_out(o + head.proj(o))
    return F.cosine_similarity(text, z, dim=0)


@pytest.mark.parametrize("heads", [1, 2])
def test_xpool_matches_per_pair_reference(heads: int) -> None:
    model = shared("xpool", heads=heads)
    tokens, mask, frames, frame_mask = make_batch(4, seed=6)
    with torch.no_grad():
        got = model.score(model.encode_text(tokens, mask), model.encode_video(frames, frame_mask))
        eos, _ = model.backbone.encode_text(tokens, mask)
        feats = model.frame_features(frames)
        for i in range(4):
            for j in range(4):
                want = xpool_pair(model.head, eos[i], feats[j, : int(frame_mask[j].sum())])
                torch.testing.assert_close(got[i, j], want, rtol=1e-4, atol=1e-5)


def aosm_ref(x: torch.Tensor, mix: torch.Tensor, keep: list[int], tau: float) -> torch.Tensor:
    """Σ_j x_j [softmax(x/τ) U]_j over the kept positions only (U restricted to them)."""
    weights = torch.softmax(x / tau, dim=0) @ mix[keep][:, keep]
    return (x * weights).sum()


def test_xclip_matches_per_pair_reference() -> None:
    model = shared("xclip")
    head, tau = model.head, model.config.temperature
    tokens, mask, frames, frame_mask = make_batch(4, seed=7)
    with torch.no_grad():
        got = model.score(model.encode_text(tokens, mask), model.encode_video(frames, frame_mask))
        eos, states = model.backbone.encode_text(tokens, mask)
        feats = model.frame_features(frames)
        contextual = model.seq_transf(feats, frame_mask)
        for i in range(4):
            words = [int(x) for x in mask[i].nonzero()]
            t = F.normalize(eos[i], dim=0)
            w = F.normalize(states[i, words], dim=-1)
            for j in range(4):
                kept = [int(x) for x in frame_mask[j].nonzero()]
                v = F.normalize(F.normalize(contextual[j, kept], dim=-1).mean(0), dim=0)
                h = F.normalize(feats[j, kept], dim=-1)
                vs = t @ head.sentence_video @ v
                vw = aosm_ref(w @ v, head.video_word.mix, words, tau)
                sf = aosm_ref(h @ t, head.sentence_frame.mix, kept, tau)
                m = w @ head.word_frame @ h.t()
                r = torch.stack([aosm_ref(m[:, f], head.words_per_frame.mix, words, tau) for f in range(len(kept))])
                c = torch.stack([aosm_ref(m[k], head.frames_per_word.mix, kept, tau) for k in range(len(words))])
                fw = 0.5 * (
                    aosm_ref(r, head.frame_aggregate.mix, kept, tau) + aosm_ref(c, head.word_aggregate.mix, words, tau)
                )
                torch.testing.assert_close(got[i, j], (vs + vw + sf + fw) / 4, rtol=1e-4, atol=1e-5)


def batch_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    tokens, mask, frames, frame_mask = batch
    terms = model.losses(model.encode_text(tokens, mask), model.encode_video(frames, frame_mask), torch.arange(4))
    assert set(terms) == {"nce"}
    return sum(terms.values())


@pytest.mark.parametrize("name", TRAINABLE)
def test_losses_reach_head_and_training_reduces_them(name: str) -> None:
    model = build(name)
    # The backbone is frozen up to its output projections, which keeps the backward pass cheap on CPU.
    projections = [model.backbone.clip.visual.proj, model.backbone.clip.text_projection]
    model.backbone.requires_grad_(False)
    for p in projections:
        p.requires_grad_(True)
    batch = make_batch(4, seed=8)
    with torch.no_grad():
        before = batch_loss(model.eval(), batch)
    loss = batch_loss(model.train(), batch)
    assert torch.isfinite(loss)
    loss.backward()
    for p in model.head_parameters() + projections:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    optimizer.step()
    for _ in range(2):
        optimizer.zero_grad()
        batch_loss(model.train(), batch).backward()
        optimizer.step()
    with torch.no_grad():
        assert batch_loss(model.eval(), batch) < before


def test_clip4clip_rejects_unknown_temporal_mode() -> None:
    with pytest.raises(ValueError, match="meanP"):
        build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random", temporal="seqLSTM")


def pair_macs(score: object, text: dict, video: dict) -> tuple[float, dict]:
    """Multiply-adds per pair of `score` (FlopCounterMode counts 2 FLOPs per MAC), with the per-module counts."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        score(text, video)
    pairs = next(iter(text.values())).shape[0] * next(iter(video.values())).shape[0]
    return counter.get_total_flops() / 2 / pairs, counter.get_flop_counts()


def test_xclip_pair_cost_matches_formula_at_full_size() -> None:
    dim, words, frames = 512, 32, 12
    head = XClipHead(dim, words, frames)
    text = head.prepare_text(torch.randn(3, dim), torch.randn(3, words, dim), torch.ones(3, words, dtype=torch.long))
    video = head.prepare_video(torch.randn(5, frames, dim), torch.randn(5, frames, dim), torch.ones(5, frames))
    total, per_module = pair_macs(head.score, text, video)
    mixing = sum(per_module["AOSM"].values()) / 2 / 15
    dots = xclip_dot_macs(dim, words, frames)
    assert dots == 219_648
    assert abs((total - mixing) / dots - 1) < 0.05
    assert abs(total / (dots + xclip_mixing_macs(words, frames)) - 1) < 0.05


def test_xpool_pair_cost_matches_formulas_at_full_size() -> None:
    """Evaluation runs the folded score (2TD + 3T^2 + 3T MACs); training with dropout the explicit 2TD + D^2 + D."""
    dim, frames = 512, 12
    head = XPoolHead(dim)
    text = head.prepare_text(torch.randn(3, dim))
    video = head.prepare_video(torch.randn(5, frames, dim), torch.ones(5, frames))
    assert xpool_pair_macs(dim, frames) == 274_944 and xpool_folded_pair_macs(dim, frames) == 12_756
    explicit, _ = pair_macs(head.train().score, text, video)
    assert abs(explicit / xpool_pair_macs(dim, frames) - 1) < 0.05
    with efficiency.measuring(head.eval()):  # one text and one video, repeated into chunks by pair_costs
        one = ({k: v[:1] for k, v in text.items()}, {k: v[:1] for k, v in video.items()})
        folded = efficiency.pair_costs(head.score, *one)["per_pair"] / 2
    assert folded == xpool_folded_pair_macs(dim, frames)


@pytest.mark.parametrize("heads", [1, 2])
def test_xpool_folded_score_equals_the_explicit_pooled_vector(heads: int) -> None:
    """Far from the identity start (large random LN, W_l, W_o), with padded and all-padded videos, the folded score
    (no per-pair vector) equals LN3(o + W_l o) built explicitly per pair, and both equal a float64 evaluation."""
    torch.manual_seed(heads)
    head = XPoolHead(64, heads=heads).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.5 * torch.randn_like(p))
    text, frames = 3 * torch.randn(5, 64), 2 * torch.randn(7, 6, 64) + 1.5
    mask = torch.ones(7, 6)
    mask[1, 3:], mask[2, 1:], mask[3] = 0, 0, 0
    with torch.no_grad():
        folded = head.score(head.prepare_text(text), head.prepare_video(frames, mask))
        explicit = head._score_explicit(head.prepare_text(text), head.prepare_video(frames, mask))
        head.double()
        exact = head._score_explicit(head.prepare_text(text.double()), head.prepare_video(frames.double(), mask))
    torch.testing.assert_close(folded, explicit, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(folded.double(), exact, rtol=1e-5, atol=1e-6)


def test_xpool_training_with_dropout_pools_each_pair_explicitly() -> None:
    """Dropout masks each pair's W_l o, so training takes the explicit path (same numbers as before the fold)."""
    model = build("xpool")
    tokens, mask, frames, frame_mask = make_batch(4, seed=12)
    model.train()
    text, video = model.encode_text(tokens, mask), model.encode_video(frames, frame_mask)
    torch.manual_seed(1)
    got = model.score(text, video)
    torch.manual_seed(1)
    torch.testing.assert_close(got, model.head._score_explicit(text, video), rtol=0, atol=0)
    with torch.no_grad():
        assert not torch.allclose(got, model.eval().score(text, video))  # dropout changed the training scores


def test_same_video_positives_switch() -> None:
    """Off (the official codes): repeated videos are negatives; on: they are positives. Equal on distinct videos."""
    gen = torch.Generator().manual_seed(9)
    text = {"text": F.normalize(torch.randn(4, 128, generator=gen), dim=-1)}
    # Two differently sampled clips of video 0: the switch only matters when the duplicates' features differ.
    video = {"video": F.normalize(torch.randn(4, 128, generator=gen), dim=-1)}
    losses = {}
    for flag in (False, True):
        model = shared("clip4clip-meanp", nce_same_video_positives=flag)
        with torch.no_grad():
            losses[flag] = [
                model.losses(text, video, ids)["nce"] for ids in (torch.arange(4), torch.tensor([0, 0, 1, 2]))
            ]
    torch.testing.assert_close(losses[False][0], losses[True][0])
    torch.testing.assert_close(losses[False][0], losses[False][1])
    assert not torch.allclose(losses[True][1], losses[False][1])
