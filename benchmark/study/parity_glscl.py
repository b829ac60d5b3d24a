"""GLSCL parity harness: the official model (zchoi/GLSCL, class `DiCoSA`, imported from the user's checkout) and
tvbench's `glscl` on identical random weights and inputs; prints the largest differences of Sim1, Sim2, S, every loss
term and the gradients of every parameter group.

    nox -s parity -- --official PATH          # or: python -m benchmark.study.parity_glscl --official PATH

tvbench's model is built with the official architecture switches (QuickGELU CLIP, LayerNorm epsilon 1e-12 in the
temporal transformer; every other GLSCL default already is the official behaviour) and random weights from a seed;
the same tensors are copied into the official model. Dropout is off in both, so training-mode losses are
deterministic. Everything runs on the CPU in fp32 (the official code's CUDA-only fp16 cast is kept out by hiding
CUDA from it). `--write-fixture FILE` stores the official outputs, so CI (`tests/test_parity_glscl.py`) checks tvbench
against them without the official code.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import torch
from torch import nn

from benchmark.data.text import TextTokenizer
from benchmark.engine.backbone import OPENAI_MARKERS
from benchmark.registry import build_model
from benchmark.study.parity import (
    Comparison,
    check,
    compare,
    compare_many,
    format_table,
    official_import,
)
from glscl.functional import global_interaction, local_similarity

Outputs = dict[str, Any]
# tvbench's glscl as the official code builds it (MSR-VTT hyperparameters are the registry defaults).
TVBENCH_CONFIG = {"quick_gelu": True, "temporal_ln_eps": 1e-12}
OFFICIAL_ENCODER = {"ViT-B-32": "ViT-B/32", "ViT-B-16": "ViT-B/16"}
# Official parameters with no tvbench counterpart: dead code with query/decoder sharing on (#12), and the
# `weight_fc` whose output is discarded (§4). They receive no gradient.
OFFICIAL_UNUSED = ("weight_fc.", "noun_queries", "transformer_decoder_spatial.", "decoder_layer_noun.",
                   "decoder_layer_spatial.")
CAPTIONS = ("a man is slicing tomatoes in a kitchen", "two dogs run along the beach",
            "a woman sings on a stage while a band plays guitar and drums behind her", "a red car", "kids play",
            "someone explains how to fold a paper plane step by step")
SCALARS = ("nce", "icl", "idl", "loss")
MATRICES = ("sim1", "sim2", "s")
GROUPS = {"grad CLIP image tower": "backbone.clip.visual.", "grad CLIP text tower + logit scale": "backbone.clip.",
          "grad temporal transformer": "temporal.", "grad local module": "local."}


@dataclass(frozen=True)
class ParitySetup:
    """Sizes and seed of one comparison (real ViT-B/32 at 224 px by default; few items keep it fast)."""

    backbone: str = "ViT-B-32"
    texts: int = 3
    frames: int = 3
    words: int = 32
    size: int = 224
    seed: int = 0


def official_name(name: str) -> str:
    """The official parameter name of a tvbench `glscl` parameter."""
    for ours, theirs in (("backbone.clip.", "clip."), ("temporal.blocks.", "transformerClip.resblocks."),
                         ("local.decoder.layers.", "transformer_decoder_noun.layers.")):
        if name.startswith(ours):
            return theirs + name.removeprefix(ours)
    renamed = {"temporal.position": "frame_position_embeddings.weight", "local.queries": "spatial_queries"}
    if name not in renamed:
        raise KeyError(f"tvbench parameter `{name}` has no official counterpart.")
    return renamed[name]


def make_inputs(setup: ParitySetup) -> dict[str, torch.Tensor]:
    """Tokenised captions of different lengths and random clips; the last clip has one padded (zero) frame."""
    if not 2 <= setup.texts <= len(CAPTIONS) or setup.frames < 2:
        raise ValueError(f"Use 2..{len(CAPTIONS)} texts and at least 2 frames, got {setup.texts} and {setup.frames}.")
    tokens, mask = TextTokenizer(setup.words, name=setup.backbone)(list(CAPTIONS[: setup.texts]))
    generator = torch.Generator().manual_seed(setup.seed)
    frames = torch.randn(setup.texts, setup.frames, 3, setup.size, setup.size, generator=generator)
    frame_mask = torch.ones(setup.texts, setup.frames, dtype=torch.long)
    frame_mask[-1, -1] = 0
    frames[-1, -1] = 0.0
    return {"tokens": tokens, "mask": mask, "frames": frames, "frame_mask": frame_mask,
            "ids": torch.arange(setup.texts)}


def _no_dropout(model: nn.Module) -> None:
    """Dropout off everywhere (also inside attention), so training-mode outputs are deterministic."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = 0.0


