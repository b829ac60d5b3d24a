"""`glccl`: GLCCL (Jing et al., CAC 2025, arXiv 2605.17959) as its official code runs it (JingXiaolun/GLCCL,
`modules/modeling_glccl.py`, a fork of X-CLIP), with its Contrastive Score Consistency (CSC) loss.

GLIM, parameter-free: the sentence pools the seqTransf frames of each video into one text-guided video feature
v_ab = sum_i softmax_i(<t_a, f_bi>/5) f_bi, and each of the L token slots k pools them into a word-guided "frame"
u_abk the same way (raw, unnormalised features; temperature 5). X-CLIP's head (`baselines.xclip.MultiGrainedAOSM`,
learnable G, M and six L x L matrices) turns them into four scores (video-sentence, video-word, sentence-frame,
frame-word) whose mean S is trained with InfoNCE and ranks at test time; CSC = mean variance of the four scores on
positive pairs / mean variance on negative pairs. Section numbers (§n) refer to `../shared/reference/glccl_paper.md`.

v_ab and u_abk depend on the text, so the pooling runs per pair, but nothing [pair x D] is materialised: every dot
product with a pooled feature is a weighted sum of per-frame dots, and its norm comes from the per-video Gram matrix
(`benchmark.engine.text_guided`). Per pair: 2TD + 2LTD + T^2 + T + LT^2 + 2LT + L^2 T multiply-adds plus X-CLIP's
mixing at F = L (`glccl_pair_macs`: 492,956 at D=512, L=32, T=12, 2.06x X-CLIP's 238,880). The official code
materialises the [A,B,L,D] pooled features instead: 2TD + D + 2LTD + 2LD + L^2 D + mixing = 1,032,704 per pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from baselines.contrastive import ContrastiveConfig, ContrastiveRetrieval, float32_features
from baselines.xclip import MultiGrainedAOSM, project_text, xclip_mixing_macs
from benchmark.engine.losses import symmetric_infonce
from benchmark.engine.pairwise import row_dots
from benchmark.engine.temporal import SeqTransf
from benchmark.engine.text_guided import frame_gram, pooled_sq_norms, weights_from_dots
from benchmark.registry import register_model
from benchmark.retrieval_model import Features

CscDenominator = Literal["all-pairs", "negatives"]
CSC_DENOMINATORS = ("all-pairs", "negatives")
SCORE_NAMES = ("video_sentence", "video_word", "sentence_frame", "frame_word")
_EPS = 1e-12  # norms are floored at F.normalize's epsilon


def glccl_pair_macs(dim: int, words: int, frames: int, multi_grained: bool = True) -> int:
    """Multiply-adds per (text, video) pair of `GLCCL.score` as FlopCounterMode counts them (products, not softmax).

    Video level: the sentence-frame and t̂G-frame dots (2TD), the pooled norm's Gram product (T^2) and the
    video-sentence numerator (T). Multi-grained adds the word-frame and ŴM-frame dots (2LTD), the word-guided norms
    (LT^2), the video-word and sentence-frame numerators (2LT), the frame-word matrix (L^2 T) and X-CLIP's AOSM mixing
    with F = L.
    """
    video = 2 * frames * dim + frames**2 + frames
    if not multi_grained:
        return video
    multi = 2 * words * frames * dim + words * frames**2 + 2 * words * frames + words**2 * frames
    return video + multi + xclip_mixing_macs(words, words)


def contrastive_score_consistency(scores: torch.Tensor, denominator: CscDenominator = "all-pairs") -> torch.Tensor:
    """CSC (§4, code name `var_loss`) of an [M,B,B] stack of M >= 2 score matrices whose diagonal holds the positives.

    V = the unbiased variance (divisor M-1) of the M scores of each pair; loss = mean_a V_aa / mean_{a!=b} V_ab. The
    official code zeroes the diagonal and averages over all B^2 entries (`"all-pairs"`); `"negatives"` divides the
    off-diagonal sum by the B(B-1) negatives. Scale-free: scores scaled by λ_s give the same value.
    """
    if denominator not in CSC_DENOMINATORS:
        raise ValueError(f"CSC `denominator` must be one of {CSC_DENOMINATORS}, got {denominator!r}.")
    if scores.ndim != 3 or scores.shape[1] != scores.shape[2] or scores.shape[0] < 2 or scores.shape[1] < 2:
        raise ValueError(
            "CSC needs an [M,B,B] stack of M >= 2 score matrices over a batch of B >= 2 pairs, "
            f"got {tuple(scores.shape)}."
        )
    batch = scores.shape[1]
    variance = scores.var(dim=0)
    diagonal = torch.eye(batch, dtype=torch.bool, device=scores.device)
    negatives = batch * batch if denominator == "all-pairs" else batch * (batch - 1)
    return variance.diagonal().mean() / (variance.masked_fill(diagonal, 0.0).sum() / negatives)


@dataclass
class GLCCLConfig(ContrastiveConfig):
    """GLCCL's settings; each default is the official code as the README's commands run it (recipes per benchmark:
    baselines/presets/glccl/).

    `multi_grained` and `use_csc` are structural (set by the registered names, never by presets).
    """

    text_padding_mask: bool = False  # the X-CLIP/CLIP4Clip text tower is causal only
    multi_grained: bool = True  # the four scores; False = `glccl-video-only` (video-sentence score alone)
    use_csc: bool = True  # False = `glccl-no-csc`
    temporal_layers: int = 4  # seqTransf, `cross_num_hidden_layers`
    temporal_ln_eps: float = 1e-5  # seqTransf LayerNorm epsilon: CLIP's; the official module_cross has 1e-12 (parity)
    pool_temperature: float = 5.0  # GLIM softmax temperature, the default argument `temp=5`, never overridden
    aosm_temperature: float = 0.01  # X-CLIP's `/ 1e-2`
    max_words: int = 32  # L: the six mixing matrices are L x L (word-guided frames are indexed by words)
    # Official: no padding mask anywhere in the head (§8.3): padded frames enter the GLIM softmax and pool, padded token
    # slots pool frames and take part in every AOSM. True: padded frames leave the softmax, padded slots every AOSM.
    padding_masks: bool = False
    csc_weight: float = 0.5  # README `--csc_loss_weight 0.5`; main_glccl.py's `--var_loss_weight` default is 0.1
    csc_denominator: str = "all-pairs"  # official: the off-diagonal mean over B^2; "negatives": over B(B-1)

    def __post_init__(self) -> None:
        if self.csc_denominator not in CSC_DENOMINATORS:
            raise ValueError(
                f"GLCCL `csc_denominator` must be one of {CSC_DENOMINATORS}, got {self.csc_denominator!r}."
            )
        if self.use_csc and not self.multi_grained:
            raise ValueError(
                "CSC is the variance across the four scores; with multi_grained=false also set use_csc=false "
                "(or use the `glccl-video-only` model)."
            )
        for name in ("pool_temperature", "aosm_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GLCCL `{name}` must be positive, got {getattr(self, name)}.")

    def loss_terms(self) -> list[str]:
        """`nce`, plus `csc` when it exists and has a non-zero weight (a weight-0 term is removed)."""
        return ["nce", "csc"] if self.use_csc and self.csc_weight != 0 else ["nce"]


@register_model("glccl", config=GLCCLConfig, description="GLCCL: parameter-free GLIM + X-CLIP's four scores + CSC")
@register_model(
    "glccl-no-csc",
    config=GLCCLConfig,
    defaults={"use_csc": False},
    description="GLCCL without the Contrastive Score Consistency loss (InfoNCE on the fused score only)",
)
@register_model(
    "glccl-video-only",
    config=GLCCLConfig,
    defaults={"multi_grained": False, "use_csc": False},
    description="GLCCL's video-sentence score alone: seqTransf + sentence-guided pooling + G, no CSC",
)
class GLCCL(ContrastiveRetrieval):
    """CLIP + seqTransf + GLIM + X-CLIP's multi-grained head, trained with InfoNCE and CSC.

    `encode_video` runs seqTransf and the Gram matrix once per video, `encode_text` the projections once per text;
    `score` does the text-guided pooling and the four scores, the only per-pair work.
    """

    score_block_pairs = 1 << 9  # each pair holds [L,T] weights and dots and several [L,L] word-frame matrices

    def __init__(self, config: GLCCLConfig) -> None:
        super().__init__(config)
        self.config: GLCCLConfig = config
        self.seq_transf = SeqTransf(self.backbone, config.temporal_layers, config.temporal_ln_eps)
        self.sentence_video = nn.Parameter(torch.eye(self.embed_dim))  # G (`global_mat_weight`)
        self.word_frame = nn.Parameter(torch.eye(self.embed_dim)) if config.multi_grained else None  # M
        self.aosm = (
            MultiGrainedAOSM(config.max_words, config.max_words, config.aosm_temperature)
            if config.multi_grained
            else None
        )

    def active_loss_terms(self) -> list[str]:
        """The loss terms this configuration puts in the graph (see `GLCCLConfig.loss_terms`)."""
        return self.config.loss_terms()

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> Features:
        """Raw [EOS] and token states (the GLIM queries), t̂, t̂G and, multi-grained, Ŵ, ŴM and the word mask."""
        eos, states = self.backbone.encode_text(tokens, mask)
        if self.word_frame is None:
            return {"eos": eos, **project_text(eos, None, self.sentence_video, None)}
        return {
            "eos": eos,
            "states": states,
            **project_text(eos, states, self.sentence_video, self.word_frame),
            "word_mask": mask if self.config.padding_masks else torch.ones_like(mask),
        }

    def encode_video(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> Features:
        """seqTransf frame features (raw, as GLIM pools them), their mask and their Gram matrix."""
        temporal = self.seq_transf(self.frame_features(frames), frame_mask)
        return {"frames": temporal, "frame_mask": frame_mask, "frame_gram": frame_gram(temporal)}

    def scores(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """[M, n_text, n_video] unscaled scores in `SCORE_NAMES` order (M = 4; M = 1 for the video-only ablation)."""
        cfg = self.config
        masking = "before-softmax" if cfg.padding_masks else "none"
        with torch.autocast(device_type=video_feats["frames"].device.type, enabled=False):
            text, video = float32_features(text_feats), float32_features(video_feats)
            frames, frame_mask, gram = video["frames"], video["frame_mask"], video["frame_gram"]
            # One product with the frames for all four kinds of query: [EOS] t_a, t̂G, token states w_ak and ŵ_ak M.
            n_text = len(text["eos"])
            queries = [text["eos"], text["text_g"]]
            if self.aosm is not None:
                queries += [text["states"].flatten(0, 1), text["words_a"].flatten(0, 1)]
            dots = row_dots(torch.cat(queries), frames)  # [rows, B, T]
            sentence_dots, g_dots = dots[:n_text], dots[n_text : 2 * n_text]
            # Video level: v_ab pooled by the sentence, [A,B,T] weights.
            alpha = weights_from_dots(sentence_dots, frame_mask, cfg.pool_temperature, masking)
            video_norm = pooled_sq_norms(alpha, gram).clamp_min(_EPS * _EPS).sqrt()  # |v_ab|
            video_sentence = torch.einsum("abt,abt->ab", alpha, g_dots) / video_norm
            if self.aosm is None:
                return video_sentence[None]
            # Frame level: u_abj pooled by token slot j, [A,L,B,T] weights; laid out for `MultiGrainedAOSM.pool`.
            word_dots, m_dots = (part.unflatten(0, text["states"].shape[:2]) for part in dots[2 * n_text :].chunk(2))
            beta = weights_from_dots(word_dots, frame_mask, cfg.pool_temperature, masking)
            frame_norm = pooled_sq_norms(beta, gram).clamp_min(_EPS * _EPS).sqrt()  # |u_abj|, [A,L,B]
            word_norm = text["states"].norm(dim=-1).clamp_min(_EPS)[:, :, None]  # |w_ak|, [A,L,1]
            text_norm = text["eos"].norm(dim=-1).clamp_min(_EPS)[:, None, None]  # |t_a|
            video_word = torch.einsum("akbt,abt->akb", word_dots, alpha) / (video_norm[:, None, :] * word_norm)
            sentence_frame = torch.einsum("ajbt,abt->ajb", beta, sentence_dots) / (frame_norm * text_norm)
            # <ŵ_ak M, u_abj> = sum_t beta_ajbt <ŵ_ak M, f_bt>
            word_frame = torch.einsum("akbt,ajbt->jakb", m_dots, beta).contiguous()  # the AOSMs reduce over j and k
            word_frame /= frame_norm.transpose(0, 1)[:, :, None, :]
            valid = text["word_mask"].bool()  # word-guided frames are indexed by token slots too: [F,A,1] validity
            pooled = self.aosm.pool(video_word, sentence_frame.transpose(0, 1), word_frame, valid, valid.t()[..., None])
            return torch.stack((video_sentence, *pooled))

    def score(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """S = the mean of the four scores (the video-sentence score alone in `glccl-video-only`), [n_text, n_video]."""
        parts = self.scores(text_feats, video_feats)
        return sum(parts.unbind(0)) / parts.shape[0]

    def losses(self, text_feats: Features, video_feats: Features, video_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """InfoNCE on S, plus λ·CSC over the four scores when active; a removed CSC is never computed."""
        cfg = self.config
        parts = self.scores(text_feats, video_feats)
        positives = video_ids if cfg.nce_same_video_positives else None
        with torch.autocast(device_type=video_ids.device.type, enabled=False):
            out = {"nce": symmetric_infonce(sum(parts.unbind(0)) / parts.shape[0], self.logit_scale(), positives)}
            if "csc" in self.active_loss_terms():
                csc = contrastive_score_consistency(parts, cfg.csc_denominator)  # type: ignore[arg-type]
                out["csc"] = cfg.csc_weight * csc
        return out
