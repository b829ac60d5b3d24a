"""Parity of tvbench's `glccl` with the official GLCCL code on shared random weights and inputs, in fp32.

    python benchmarks/parity_glccl.py --official PATH [--texts 6] [--words 32] [--frames 12] [--seed 0] [--json OUT]

PATH is a checkout of https://github.com/JingXiaolun/GLCCL: `modules/modeling_glccl.py` is imported from there with
the X-CLIP/CLIP4Clip modules it imports (their `file_utils.py` needs `boto3` and `requests`, which tvbench does not:
install them or put them on PYTHONPATH). No official code is copied into tvbench.

Both models get the same weights: a random ViT-B/32 CLIP with QuickGELU (as OpenAI's weights run), tvbench's
seqTransf and head matrices copied into the official `transformerClip`, `frame_position_embeddings` and the eight
`*_weight` matrices, the head moved off its identity initialisation so that a wrong mapping shows. Two comparisons:
end to end (token ids and pixels -> S, the four scores, CSC and InfoNCE, the official CSC taken from its training
`forward`, run as a single-process gloo group), and head only (the same seqTransf features into both heads, the
official with `sim_header="meanP"`), which isolates GLIM and the four scores from the towers and the temporal module.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch

from baselines.glccl import GLCCL, SCORE_NAMES, contrastive_score_consistency
from benchmark.registry import build_model

BACKBONE = "ViT-B-32-quickgelu"  # open_clip's ViT-B/32 with OpenAI's activation, like the official CLIP
SOT, EOT = 49406, 49407
# tvbench AOSM (baselines.xclip.MultiGrainedAOSM) -> official matrix; G and M are `sentence_video` / `word_frame`.
MATRICES = {
    "aosm.video_word.mix": "word_logit_weight",
    "aosm.sentence_frame.mix": "word_frame_logit_weight",
    "aosm.words_per_frame.mix": "word_mat_weight",
    "aosm.frames_per_word.mix": "word_frame_mat_weight",
    "aosm.frame_aggregate.mix": "word_frame_mat_weight2",
    "aosm.word_aggregate.mix": "word_mat_weight2",
    "sentence_video": "global_mat_weight",
    "word_frame": "local_mat_weight",
}


class ParityError(RuntimeError):
    """A user-facing problem with the official checkout (message says how to fix it)."""


def load_official(path: Path) -> ModuleType:
    """`modules.modeling_glccl` imported from the checkout at `path`."""
    if not (path / "modules" / "modeling_glccl.py").is_file():
        raise ParityError(
            f"{path}/modules/modeling_glccl.py not found: pass a checkout of https://github.com/JingXiaolun/GLCCL."
        )
    sys.path.insert(0, str(path.resolve()))
    try:
        return importlib.import_module("modules.modeling_glccl")
    except ImportError as err:
        raise ParityError(
            f"Importing the official code failed ({err}). Its modules/file_utils.py imports boto3 and requests: "
            "`pip install boto3 requests` (or `pip install --target DIR boto3 requests` and PYTHONPATH=DIR)."
        ) from err


def build_ours(words: int, seed: int) -> GLCCL:
    """tvbench's `glccl` on a random ViT-B/32, head matrices perturbed off the identity (seeded)."""
    torch.manual_seed(seed)
    model = build_model("glccl", backbone=BACKBONE, clip_weights="random", max_words=words)
    with torch.no_grad():
        for parameter in model.head_parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def build_official(module: ModuleType, ours: GLCCL, frames: int) -> torch.nn.Module:
    """The official GLCCL (its own constructor, the README's flags) holding exactly `ours`'s weights, in fp32."""
    cfg = ours.config
    task = SimpleNamespace(
        max_words=cfg.max_words, max_frames=frames, loose_type=True, linear_patch="2d", sim_header="seqTransf",
        cross_num_hidden_layers=cfg.temporal_layers, text_guided_flag=True, aggregation_weights_type="softmax",
        interaction_type="attn", var_loss_flag=True, var_loss_weight=cfg.csc_weight, local_rank=0, rank=0,
        world_size=1,
    )  # fmt: skip
    cross_config, _ = module.CrossConfig.get_config("cross-base", "", 2, state_dict=None, task_config=task)
    clip_state = ours.backbone.clip.state_dict()
    official = module.GLCCL(cross_config, {k: v.clone() for k, v in clip_state.items()}, task).float()
    with torch.no_grad():
        official.clip.load_state_dict(clip_state, strict=True)
        official.frame_position_embeddings.weight.copy_(ours.seq_transf.position)
        blocks = {f"resblocks.{k.removeprefix('blocks.')}": v for k, v in ours.seq_transf.state_dict().items()}
        blocks.pop("resblocks.position")
        official.transformerClip.load_state_dict(blocks, strict=True)
        ours_params = dict(ours.named_parameters())
        for name, theirs in MATRICES.items():
            getattr(official, theirs).copy_(ours_params[name])
    return official.eval()