def build_tvbench(setup: ParitySetup, **overrides: Any) -> nn.Module:
    """tvbench's `glscl` with the official architecture switches and seeded random weights, dropout off, and the
    patch embedding frozen as officially (what `freeze_patch_embedding` does in training)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(setup.seed)
        model = build_model("glscl", backbone=setup.backbone, clip_weights="random", **{**TVBENCH_CONFIG, **overrides})
    _no_dropout(model)
    model.backbone.clip.visual.conv1.requires_grad_(False)
    return model


def _grads(model: nn.Module, rename: Any = None) -> dict[str, torch.Tensor]:
    return {(rename(n) if rename else n): p.grad.detach().clone() for n, p in model.named_parameters()
            if p.grad is not None}


def tvbench_outputs(model: nn.Module, inputs: dict[str, torch.Tensor]) -> Outputs:
    """Sim1, Sim2, S (eval mode), the loss terms and their sum, and every gradient of the summed loss."""
    cfg = model.config
    model.eval()
    with torch.no_grad():
        text = model.encode_text(inputs["tokens"], inputs["mask"])
        video = model.encode_video(inputs["frames"], inputs["frame_mask"])
        sim1 = global_interaction(text["eos"], video["frames"], video["frame_mask"], cfg.temp, mask=cfg.gim_mask,
                                  gram=video["frame_gram"])
        sim2 = local_similarity(text["concepts"], video["concepts"])
        s = model.score(text, video)
    model.train()
    model.zero_grad(set_to_none=True)
    terms = model.losses(model.encode_text(inputs["tokens"], inputs["mask"]),
                         model.encode_video(inputs["frames"], inputs["frame_mask"]), inputs["ids"])
    loss = sum(terms.values())
    loss.backward()
    return {"sim1": sim1, "sim2": sim2, "s": s, **{k: v.detach() for k, v in terms.items()},
            "loss": loss.detach(), "grads": _grads(model)}


def _official_args(setup: ParitySetup, model: nn.Module) -> SimpleNamespace:
    cfg = model.config
    return SimpleNamespace(
        interaction="wti", agg_module="seqTransf", base_encoder=OFFICIAL_ENCODER[setup.backbone], center=1,
        temp=cfg.temp, query_number=cfg.num_queries, cross_att_layer=cfg.decoder_layers, query_share=1,
        cross_att_share=1, loss2_weight=cfg.lambda_local, alpha=cfg.alpha, beta=cfg.beta,
        num_hidden_layers=cfg.temporal_layers, world_size=1, local_rank=0,
    )


def official_outputs(path: str | Path, model: nn.Module, inputs: dict[str, torch.Tensor],
                     setup: ParitySetup) -> Outputs:
    """The same quantities from the official `DiCoSA` built from the checkout at `path` with `model`'s weights;
    gradients are returned under tvbench's parameter names."""
    if setup.backbone not in OFFICIAL_ENCODER:
        raise ValueError(f"The official code supports {sorted(OFFICIAL_ENCODER)}, not {setup.backbone}.")
    ours = model.state_dict()
    clip_state = {k.removeprefix("backbone.clip."): v.clone() for k, v in ours.items() if k.startswith("backbone.")}
    clip_state.update(dict(zip(OPENAI_MARKERS, map(torch.tensor, (setup.size, model.backbone.context_length,
                                                                   model.backbone.clip.vocab_size)), strict=True)))
    back = {official_name(n): n for n, _ in model.named_parameters()}
    with official_import(path, "tvr", "tvr/models/modeling.py"), \
            mock.patch.object(torch.cuda, "is_available", return_value=False):
        from tvr.models.modeling import DiCoSA  # the official model, from the checkout only

        # DiCoSA reads tvr/models/ViT-B-32.pt itself: hand it the same tensors instead (no file, no TorchScript).
        with mock.patch.object(torch.jit, "load", side_effect=RuntimeError("parity: state dict given")), \
                mock.patch.object(torch, "load", return_value=clip_state):
            official = DiCoSA(_official_args(setup, model))
        missing, unexpected = official.load_state_dict({official_name(n): v for n, v in ours.items()}, strict=False)
        leftover = [k for k in missing if not k.startswith(OFFICIAL_UNUSED)]
        if unexpected or leftover:
            raise RuntimeError(f"Weights do not map onto the official model: unexpected {unexpected[:5]}, "
                               f"not set {leftover[:5]}.")
        _no_dropout(official)
        official.eval()
        tokens, mask, frames, frame_mask = (inputs[k] for k in ("tokens", "mask", "frames", "frame_mask"))
        with torch.no_grad():
            text_feat, cls = official.get_text_feat(tokens, mask)
            video_feat = official.get_video_feat(frames, frame_mask)
            sim1 = official.similarity(text_feat, cls, video_feat, mask, frame_mask)[0]
            sim2 = official._score(text_feat, cls, video_feat, mask, frame_mask)[0]
        official.train()
        loss, nce, idl, icl = official(tokens, mask, frames, frame_mask, inputs["ids"], 0)
        loss.backward()
        grads = {back[n]: g for n, g in _grads(official).items() if n in back}
    return {"sim1": sim1, "sim2": sim2, "s": sim1 + official.config.loss2_weight * sim2, "nce": nce.detach(),
            "icl": icl.detach(), "idl": idl.detach(), "loss": loss.detach(), "grads": grads}


