"""`xclip`: X-CLIP's multi-grained similarity with attention over similarity matrices (Ma et al., ACM MM 2022).

Four scores, averaged: video-sentence `t̂ G v̄`, video-word `AOSM(Ŵ v̄, U_w)`, sentence-frame `AOSM(H t̂, U_f)` and
frame-word from `M = Ŵ A Hᵀ` (AOSM over words per frame and over frames per word, then AOSM again), with
`AOSM(x, U) = Σ_j x_j [softmax(x/τ) U]_j`. v̄ pools the seqTransf frames, H are the original CLIP frames.
Offline per text: t̂, t̂G, Ŵ, ŴA; per video: v̄, H. Online per pair: D(1+L+T+LT) multiply-adds of dot products
plus 2L² + 2T² + TL² + LT² for the U mixing (about 239k at D=512, L=32, T=12), the cost GLSCL's efficiency claims
are measured against. Padding is masked everywhere (frames always; words unless `mask_words=False`, which
reproduces the released code, where padded word positions take part).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.contrastive import ContrastiveConfig, ContrastiveRetrieval
from baselines.meanpool import mean_pool_frames
from benchmark.engine.pairwise import position_dots, softmax_weighted_sum
from benchmark.engine.temporal import SeqTransf
from benchmark.registry import register_model
from benchmark.retrieval_model import Features


def xclip_dot_macs(dim: int, words: int, frames: int) -> int:
    """Dot-product multiply-adds per pair: video-sentence, video-word, sentence-frame and the word-frame matrix."""
    return dim * (1 + words + frames + words * frames)


def xclip_mixing_macs(words: int, frames: int) -> int:
    """U-mixing multiply-adds per pair of the six AOSM matrices (softmax weights times U)."""
    return 2 * words**2 + 2 * frames**2 + frames * words**2 + words * frames**2


class AOSM(nn.Module):
    """Attention over a similarity vector: Σ_j x_j [softmax(x/τ) U]_j over valid j, U learnable (identity init).

    Computed as Σ_i softmax(x/τ)_i [U x]_i (the same sum regrouped), so the mixing is one matrix product along the
    aggregated dimension of a whole block. Runs in float32 with autocast off: τ = 0.01 saturates the softmax, which
    half precision cannot represent.
    """

    def __init__(self, size: int, temperature: float) -> None:
        super().__init__()
        self.size = size
        self.temperature = temperature
        self.mix = nn.Parameter(torch.eye(size))

    def forward(self, sims: torch.Tensor, valid: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
        """Similarities aggregated along `dim` -> that dimension removed; `valid` is a boolean mask broadcastable to
        `sims`, or None when every entry is valid. Fastest when `dim` is not the last one (the mixing is then one
        batched product over the items)."""
        dim = dim % sims.ndim
        n = sims.shape[dim]
        if n > self.size:
            raise ValueError(
                f"AOSM (X-CLIP's attention over similarities) got {n} entries but was built for at most {self.size}; "
                "raise max_words/max_frames."
            )
        with torch.autocast(device_type=sims.device.type, enabled=False):
            sims = sims.float()
            mix = self.mix[:n, :n].float()
            logits, kept = sims, sims
            if valid is not None:
                logits = sims.masked_fill(~valid, torch.finfo(torch.float32).min)
                kept = sims.masked_fill(~valid, 0.0)
            if dim == sims.ndim - 1:
                mixed = kept @ mix.t()
            else:
                mixed = (mix @ kept.reshape(math.prod(sims.shape[:dim]), n, -1)).view(sims.shape)
            return softmax_weighted_sum(logits, mixed, dim, self.temperature)


class MultiGrainedAOSM(nn.Module):
    """X-CLIP's attention over similarity matrices for the video-word, sentence-frame and frame-word scores: six AOSMs
    over L words and F frames (GLCCL reuses it with its L word-guided frames, F = L)."""

    def __init__(self, max_words: int, max_frames: int, temperature: float = 0.01) -> None:
        super().__init__()
        self.video_word = AOSM(max_words, temperature)  # U_w
        self.sentence_frame = AOSM(max_frames, temperature)  # U_f
        self.words_per_frame = AOSM(max_words, temperature)  # U_w1: r_i over words
        self.frames_per_word = AOSM(max_frames, temperature)  # U_f1: c_l over frames
        self.frame_aggregate = AOSM(max_frames, temperature)  # U_f2: over r
        self.word_aggregate = AOSM(max_words, temperature)  # U_w2: over c

    def pool(
        self,
        video_word: torch.Tensor,
        sentence_frame: torch.Tensor,
        word_frame: torch.Tensor,
        word_valid: torch.Tensor,
        frame_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The video-word, sentence-frame and frame-word scores, each [A,B], of a block of A texts and B videos.

        Inputs are laid out so that every AOSM aggregates over a leading dimension (one batched product per mixing):
        [A,L,B] video-word, [F,A,B] sentence-frame and [F,A,L,B] word-frame similarities, the [A,L] word validity and a
        frame validity broadcastable to [F,A,B] (X-CLIP's frames belong to videos, [F,1,B]; GLCCL's to texts, [F,A,1]).
        """
        words = None if bool(word_valid.all()) else word_valid[:, :, None]  # [A,L,1]; None: no masking at all
        frames = None if bool(frame_valid.all()) else frame_valid
        per_frame = self.words_per_frame(word_frame, None if words is None else words[None], dim=2)  # r, [F,A,B]
        per_word = self.frames_per_word(word_frame, None if frames is None else frames[:, :, None, :], dim=0)  # c
        return (
            self.video_word(video_word, words, dim=1),
            self.sentence_frame(sentence_frame, frames, dim=0),
            0.5 * (self.frame_aggregate(per_frame, frames, dim=0) + self.word_aggregate(per_word, words, dim=1)),
        )


