"""The CLIP backbone shared by every method: open_clip models from local weights, tiny stand-ins for SynthVTT.

Outputs follow the GLSCL/CLIP4Clip family: per frame the [CLS] feature after ``ln_post`` and the visual projection,
per text the [EOS] feature and every token state after ``ln_final`` and the text projection (padding included).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from torch import nn

from benchmark.engine import weights_file
from benchmark.engine.feature_cache import SHARED, FeatureCache, weights_digest

BACKBONE_CONFIG_DIR = Path(__file__).parents[1] / "presets" / "backbones"
open_clip.add_model_config(BACKBONE_CONFIG_DIR)

class BackboneWeightsError(FileNotFoundError):
    """The CLIP weights a run needs are missing or unreadable; the message says what to download and where."""


@dataclass(frozen=True)
class BackboneSpec:
    """Which backbone to build and from which weights (None = random init, only for tests and cost counts)."""

    name: str = "ViT-B-32"
    weights: str | None = None
    pretrained_tag: str | None = None
    text_padding_mask: bool = True
    # MLP activation: True = QuickGELU (OpenAI CLIP), False = GELU, None = decided by `resolve_quick_gelu`.
    quick_gelu: bool | None = None


# Keys of a CLIP ViT state dict in OpenAI's layout (open_clip keeps it). A file in this layout that does not record its
# activation is taken to be OpenAI's weights, the ones every real preset uses, which were trained with QuickGELU.
_OPENAI_LAYOUT_KEYS = ("visual.transformer.resblocks.0.attn.in_proj_weight", "logit_scale")


def check_weights_file(path: str | Path) -> str:
    """The format of a CLIP weights file from its first bytes; BackboneWeightsError when it is missing, unreadable or
    a TorchScript archive. Cheap, so runs check a given file before any work."""
    try:
        return weights_file.require_loadable(path)
    except weights_file.WeightsFileError as err:
        raise BackboneWeightsError(f"CLIP weights: {err}") from err


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], bool]:
    """Tensors of a CLIP weights file (.safetensors, or a state dict saved by torch.save) and whether they need
    QuickGELU (OpenAI's weights). Nothing stored in the file can run: safetensors holds only tensors, torch.save files
    are read with ``weights_only=True``, and TorchScript archives (OpenAI's .pt) are refused with the conversion
    command. QuickGELU: the activation a converted file records, else whether the keys are in OpenAI's layout."""
    kind = check_weights_file(path)
    try:
        if kind == weights_file.SAFETENSORS:
            checkpoint, metadata = weights_file.read_safetensors(path)
        else:
            checkpoint, metadata = weights_file.read_torch_weights(path), {}
    except weights_file.WeightsFileError as err:
        raise BackboneWeightsError(f"CLIP weights: {err}") from err
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise BackboneWeightsError(f"`{path}` holds no state dict (found {type(checkpoint).__name__}).")
    odd = next((k for k, v in checkpoint.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
    if odd is not None:
        raise BackboneWeightsError(f"`{path}` is not a state dict of tensors: entry {odd!r} is "
                                   f"{type(checkpoint[odd]).__name__}.")  # fmt: skip
    state = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    activation = metadata.get(weights_file.ACTIVATION_KEY)
    quick_gelu = activation == "quick_gelu" if activation else all(k in state for k in _OPENAI_LAYOUT_KEYS)
    return state, quick_gelu


def weights_download_hint(name: str) -> str:
    """Where to get safetensors CLIP weights for backbone `name` (open_clip's copy of OpenAI's on the HF Hub)."""
    repo = ((open_clip.get_pretrained_cfg(name, "openai") or {}).get("hf_hub") or "").strip("/")
    if not repo:
        return f"Use a local open_clip checkpoint of `{name}` (.safetensors or a torch.save state dict)."
    return (f"Download `open_clip_model.safetensors` of OpenAI's weights from the Hugging Face Hub repository "
            f"`{repo}` (README, 'CLIP weights').")  # fmt: skip


# Buffers that OpenAI's CLIP state dicts carry besides the tensors of the model (dropped before loading).
OPENAI_MARKERS = ("input_resolution", "context_length", "vocab_size")


def resolve_quick_gelu(spec: BackboneSpec, file_quick_gelu: bool | None = None) -> bool:
    """The activation to build: the spec's when set (presets say it); else what the weights file implies
    (`read_state_dict`: a recorded activation, else OpenAI's layout means QuickGELU); else the pretrained tag's or the
    open_clip config's own choice. The built model records the result, so that a reload rebuilds it."""
    if spec.quick_gelu is not None:
        return spec.quick_gelu
    if file_quick_gelu is not None:
        return file_quick_gelu
    if spec.pretrained_tag is not None and spec.weights is None:
        tag = open_clip.get_pretrained_cfg(spec.name, spec.pretrained_tag) or {}
        if "quick_gelu" in tag:
            return bool(tag["quick_gelu"])
    return bool((open_clip.get_model_config(spec.name) or {}).get("quick_gelu", False))


def uses_quick_gelu(model: open_clip.CLIP) -> bool:
    """Whether the text tower's MLPs run QuickGELU (what the model was actually built with)."""
    return isinstance(model.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)


def _missing_weights_message(name: str) -> str:
    return (
        f"Backbone `{name}` needs CLIP weights and none were given. {weights_download_hint(name)} Pass its path "
        "(`--clip-weights FILE`, or the config field `clip_weights`). For SynthVTT run `tvbench pretrain` first."
    )


class _DropRandomInitNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def _quiet_random_init() -> Iterator[None]:
    """Hide open_clip's "initialized randomly" warning: weights are loaded right after, or random init was asked for."""
    log_filter = _DropRandomInitNotice()
    logging.getLogger().addFilter(log_filter)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(log_filter)


def check_backbone_name(name: str) -> None:
    """Raise KeyError unless open_clip (with tvbench's own configs) knows the backbone `name`."""
    if name not in open_clip.list_models():
        raise KeyError(f"Unknown backbone `{name}`; open_clip knows e.g. ViT-B-32, ViT-B-16, tvbench-tiny.")


# `BackboneSpec.weights` value for a backbone whose tensors a tvbench checkpoint fills right after it is built.
FROM_CHECKPOINT = "checkpoint"


def _meta_clip(name: str, quick_gelu: bool = False) -> open_clip.CLIP:
    """An open_clip CLIP on the meta device: shapes only, no random draws (which take seconds at ViT-B size)."""
    with torch.device("meta"), _quiet_random_init():
        return open_clip.create_model(name, pretrained=None, quick_gelu=quick_gelu, device=torch.device("meta"))


def count_parameters(name: str) -> int:
    """Parameters of backbone `name` (both towers, embeddings and temperature), counted without building weights."""
    check_backbone_name(name)
    return sum(p.numel() for p in _meta_clip(name).parameters())


def clip_skeleton(name: str, quick_gelu: bool) -> open_clip.CLIP:
    """An open_clip CLIP with uninitialised tensors, for weights that are loaded right after: built on the meta
    device (`_meta_clip`), then allocated; the one non-persistent buffer (the text tower's causal mask) is rebuilt."""
    model = _meta_clip(name, quick_gelu).to_empty(device="cpu")
    model.attn_mask = torch.full_like(model.attn_mask, float("-inf")).triu_(1)
    return model


def create_clip(spec: BackboneSpec, allow_random: bool = False) -> open_clip.CLIP:
    """An open_clip CLIP for `spec`: from the local file, from an open_clip tag (online), random when allowed, or
    an uninitialised skeleton that a checkpoint fills (`weights=FROM_CHECKPOINT`)."""
    check_backbone_name(spec.name)
    if spec.weights == FROM_CHECKPOINT:
        return clip_skeleton(spec.name, resolve_quick_gelu(spec))
    if spec.weights is not None:
        state, file_quick_gelu = read_state_dict(spec.weights)
        model = clip_skeleton(spec.name, resolve_quick_gelu(spec, file_quick_gelu))
        for key in OPENAI_MARKERS:
            state.pop(key, None)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise BackboneWeightsError(
                f"CLIP weights `{spec.weights}` do not fit backbone `{spec.name}`: {' '.join(str(err).split())[:400]}. "
                "Check that --backbone matches the file (e.g. ViT-B-32 weights for backbone ViT-B-32)."
            ) from err
        return model
    if spec.pretrained_tag is not None:
        tags = open_clip.list_pretrained_tags_by_model(spec.name)
        if spec.pretrained_tag not in tags:  # open_clip would also take a file path here; files go through clip_weights
            raise BackboneWeightsError(
                f"`{spec.pretrained_tag}` is not an open_clip pretrained tag of `{spec.name}` (tags: "
                f"{', '.join(tags) or 'none'}). A weights file goes to `--clip-weights FILE` / `clip_weights`."
            )
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise BackboneWeightsError(
                f"Pretrained tag `{spec.pretrained_tag}` needs a download but HF_HUB_OFFLINE=1. "
                + _missing_weights_message(spec.name)
            )
        return open_clip.create_model(spec.name, pretrained=spec.pretrained_tag, quick_gelu=resolve_quick_gelu(spec))
    if not allow_random:
        raise BackboneWeightsError(_missing_weights_message(spec.name))
    with _quiet_random_init():
        return open_clip.create_model(spec.name, pretrained=None, quick_gelu=resolve_quick_gelu(spec))


class Backbone(nn.Module):
    """Frame and text encoders of one CLIP model, in the form the retrieval heads consume."""

    def __init__(self, spec: BackboneSpec, allow_random: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.clip = create_clip(spec, allow_random=allow_random)
        self.quick_gelu = uses_quick_gelu(self.clip)
        visual = self.clip.visual
        self.embed_dim = int(self.clip.text_projection.shape[1])
        self.image_size = int(visual.image_size[0] if isinstance(visual.image_size, tuple) else visual.image_size)
        self.mean = tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
        self.std = tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
        self.context_length = int(self.clip.positional_embedding.shape[0])
        self.text_heads = int(self.clip.transformer.resblocks[0].attn.num_heads)
        self._cache: FeatureCache | None = None
        self._digest = b""

    def freeze(self, cache: FeatureCache = SHARED) -> None:
        """The frozen-encoder regime: no gradients into either tower (nor the temperature), and every frame's and
        text's outputs computed once and then served from `cache` (keyed by these weights and the input bytes)."""
        self.requires_grad_(False)
        self._cache, self._digest = cache, weights_digest(self.clip)

    @property
    def frozen(self) -> bool:
        """Whether `freeze` was called: the towers are fixed and their outputs cached."""
        return self._cache is not None

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the towers compute in: float32, or float16 after `to_official_fp16`."""
        return self.clip.visual.conv1.weight.dtype

    def to_official_fp16(self) -> None:
        """Store CLIP as the official code does on CUDA (`convert_weights`, §2): the Linear / Conv / attention
        matrices and biases and both projections in fp16, updated in place by the optimiser with no master copy;
        LayerNorms compute in fp32 and cast back (OpenAI's LayerNorm); embeddings and the logit scale stay fp32.
        Parameters keep their identity, so call it before or after building the optimiser."""
        open_clip.model.convert_weights_to_lp(self.clip, torch.float16)
        for module in self.clip.modules():
            if type(module) is open_clip.transformer.LayerNorm:
                module.__class__ = open_clip.transformer.LayerNormFp32

    @property
    def logit_scale(self) -> nn.Parameter:
        """CLIP's learnable log temperature."""
        return self.clip.logit_scale

    @property
    def text_blocks(self) -> nn.ModuleList:
        """The text transformer's residual blocks (CLIP4Clip initialises its temporal transformer from them)."""
        return self.clip.transformer.resblocks

    @property
    def text_positional_embedding(self) -> nn.Parameter:
        return self.clip.positional_embedding

    def encode_frames(self, images: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] normalised images -> [N,D] [CLS] features after ln_post and the projection (not normalised),
        float32 whatever the towers' dtype."""
        if self._cache is not None:
            return self._cache.rows(lambda x: (self._encode_frames(x),), self._digest + b"frames", images)[0]
        return self._encode_frames(images)

    def _encode_frames(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.visual(images.to(self.dtype)).float()

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,L] token ids + mask -> ([B,D] [EOS] features, [B,L,D] all token states), after ln_final and projection."""
        if self._cache is not None:
            prefix = self._digest + f"text:{self.spec.text_padding_mask}".encode()  # the mask changes the outputs
            eos, states = self._cache.rows(self._encode_text, prefix, tokens, mask)
            return eos, states
        return self._encode_text(tokens, mask)

    def _encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length = tokens.shape
        if length > self.context_length:
            raise ValueError(f"Texts of {length} tokens exceed the backbone's context length {self.context_length}.")
        clip, dtype = self.clip, self.dtype
        x = clip.token_embedding(tokens).to(dtype) + clip.positional_embedding[:length].to(dtype)
        causal = torch.full((length, length), float("-inf"), device=tokens.device).triu_(1)
        attn_mask = causal
        if self.spec.text_padding_mask:
            padding = torch.zeros(batch, 1, length, device=tokens.device).masked_fill(
                (mask == 0)[:, None, :], float("-inf")
            )
            attn_mask = (causal[None] + padding).repeat_interleave(self.text_heads, dim=0)
        x = clip.transformer(x, attn_mask=attn_mask.to(x.dtype))
        x = clip.ln_final(x)
        states = (x @ clip.text_projection).float()
        eos = states[torch.arange(batch, device=tokens.device), tokens.argmax(dim=-1)]
        return eos, states