def _group(grads: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    taken = {n: g for n, g in grads.items() if n.startswith(prefix)}
    if prefix == "backbone.clip.":  # the text tower = the CLIP tensors outside the image tower
        taken = {n: g for n, g in taken.items() if not n.startswith(GROUPS["grad CLIP image tower"])}
    return taken


def table(ours: Outputs, official: Outputs) -> list[Comparison]:
    """The parity rows: each similarity matrix, each loss term, and the gradients per parameter group."""
    rows = [compare(name, ours[name], official[name]) for name in (*MATRICES, *SCALARS)]
    rows += [compare_many(label, _group(ours["grads"], prefix), _group(official["grads"], prefix))
             for label, prefix in GROUPS.items()]
    return rows


def fixture_from(official: Outputs, setup: ParitySetup) -> dict[str, Any]:
    """What CI needs to check tvbench without the official code: the official similarities and losses, and the L2
    norm of every official gradient."""
    return {"setup": asdict(setup), "tvbench_config": TVBENCH_CONFIG,
            "official": {**{k: official[k].tolist() for k in (*MATRICES, *SCALARS)},
                         "grad_norms": {n: float(g.norm()) for n, g in sorted(official["grads"].items())}}}


def fixture_outputs(fixture: dict[str, Any]) -> Outputs:
    """The official outputs of a fixture, with gradient norms in place of gradients."""
    data = fixture["official"]
    return {**{k: torch.tensor(data[k], dtype=torch.float64) for k in (*MATRICES, *SCALARS)},
            "grad_norms": data["grad_norms"]}


def consequences(setup: ParitySetup, inputs: dict[str, torch.Tensor], s_parity: torch.Tensor) -> list[Comparison]:
    """How far tvbench's defaults move S from the official computation: GELU instead of QuickGELU (what a reload
    without the recorded activation built), CLIP's LayerNorm epsilon 1e-5 in the temporal transformer, and encoding
    under bf16 autocast as tvbench's default `amp` does on CUDA (measured here with CPU autocast)."""
    rows = []
    for label, override, autocast in (("S with GELU (the reload bug)", {"quick_gelu": False}, False),
                                      ("S with LayerNorm eps 1e-5", {"temporal_ln_eps": 1e-5}, False),
                                      ("S encoded under bf16 autocast", {}, True)):
        model = build_tvbench(setup, **override)
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            text = model.encode_text(inputs["tokens"], inputs["mask"])
            video = model.encode_video(inputs["frames"], inputs["frame_mask"])
        with torch.no_grad():
            rows.append(compare(label, model.score(text, video), s_parity))
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--official", required=True, type=Path, help="a checkout of zchoi/GLSCL")
    for field, default in asdict(ParitySetup()).items():
        parser.add_argument(f"--{field}", type=type(default), default=default)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest absolute difference accepted")
    parser.add_argument("--write-fixture", type=Path, help="store the official outputs here (tests/fixtures/...)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.study.parity_glscl", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup = ParitySetup(**{k: getattr(args, k) for k in asdict(ParitySetup())})
    inputs = make_inputs(setup)
    model = build_tvbench(setup)
    try:
        official = official_outputs(args.official, model, inputs, setup)
    except FileNotFoundError as err:
        print(f"parity: error: {err}", file=sys.stderr)
        return 2
    ours = tvbench_outputs(model, inputs)
    rows = table(ours, official)
    print(f"GLSCL parity: tvbench `glscl` vs official DiCoSA ({args.official}), {setup.backbone}, {setup.texts} "
          f"texts x {setup.texts} videos x {setup.frames} frames at {setup.size} px, {setup.words} words, seed "
          f"{setup.seed}, fp32 CPU\n")
    print(format_table(rows, args.tolerance))
    print("\nWhat tvbench's defaults would change (not part of the parity check):\n")
    print(format_table(consequences(setup, inputs, official["s"]), args.tolerance))
    if args.write_fixture:
        from benchmark.io import write_json

        write_json(args.write_fixture, fixture_from(official, setup))
        print(f"\nfixture written: {args.write_fixture}")
    return 0 if check(rows, args.tolerance) else 1


if __name__ == "__main__":
    raise SystemExit(main())