def project_text(
    eos: torch.Tensor, states: torch.Tensor | None, sentence_matrix: torch.Tensor, word_matrix: torch.Tensor | None
) -> Features:
    """X-CLIP's per-text features: t̂ and t̂G from [B,D] [EOS] features; Ŵ and ŴA from [B,L,D] token states when given."""
    text = F.normalize(eos, dim=-1)
    feats = {"text": text, "text_g": text @ sentence_matrix}
    if states is not None and word_matrix is not None:
        words = F.normalize(states, dim=-1)
        feats.update(words=words, words_a=words @ word_matrix)
    return feats


class XClipHead(MultiGrainedAOSM):
    """X-CLIP's cross-grained similarity head: learnable G, A (D x D) and the six AOSM mixing matrices."""

    def __init__(
        self, dim: int, max_words: int, max_frames: int, temperature: float = 0.01, mask_words: bool = True
    ) -> None:
        super().__init__(max_words, max_frames, temperature)
        self.mask_words = mask_words
        self.sentence_video = nn.Parameter(torch.eye(dim))  # G
        self.word_frame = nn.Parameter(torch.eye(dim))  # A

    def prepare_text(self, eos: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> Features:
        """[B,D] [EOS], [B,L,D] token states, [B,L] mask -> t̂, t̂G, Ŵ, ŴA and the word mask used by the score."""
        word_mask = mask if self.mask_words else torch.ones_like(mask)
        return {**project_text(eos, states, self.sentence_video, self.word_frame), "word_mask": word_mask}

    def prepare_video(self, temporal_frames: torch.Tensor, frames: torch.Tensor, frame_mask: torch.Tensor) -> Features:
        """seqTransf frames -> v̄ (mean pooled); original CLIP frames -> H (normalised); plus the frame mask."""
        return {
            "video": mean_pool_frames(temporal_frames, frame_mask),
            "frames": F.normalize(frames, dim=-1),
            "frame_mask": frame_mask,
        }

    def score(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """[n_text, n_video] mean of the four X-CLIP similarities (unscaled; the loss applies λ_s).

        A block of A texts and B videos: one product with the pooled videos (t̂G and the words), and one with the frames
        (ŴA and t̂) that gives the sentence-frame dots and M, laid out [T,A,L,B] so that every AOSM aggregates over a
        leading dimension.
        """
        words, frames, video = text_feats["words"], video_feats["frames"], video_feats["video"]
        n_text, n_words = words.shape[:2]
        n_video, n_frames = frames.shape[:2]
        by_video = torch.cat([words.flatten(0, 1), text_feats["text_g"]]) @ video.t()  # [A*L + A, B]
        queries = torch.cat([text_feats["words_a"].flatten(0, 1), text_feats["text"]])
        by_frame = position_dots(queries, frames)  # [T, A*L + A, B]
        video_sentence = by_video[n_text * n_words :]
        video_word, sentence_frame, frame_word = self.pool(
            by_video[: n_text * n_words].view(n_text, n_words, n_video),
            by_frame[:, n_text * n_words :],
            by_frame[:, : n_text * n_words].view(n_frames, n_text, n_words, n_video),  # M, [T,A,L,B]
            text_feats["word_mask"].bool(),
            video_feats["frame_mask"].bool().t()[:, None, :],
        )
        return (video_sentence + video_word + sentence_frame + frame_word) / 4


@dataclass
class XClipConfig(ContrastiveConfig):
    """seqTransf depth, AOSM temperature τ, the L and T the mixing matrices are sized for, and word masking."""

    temporal_layers: int = 4
    temporal_ln_eps: float = 1e-5  # seqTransf LayerNorm epsilon (official module_cross: 1e-12)
    temperature: float = 0.01
    max_words: int = 32
    max_frames: int = 12
    mask_words: bool = True


@register_model(
    "xclip",
    config=XClipConfig,
    description="X-CLIP: video/sentence/frame/word similarities with AOSM aggregation, the expensive per-pair head.",
)
class XClip(ContrastiveRetrieval):
    """seqTransf video pooling plus X-CLIP's multi-grained head; trained with InfoNCE over all batch pairs."""

    score_block_pairs = 1 << 11  # each pair holds several [T, L] matrices (M, its softmaxes and mixes)

    def __init__(self, config: XClipConfig) -> None:
        super().__init__(config)
        self.seq_transf = SeqTransf(self.backbone, config.temporal_layers, config.temporal_ln_eps)
        self.head = XClipHead(
            self.embed_dim, config.max_words, config.max_frames, config.temperature, config.mask_words
        )

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> Features:
        """Sentence and word features (and their G / A projections) of each text."""
        eos, states = self.backbone.encode_text(tokens, mask)
        return self.head.prepare_text(eos, states, mask)

    def encode_video(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> Features:
        """Pooled seqTransf video feature and the normalised original frame features."""
        features = self.frame_features(frames)
        return self.head.prepare_video(self.seq_transf(features, frame_mask), features, frame_mask)

    def score(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """The per-pair X-CLIP similarity (see XClipHead.score)."""
        return self.head.score(text_feats, video_feats)