def make_inputs(n: int, words: int, frames: int, size: int, seed: int) -> tuple[torch.Tensor, ...]:
    """n captions of varying length (SOT, ids, EOT, zero padding) and n clips with a varying number of valid frames."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(n, words, dtype=torch.long)
    frame_mask = torch.zeros(n, frames, dtype=torch.long)
    for i in range(n):
        length = 3 + (i * 5) % (words - 2)
        tokens[i, 0], tokens[i, length - 1] = SOT, EOT
        tokens[i, 1 : length - 1] = torch.randint(1, SOT, (length - 2,), generator=gen)
        frame_mask[i, : frames - (i * 3) % frames] = 1
    clips = torch.randn(n, frames, 3, size, size, generator=gen) * frame_mask[:, :, None, None, None]
    return tokens, (tokens > 0).long(), clips, frame_mask


def official_csc_and_nce(official: torch.nn.Module, tokens, mask, clips, frame_mask) -> tuple[float, float]:
    """CSC and InfoNCE from the official training `forward`: loss with and without `var_loss_flag`."""
    video = clips[:, None, None]  # [B, pair, bs, T, 3, H, W] as the official loaders shape it
    args = (tokens[:, None], torch.zeros_like(tokens)[:, None], mask[:, None], video, frame_mask[:, None])
    official.train()
    try:
        with_csc = official(*args)
        official.var_loss_flag = False
        nce = official(*args)
    finally:
        official.var_loss_flag = True
        official.eval()
    return float((with_csc - nce).detach() / official.var_loss_weight), float(nce.detach())


def compare(official_module: ModuleType, texts: int, words: int, frames: int, seed: int) -> dict[str, list[dict]]:
    """Both comparisons (see the module docstring): rows of (quantity, max |diff|, max |official|)."""
    ours = build_ours(words, seed)
    official = build_official(official_module, ours, frames)
    tokens, mask, clips, frame_mask = make_inputs(texts, words, frames, ours.backbone.image_size, seed)
    with torch.no_grad():
        text, video = ours.encode_text(tokens, mask), ours.encode_video(clips, frame_mask)
        parts = ours.scores(text, video) * ours.logit_scale()  # the official logits carry λ_s
        ours_csc = float(contrastive_score_consistency(parts, ours.config.csc_denominator))  # type: ignore[arg-type]
        ours_nce = float(ours.losses(text, video, torch.arange(texts))["nce"])
        (seq, states), pixels = official.get_sequence_visual_output(
            tokens, torch.zeros_like(tokens), mask, clips[:, None, None], frame_mask
        )
        end_s, end_parts = official.get_similarity_logits(seq, states, pixels, mask, frame_mask, loose_type=True)
        head_s, head_parts = official._loose_similarity(
            text["eos"][:, None], text["states"], video["frames"], mask, frame_mask, sim_header="meanP"
        )
        stages = {
            "text [EOS] (CLIP tower)": (text["eos"], seq[:, 0]),
            "token states (CLIP tower)": (text["states"], states),
            "frame features (CLIP tower)": (ours.frame_features(clips), pixels),
        }
    official_csc, official_nce = official_csc_and_nce(official, tokens, mask, clips, frame_mask)

    def rows(s: torch.Tensor, pieces: list[torch.Tensor]) -> list[dict]:
        pairs = [("S (fused)", parts.mean(0), s)] + [(n, p, q) for n, p, q in zip(SCORE_NAMES, parts, pieces)]
        return [_row(name, a, b) for name, a, b in pairs]

    end = [_row(name, a, b) for name, (a, b) in stages.items()] + rows(end_s, end_parts)
    end += [_row("CSC (training forward)", ours_csc, official_csc), _row("InfoNCE", ours_nce, official_nce)]
    return {"end-to-end": end, "head-only": rows(head_s, head_parts)}


def _row(name: str, ours: torch.Tensor | float, official: torch.Tensor | float) -> dict:
    a, b = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(official, dtype=torch.float64)
    return {"quantity": name, "max_abs_diff": float((a - b).abs().max()), "max_abs_official": float(b.abs().max())}


def render(tables: dict[str, list[dict]], target: float = 1e-5) -> str:
    """Markdown tables: quantity, max |tvbench - official|, max |official|, and whether the difference is < target."""
    lines = []
    for title, rows in tables.items():
        lines += [f"\n{title}\n", "| quantity | max abs diff | max abs official | < 1e-5 |", "|---|---|---|---|"]
        for row in rows:
            ok = "yes" if row["max_abs_diff"] < target else "no"
            lines.append(f"| {row['quantity']} | {row['max_abs_diff']:.2e} | {row['max_abs_official']:.3g} | {ok} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="checkout of JingXiaolun/GLCCL")
    parser.add_argument("--texts", type=int, default=6, help="texts = videos in the batch (CSC needs >= 2)")
    parser.add_argument("--words", type=int, default=32)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the tables as JSON here")
    args = parser.parse_args(argv)
    torch.backends.mha.set_fastpath_enabled(False)  # the same attention kernels on both sides
    try:
        module = load_official(args.official)
    except ParityError as err:
        print(f"parity_glccl: error: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:  # the official training forward all-gathers: one-process gloo group
        torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=0, world_size=1)
        try:
            tables = compare(module, args.texts, args.words, args.frames, args.seed)
        finally:
            torch.distributed.destroy_process_group()
    print(render(tables))
    if args.json:
        args.json.write_text(json.dumps(tables, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
