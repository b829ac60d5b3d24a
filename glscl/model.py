"""GLSCL (arXiv 2405.12710) as the official code runs it, with every behaviour-changing quirk as a named switch.

Quirk numbers (#n) refer to `../shared/reference/glscl_official_code.md` §8, section numbers (§n) to its sections.
Defaults reproduce the official MSR-VTT training script (zchoi/GLSCL@06979f8 `train_msrvtt.sh`); the per-benchmark
recipes live in `glscl/presets/`. Ablations are extra registered names with other structural defaults; presets never
touch the structural switches (`use_*`), so a preset cannot turn an ablation back on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.engine.clip_model import ClipRetrievalModel, RetrievalConfig
from benchmark.engine.losses import symmetric_infonce
from benchmark.engine.temporal import SeqTransf
from benchmark.engine.text_guided import frame_gram
from benchmark.registry import register_model
from benchmark.retrieval_model import Features
from glscl.functional import (
    global_interaction,
    inter_consistency_loss,
    intra_diversity_loss,
    local_similarity,
)
from glscl.local_module import LocalInteraction

_CHOICES = {
    "gim_mask": ("after-softmax", "before-softmax"),
    "decoder_layer": ("torch-post-ln", "cross-attention"),
    "idl_modalities": ("video", "both"),
    "icl_normalize_by": ("queries", "batch"),
}


@dataclass
class GLSCLConfig(RetrievalConfig):
    """GLSCL's hyperparameters and parity switches; each default is the official code's behaviour."""

    # Structure: which parts exist (set by the registered ablation names, never by presets).
    use_global: bool = True  # the GIM (Sim1); False = `glscl-local-only`
    use_local: bool = True  # the local module (Sim2, concepts); False = `glscl-global-only`, nothing of it is built
    use_icl: bool = True  # ICL term (both parts); False = `glscl-no-icl`
    use_idl: bool = True  # IDL term; False = `glscl-no-idl`
    # Temporal module: seqTransf, always on in the official code (§3); `num_hidden_layers`.
    temporal_layers: int = 4
    temporal_ln_eps: float = 1e-5  # its LayerNorm epsilon: CLIP's; the official TF-style LayerNorm has 1e-12 (parity)
    # GIM (§4).
    temp: float = 3.0  # softmax temperature; scripts 3, argparse default 5 (LSMDC, #8)
    # #7: padded frames sit in the softmax denominator; "before-softmax" excludes them. The weights differ by one factor
    # per pair, which Sim1's cosine cancels: scores agree to rounding (kept as a switch for parity records).
    gim_mask: str = "after-softmax"
    # Local interaction module (§5).
    num_queries: int = 8  # `query_number`: scripts 8 (ActivityNet 12), argparse default 16
    decoder_layers: int = 3  # N_L, `cross_att_layer`
    decoder_heads: int = 8  # nn.TransformerDecoderLayer(nhead=8)
    decoder_ff: int = 2048  # PyTorch's default dim_feedforward
    decoder_dropout: float = 0.1  # PyTorch's default dropout
    decoder_layer: str = "torch-post-ln"  # §9: official = SA + CA + FFN post-LN layer; "cross-attention" = paper Fig. 2
    decoder_identical_init: bool = True  # §5: nn.TransformerDecoder deep-copies one layer, so all N_L start identical
    decoder_key_padding_mask: bool = False  # #7: no memory_key_padding_mask (padded words/frames are attended)
    share_queries: bool = True  # `query_share=1` (#9: test_msrvtt.sh uses 0 with untrained queries; not reproduced)
    share_decoder: bool = True  # `cross_att_share=1`
    lambda_local: float = 0.5  # λ = `loss2_weight`: S = Sim1 + λ·Sim2 at training and test (§6.1)
    # Losses (§6.2).
    alpha: float = 1e-4  # IDL weight (#8: LSMDC runs with the default 0.01)
    idl_margin: float = 0.1
    idl_modalities: str = "video"  # #5: IDL on video concepts only; "both" adds the text-side term
    beta: float = 0.02  # ICL regulariser weight; train_msrvtt.sh 0.02, README and other scripts 0.005 (#8)
    icl_target: float = 0.75
    icl_normalize_by: str = "queries"  # #4: H divided by Q, not B; "batch" is the corrected variant
    icl_mse_weight: float = 1.0  # #6: the MSE part of ICL has no weight in the code (no flag turns it off)
    nce_same_video_positives: bool = False  # #12: `sim_targets` is unused, so same-video captions are negatives

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"GLSCL config `{name}` must be one of {allowed}, got {getattr(self, name)!r}.")
        if not (self.use_global or self.use_local):
            raise ValueError("GLSCL needs the GIM or the local module: use_global and use_local cannot both be false.")
        if (self.use_icl or self.use_idl) and not self.use_local:
            raise ValueError(
                "ICL and IDL act on the local module's concepts; with use_local=false also set use_icl=false and "
                "use_idl=false (or use the `glscl-global-only` model)."
            )
        if self.temp <= 0:
            raise ValueError(f"GLSCL temp must be positive, got {self.temp}.")
        if "idl" in self.loss_terms() and self.num_queries < 2:
            raise ValueError(f"IDL needs num_queries >= 2, got {self.num_queries}; raise it or use glscl-no-idl.")

    def loss_terms(self) -> list[str]:
        """`nce`, plus `icl` / `idl` when their part exists and has a non-zero weight (a weight-0 term is removed)."""
        terms = ["nce"]
        if self.use_local and self.use_icl and (self.beta != 0 or self.icl_mse_weight != 0):
            terms.append("icl")
        if self.use_local and self.use_idl and self.alpha != 0:
            terms.append("idl")
        return terms


def _full_precision(feats: Features) -> tuple[Features, torch.autocast]:
    """fp32 copies of floating features and a context that turns autocast off: the head runs in fp32 as officially
    (§2), so cosines, the IDL hinge at 1 - margin and the ICL target are not rounded to bf16/fp16 under AMP."""
    device = next(iter(feats.values())).device.type
    return {k: v.float() if v.is_floating_point() else v for k, v in feats.items()}, torch.autocast(
        device, enabled=False
    )


def _padding(mask: torch.Tensor, enabled: bool) -> torch.Tensor | None:
    """A key-padding mask (True = ignore) from a 1/0 validity mask, or None when the switch is off (#7)."""
    return (mask == 0) if enabled else None


@register_model(
    "glscl", config=GLSCLConfig, description="GLSCL as the official code runs it (GIM + shared LIM + ICL + IDL)"
)
@register_model(
    "glscl-no-icl", config=GLSCLConfig, defaults={"use_icl": False}, description="GLSCL without ICL (both its parts)"
)
@register_model("glscl-no-idl", config=GLSCLConfig, defaults={"use_idl": False}, description="GLSCL without IDL")
@register_model(
    "glscl-no-aux",
    config=GLSCLConfig,
    defaults={"use_icl": False, "use_idl": False},
    description="GLSCL without the auxiliary losses (local module trained by InfoNCE only)",
)
@register_model(
    "glscl-global-only",
    config=GLSCLConfig,
    defaults={"use_local": False, "use_icl": False, "use_idl": False},
    description="GLSCL's GIM alone: seqTransf + parameter-free text-conditioned pooling, no local module",
)
@register_model(
    "glscl-local-only",
    config=GLSCLConfig,
    defaults={"use_global": False},
    description="GLSCL's local module alone (S = Sim2), with ICL and IDL",
)
class GLSCL(ClipRetrievalModel):
    """CLIP + seqTransf + parameter-free GIM + shared local interaction module, trained with InfoNCE, ICL and IDL.

    Per item, `encode_*` run the temporal module and the decoder once; `score` only does the GIM and concept dot
    products, so a 1k x 1k matrix never re-runs the decoder per pair (#14). A block of texts meets a block of videos
    in three matrix products (frame dots, the batched Gram forms, flattened concepts) plus [A,B,T] elementwise work.
    """

    def __init__(self, config: GLSCLConfig) -> None:
        super().__init__(config)
        self.config: GLSCLConfig = config
        self.temporal = SeqTransf(self.backbone, layers=config.temporal_layers, ln_eps=config.temporal_ln_eps)
        self.local = (
            LocalInteraction(
                dim=self.embed_dim,
                num_queries=config.num_queries,
                layers=config.decoder_layers,
                heads=config.decoder_heads,
                feedforward=config.decoder_ff,
                dropout=config.decoder_dropout,
                kind=config.decoder_layer,  # type: ignore[arg-type]
                share_queries=config.share_queries,
                share_decoder=config.share_decoder,
                identical_init=config.decoder_identical_init,
            )
            if config.use_local
            else None
        )

    def active_loss_terms(self) -> list[str]:
        """The loss terms this configuration puts in the graph (see `GLSCLConfig.loss_terms`)."""
        return self.config.loss_terms()

    def encode_video(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> Features:
        """Frames -> seqTransf features (+ their Gram, for the GIM) and unit video concepts, once per video.

        Concepts are stored L2-normalised: Sim2, ICL and IDL all use them only as unit vectors.
        """
        temporal = self.temporal(self.frame_features(frames), frame_mask)
        feats: Features = {}
        if self.config.use_global:
            feats.update(frames=temporal, frame_mask=frame_mask, frame_gram=frame_gram(temporal))
        if self.local is not None:
            padding = _padding(frame_mask, self.config.decoder_key_padding_mask)
            feats["concepts"] = F.normalize(self.local.video_concepts(temporal, padding), dim=-1)
        return feats

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> Features:
        """Tokens -> raw [EOS] feature (for the GIM) and unit text concepts from all token states, once per text."""
        eos, states = self.backbone.encode_text(tokens, mask)
        feats: Features = {}
        if self.config.use_global:
            feats["eos"] = eos
        if self.local is not None:
            concepts = self.local.text_concepts(states, _padding(mask, self.config.decoder_key_padding_mask))
            feats["concepts"] = F.normalize(concepts, dim=-1)
        return feats

    def score(self, text_feats: Features, video_feats: Features) -> torch.Tensor:
        """S = Sim1 + λ·Sim2 (either part alone in the single-branch ablations); [n_text, n_video], any chunk sizes."""
        cfg = self.config
        text_feats, no_amp = _full_precision(text_feats)
        video_feats, _ = _full_precision(video_feats)
        with no_amp:
            sim1 = (
                global_interaction(
                    text_feats["eos"],
                    video_feats["frames"],
                    video_feats["frame_mask"],
                    cfg.temp,
                    mask=cfg.gim_mask,  # type: ignore[arg-type]
                    gram=video_feats["frame_gram"],
                )
                if cfg.use_global
                else None
            )
            if not cfg.use_local:
                return sim1
            sim2 = local_similarity(text_feats["concepts"], video_feats["concepts"], unit=True)
            return sim2 if sim1 is None else sim1 + cfg.lambda_local * sim2

    def losses(self, text_feats: Features, video_feats: Features, video_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """InfoNCE on the fused score plus the active auxiliary terms; removed terms are never computed."""
        cfg = self.config
        active = self.active_loss_terms()
        sim = self.score(text_feats, video_feats)
        text_feats, no_amp = _full_precision(text_feats)
        video_feats, _ = _full_precision(video_feats)
        with no_amp:
            positives = video_ids if cfg.nce_same_video_positives else None
            out = {"nce": symmetric_infonce(sim, self.logit_scale(), positives)}
            if "icl" in active:
                out["icl"] = inter_consistency_loss(
                    video_feats["concepts"],
                    text_feats["concepts"],
                    cfg.beta,
                    target=cfg.icl_target,
                    normalize_by=cfg.icl_normalize_by,  # type: ignore[arg-type]
                    mse_weight=cfg.icl_mse_weight,
                )
            if "idl" in active:
                idl = intra_diversity_loss(video_feats["concepts"], cfg.idl_margin)
                if cfg.idl_modalities == "both":
                    idl = idl + intra_diversity_loss(text_feats["concepts"], cfg.idl_margin)
                out["idl"] = cfg.alpha * idl
        return out
