"""GLSCL parity harness: the official model (zchoi/GLSCL, class `DiCoSA`, imported from the user's checkout) and
tvbench's `glscl` on identical random weights and inputs; prints the largest differences of Sim1, Sim2, S, every loss
term and the gradients of every parameter group.

    nox -s parity -- --official PATH     # or: python -m benchmark.study.parity_cli --method glscl --official PATH

tvbench's model is built with the official architecture switches (QuickGELU CLIP, LayerNorm epsilon 1e-12 in the
temporal transformer; every other GLSCL default already is the official behaviour) and random weights from a seed;
the same tensors are copied into the official model. Dropout is off in both, so training-mode losses are
deterministic. Everything runs on the CPU in fp32 (the official code's CUDA-only fp16 cast is kept out by hiding
CUDA from it). `--write-fixture FILE` stores the official outputs, so CI (`tests/test_parity_glscl.py`) checks tvbench
against them without the official code. The shared machinery is `benchmark.study.parity`.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import torch
from torch import nn

from benchmark.engine.backbone import OPENAI_MARKERS
from benchmark.study.parity import (
    Comparison,
    Harness,
    Outputs,
    ParityRun,
    ParitySetup,
    ParityUsageError,
    checkout_source,
    compare,
    departures,
    fixture_from,
    gradient_rows,
    gradients,
    make_inputs,
    no_dropout,
    official_import,
    require_checkout,
    seeded_model,
)
from glscl.functional import global_interaction, local_similarity

REPOSITORY = "zchoi/GLSCL"
MARKER = "tvr/models/modeling.py"
# tvbench's glscl as the official code builds it (MSR-VTT hyperparameters are the registry defaults).
TVBENCH_CONFIG = {"quick_gelu": True, "temporal_ln_eps": 1e-12}
OFFICIAL_ENCODER = {"ViT-B-32": "ViT-B/32", "ViT-B-16": "ViT-B/16"}
# Official parameters with no tvbench counterpart: dead code with query/decoder sharing on (#12), and the
# `weight_fc` whose output is discarded (§4). They receive no gradient.
OFFICIAL_UNUSED = ("weight_fc.", "noun_queries", "transformer_decoder_spatial.", "decoder_layer_noun.",
                   "decoder_layer_spatial.")
SCALARS = ("nce", "icl", "idl", "loss")
MATRICES = ("sim1", "sim2", "s")
# Gradient rows: a parameter falls in the first group whose prefix it has (the text tower = the rest of CLIP).
GROUPS = {"grad CLIP image tower": "backbone.clip.visual.", "grad CLIP text tower + logit scale": "backbone.clip.",
          "grad temporal transformer": "temporal.", "grad local module": "local."}


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


def build_tvbench(setup: ParitySetup, **overrides: Any) -> nn.Module:
    """tvbench's `glscl` with the official architecture switches and seeded random weights, dropout off, and the
    patch embedding frozen as officially (what `freeze_patch_embedding` does in training)."""
    model = seeded_model("glscl", setup, **{**TVBENCH_CONFIG, **overrides})
    model.backbone.clip.visual.conv1.requires_grad_(False)
    return model


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
            "loss": loss.detach(), "grads": gradients(model)}


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
        raise ParityUsageError(f"The official code supports {sorted(OFFICIAL_ENCODER)}, not {setup.backbone}.")
    ours = model.state_dict()
    clip_state = {k.removeprefix("backbone.clip."): v.clone() for k, v in ours.items() if k.startswith("backbone.")}
    clip_state.update(dict(zip(OPENAI_MARKERS, map(torch.tensor, (setup.size, model.backbone.context_length,
                                                                   model.backbone.clip.vocab_size)), strict=True)))
    back = {official_name(n): n for n, _ in model.named_parameters()}
    with official_import(path, "tvr", MARKER, REPOSITORY), \
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
        no_dropout(official)
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
        grads = {back[n]: g for n, g in gradients(official).items() if n in back}
    return {"sim1": sim1, "sim2": sim2, "s": sim1 + official.config.loss2_weight * sim2, "nce": nce.detach(),
            "icl": icl.detach(), "idl": idl.detach(), "loss": loss.detach(), "grads": grads}


def table(ours: Outputs, official: Outputs) -> list[Comparison]:
    """The parity rows: each similarity matrix, each loss term, and the gradients per parameter group."""
    rows = [compare(name, ours[name], official[name]) for name in (*MATRICES, *SCALARS)]
    return rows + gradient_rows(ours["grads"], official["grads"], GROUPS)


def run(path: Path, setup: ParitySetup) -> ParityRun:
    """The whole comparison against the checkout at `path`, tvbench's default departures and the CI fixture."""
    require_checkout(path, MARKER, REPOSITORY)  # fail before building any model
    inputs = make_inputs(setup)
    model = build_tvbench(setup)
    official = official_outputs(path, model, inputs, setup)
    ours = tvbench_outputs(model, inputs)
    title = (f"GLSCL parity: tvbench `glscl` vs official DiCoSA ({path}), {setup.backbone}, {setup.texts} texts x "
             f"{setup.texts} videos x {setup.frames} frames at {setup.size} px, {setup.words} words, seed "
             f"{setup.seed}, fp32 CPU")
    return ParityRun(title, table(ours, official),
                     departures(lambda **o: build_tvbench(setup, **o), inputs, official["s"]),
                     fixture_from(official, (*MATRICES, *SCALARS), setup, TVBENCH_CONFIG,
                                  checkout_source(path, REPOSITORY, MARKER)))


HARNESS = Harness("glscl", REPOSITORY, ParitySetup(), run)
