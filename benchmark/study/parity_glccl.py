"""GLCCL parity harness: the official model (JingXiaolun/GLCCL, `modules/modeling_glccl.py`, class `GLCCL`, imported
from the user's checkout) and tvbench's `glccl` on identical random weights and inputs; prints the largest differences
of S, each of the four scores, CSC, InfoNCE, the loss and the gradients of every parameter group.

    nox -s parity -- --method glccl --official PATH   # or: python -m benchmark.study.parity_cli --method glccl ...

The official code is built with its own constructor and the README's flags (seqTransf, text-guided softmax pooling,
`attn` interaction, CSC on) and given tvbench's tensors: a random CLIP with QuickGELU (as OpenAI's weights run), the
seqTransf blocks and frame positions, and the eight head matrices, moved off their identity initialisation so that a
wrong mapping shows. tvbench's model has the official architecture switches (QuickGELU, seqTransf LayerNorm epsilon
1e-12 as `module_cross`); every other GLCCL default already is the official behaviour. Its official modules import
`boto3` and `requests` (`modules/file_utils.py`), which tvbench does not need: install them beside it.

The official training `forward` all-gathers, so it runs in a one-process gloo group; it returns only the loss, so S
and the four scores are taken from the `get_similarity_logits` call inside it, InfoNCE is the official `CrossEn` on
that S, and CSC = (loss - InfoNCE) / weight. Official scores carry the logit scale, so tvbench's are multiplied by
it. Dropout is off, everything runs in fp32 on the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from unittest import mock

import torch
from torch import nn

from baselines.glccl import SCORE_NAMES
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

REPOSITORY = "JingXiaolun/GLCCL"
MARKER = "modules/modeling_glccl.py"
OFFICIAL_BACKBONES = ("ViT-B-32", "ViT-B-16")
TVBENCH_CONFIG = {"quick_gelu": True, "temporal_ln_eps": 1e-12}
# tvbench's head matrices (baselines.xclip.MultiGrainedAOSM, G and M) -> the official parameters.
HEAD_MATRICES = {
    "aosm.video_word.mix": "word_logit_weight",
    "aosm.sentence_frame.mix": "word_frame_logit_weight",
    "aosm.words_per_frame.mix": "word_mat_weight",
    "aosm.frames_per_word.mix": "word_frame_mat_weight",
    "aosm.frame_aggregate.mix": "word_frame_mat_weight2",
    "aosm.word_aggregate.mix": "word_mat_weight2",
    "sentence_video": "global_mat_weight",
    "word_frame": "local_mat_weight",
}
OFFICIAL_UNUSED = ("visual_logit_weight",)  # only read by the `softmax_linear_softmax` pooling the README never runs
SCORES = ("s", *SCORE_NAMES)
SCALARS = ("csc", "nce", "loss")
LABELS = {"s": "S = mean of the four scores", "video_sentence": "video-sentence score",
          "video_word": "video-word score", "sentence_frame": "sentence-frame score", "frame_word": "frame-word score",
          "csc": "CSC (official denominator)", "nce": "InfoNCE", "loss": "loss = InfoNCE + 0.5 CSC"}
GROUPS = {"grad CLIP image tower": "backbone.clip.visual.", "grad CLIP text tower + logit scale": "backbone.clip.",
          "grad seqTransf + frame positions": "seq_transf.", "grad G and M": ("sentence_video", "word_frame"),
          "grad six L x L AOSM matrices": "aosm."}
DEFAULT_SETUP = ParitySetup(texts=4, frames=3)


def official_name(name: str) -> str:
    """The official parameter name of a tvbench `glccl` parameter."""
    for ours, theirs in (("backbone.clip.", "clip."), ("seq_transf.blocks.", "transformerClip.resblocks.")):
        if name.startswith(ours):
            return theirs + name.removeprefix(ours)
    renamed = {"seq_transf.position": "frame_position_embeddings.weight", **HEAD_MATRICES}
    if name not in renamed:
        raise KeyError(f"tvbench parameter `{name}` has no official counterpart.")
    return renamed[name]


def valid_frames(setup: ParitySetup) -> list[int]:
    """Real frames per clip: all, one fewer, two fewer, ... (at least one), so padding varies across the batch."""
    return [setup.frames - i % setup.frames for i in range(setup.texts)]


def build_tvbench(setup: ParitySetup, **overrides: Any) -> nn.Module:
    """tvbench's `glccl` with the official architecture switches, seeded random weights and dropout off; the eight
    head matrices get seeded noise (x0.05) on top of their identity initialisation."""
    model = seeded_model("glccl", setup, **{**TVBENCH_CONFIG, "max_words": setup.words, **overrides})
    generator = torch.Generator().manual_seed(setup.seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in HEAD_MATRICES:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model


def scaled_score(model: nn.Module, text: dict, video: dict) -> torch.Tensor:
    """S on the official scale (the official logits carry the logit scale)."""
    return model.score(text, video) * model.logit_scale()


def tvbench_outputs(model: nn.Module, inputs: dict[str, torch.Tensor]) -> Outputs:
    """S and the four scores (eval mode, x logit scale), CSC, InfoNCE and the loss, and every gradient of the loss."""
    model.eval()
    with torch.no_grad():
        text = model.encode_text(inputs["tokens"], inputs["mask"])
        video = model.encode_video(inputs["frames"], inputs["frame_mask"])
        parts = model.scores(text, video) * model.logit_scale()
        s = scaled_score(model, text, video)
    model.train()
    model.zero_grad(set_to_none=True)
    terms = model.losses(model.encode_text(inputs["tokens"], inputs["mask"]),
                         model.encode_video(inputs["frames"], inputs["frame_mask"]), inputs["ids"])
    loss = sum(terms.values())
    loss.backward()
    csc = terms["csc"].detach() / model.config.csc_weight
    return {"s": s, **dict(zip(SCORE_NAMES, parts, strict=True)), "csc": csc, "nce": terms["nce"].detach(),
            "loss": loss.detach(), "grads": gradients(model)}


@contextlib.contextmanager
def one_process_group() -> Iterator[None]:
    """A gloo process group of world size 1 for the block (the official training forward all-gathers)."""
    if torch.distributed.is_initialized():
        raise ParityUsageError("Run the parity harness outside a distributed job (a process group already exists).")
    with tempfile.TemporaryDirectory() as tmp:
        torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=0, world_size=1)
        try:
            yield
        finally:
            torch.distributed.destroy_process_group()


def _official_model(module: ModuleType, model: nn.Module, setup: ParitySetup) -> nn.Module:
    """The official GLCCL (its own constructor, the README's flags) holding exactly `model`'s weights, in fp32."""
    cfg = model.config
    task = SimpleNamespace(
        max_words=setup.words, max_frames=setup.frames, loose_type=True, linear_patch="2d", sim_header="seqTransf",
        cross_num_hidden_layers=cfg.temporal_layers, text_guided_flag=True, aggregation_weights_type="softmax",
        interaction_type="attn", var_loss_flag=True, var_loss_weight=cfg.csc_weight, local_rank=0, rank=0,
        world_size=1,
    )
    cross_config, _ = module.CrossConfig.get_config("cross-base", "", 2, state_dict=None, task_config=task)
    ours = model.state_dict()
    clip_state = {k.removeprefix("backbone.clip."): v.clone() for k, v in ours.items() if k.startswith("backbone.")}
    official = module.GLCCL(cross_config, clip_state, task).float()
    missing, unexpected = official.load_state_dict({official_name(n): v for n, v in ours.items()}, strict=False)
    leftover = [k for k in missing if not k.startswith(OFFICIAL_UNUSED)]
    if unexpected or leftover:
        raise RuntimeError(f"Weights do not map onto the official model: unexpected {unexpected[:5]}, not set "
                           f"{leftover[:5]}.")
    no_dropout(official)
    return official


def official_outputs(path: str | Path, model: nn.Module, inputs: dict[str, torch.Tensor],
                     setup: ParitySetup) -> Outputs:
    """The same quantities from one official training forward and backward (see the module docstring); gradients
    are returned under tvbench's parameter names."""
    back = {official_name(n): n for n, _ in model.named_parameters()}
    quiet = logging.getLogger("modules")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the constructor logs every CLIP dimension as a warning
    try:
        with official_import(path, "modules", MARKER, REPOSITORY), one_process_group():
            from modules import modeling_glccl  # the official model, from the checkout only

            official = _official_model(modeling_glccl, model, setup)
            official.train()
            tokens, mask, frame_mask = inputs["tokens"], inputs["mask"], inputs["frame_mask"]
            video = inputs["frames"][:, None, None]  # [B, pair, bs, T, 3, H, W] as the official loaders shape it
            calls: list[tuple[torch.Tensor, list[torch.Tensor]]] = []
            logits = official.get_similarity_logits

            def recorded(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
                calls.append(logits(*args, **kwargs))
                return calls[-1]

            with mock.patch.object(official, "get_similarity_logits", new=recorded):
                loss = official(tokens[:, None], torch.zeros_like(tokens)[:, None], mask[:, None], video,
                                frame_mask[:, None])
            loss.backward()
            s, parts = calls[0][0].detach(), [p.detach() for p in calls[0][1]]
            with torch.no_grad():
                nce = (official.loss_fct(s) + official.loss_fct(s.T)) / 2
            grads = {back[n]: g for n, g in gradients(official).items() if n in back}
    finally:
        quiet.setLevel(level)
    return {"s": s, **dict(zip(SCORE_NAMES, parts, strict=True)),
            "csc": (loss.detach() - nce) / official.var_loss_weight, "nce": nce, "loss": loss.detach(),
            "grads": grads}


def table(ours: Outputs, official: Outputs) -> list[Comparison]:
    """The parity rows: S, each score, CSC, InfoNCE and the loss, and the gradients per parameter group."""
    rows = [compare(LABELS[name], ours[name], official[name]) for name in (*SCORES, *SCALARS)]
    return rows + gradient_rows(ours["grads"], official["grads"], GROUPS)


def run(path: Path, setup: ParitySetup) -> ParityRun:
    """The whole comparison against the checkout at `path`, tvbench's default departures and the CI fixture."""
    require_checkout(path, MARKER, REPOSITORY)  # fail before building any model
    if setup.backbone not in OFFICIAL_BACKBONES:
        raise ParityUsageError(f"The official code builds ViT CLIPs {OFFICIAL_BACKBONES}, not {setup.backbone}.")
    inputs = make_inputs(setup, valid_frames(setup))
    model = build_tvbench(setup)
    official = official_outputs(path, model, inputs, setup)
    ours = tvbench_outputs(model, inputs)
    title = (f"GLCCL parity: tvbench `glccl` vs official GLCCL ({path}), {setup.backbone}, {setup.texts} texts x "
             f"{setup.texts} videos x {setup.frames} frames ({valid_frames(setup)} real) at {setup.size} px, "
             f"{setup.words} words, seed {setup.seed}, fp32 CPU; scores x logit scale "
             f"{float(model.logit_scale().detach()):.4g} as the official logits")
    return ParityRun(title, table(ours, official),
                     departures(lambda **o: build_tvbench(setup, **o), inputs, official["s"], scaled_score),
                     fixture_from(official, (*SCORES, *SCALARS), setup, TVBENCH_CONFIG,
                                  checkout_source(path, REPOSITORY, MARKER)))


HARNESS = Harness("glccl", REPOSITORY, DEFAULT_SETUP, run, tolerance=1e-5)
