"""The CLIP backbone shared by every method: open_clip models from local weights, tiny stand-ins for SynthVTT.

Outputs follow the GLSCL/CLIP4Clip family: per frame the [CLS] feature after ``ln_post`` and the visual projection,
per text the [EOS] feature and every token state after ``ln_final`` and the text projection (padding included).
"""

from __future__ import annotations

import contextlib
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from torch import nn

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


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], bool]:
    """Tensors of a weights file (.safetensors, state-dict checkpoint, or OpenAI TorchScript archive) and whether
    it is OpenAI's format. Plain checkpoints are read with ``weights_only=True``: nothing untrusted is unpickled."""
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(f"CLIP weights file `{path}` does not exist. Pass the path of a downloaded file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path)), False
        if _is_torchscript(path):
            # TorchScript archives (OpenAI's .pt files) are read by the TorchScript loader, which runs no Python code.
            return {k: v for k, v in torch.jit.load(str(path), map_location="cpu").state_dict().items()}, True
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise BackboneWeightsError(f"Could not read CLIP weights `{path}`: {err}") from err
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise BackboneWeightsError(f"`{path}` holds no state dict (found {type(checkpoint).__name__}).")
    state = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    return state, "visual.transformer.resblocks.0.attn.in_proj_weight" in state and "logit_scale" in state


def _missing_weights_message(name: str) -> str:
    url = (open_clip.get_pretrained_cfg(name, "openai") or {}).get("url")
    hint = f" Download OpenAI's {url}" if url else " Use a local open_clip checkpoint (.pt, .safetensors) of it"
    return (
        f"Backbone `{name}` needs CLIP weights and none were given.{hint} and pass its path "
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


def create_clip(spec: BackboneSpec, allow_random: bool = False) -> open_clip.CLIP:
    """An open_clip CLIP for `spec`: from the local file, from an open_clip tag (online), or random when allowed."""
    if spec.name not in open_clip.list_models():
        raise KeyError(f"Unknown backbone `{spec.name}`; open_clip knows e.g. ViT-B-32, ViT-B-16, tvbench-tiny.")
    if spec.weights is not None:
        state, openai_format = read_state_dict(spec.weights)
        with _quiet_random_init():
            model = open_clip.create_model(spec.name, pretrained=None, force_quick_gelu=openai_format)
        for key in ("input_resolution", "context_length", "vocab_size"):
            state.pop(key, None)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise BackboneWeightsError(
                f"CLIP weights `{spec.weights}` do not fit backbone `{spec.name}`: {str(err).splitlines()[0]}. "
                "Check that --backbone matches the file (ViT-B-32.pt for ViT-B-32, ViT-B-16.pt for ViT-B-16)."
            ) from err
        return model
    if spec.pretrained_tag is not None:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise BackboneWeightsError(
                f"Pretrained tag `{spec.pretrained_tag}` needs a download but HF_HUB_OFFLINE=1. "
                + _missing_weights_message(spec.name)
            )
        return open_clip.create_model(spec.name, pretrained=spec.pretrained_tag)
    if not allow_random:
        raise BackboneWeightsError(_missing_weights_message(spec.name))
    with _quiet_random_init():
        return open_clip.create_model(spec.name, pretrained=None)


class Backbone(nn.Module):
    """Frame and text encoders of one CLIP model, in the form the retrieval heads consume."""

    def __init__(self, spec: BackboneSpec, allow_random: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.clip = create_clip(spec, allow_random=allow_random)
        visual = self.clip.visual
        self.embed_dim = int(self.clip.text_projection.shape[1])
        self.image_size = int(visual.image_size[0] if isinstance(visual.image_size, tuple) else visual.image_size)
        self.mean = tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
        self.std = tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
        self.context_length = int(self.clip.positional_embedding.shape[0])
        self.text_heads = int(self.clip.transformer.resblocks[0].attn.num_heads)

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
        """[N,3,H,W] normalised images -> [N,D] [CLS] features after ln_post and the projection (not normalised)."""
        return self.clip.visual(images)

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B,L] token ids + mask -> ([B,D] [EOS] features, [B,L,D] all token states), after ln_final and projection."""
        batch, length = tokens.shape
        if length > self.context_length:
            raise ValueError(f"Texts of {length} tokens exceed the backbone's context length {self.context_length}.")
        clip = self.clip
        x = clip.token_embedding(tokens) + clip.positional_embedding[:length]
        causal = torch.full((length, length), float("-inf"), device=tokens.device).triu_(1)
        attn_mask = causal
        if self.spec.text_padding_mask:
            padding = torch.zeros(batch, 1, length, device=tokens.device).masked_fill(
                (mask == 0)[:, None, :], float("-inf")
            )
            attn_mask = (causal[None] + padding).repeat_interleave(self.text_heads, dim=0)
        x = clip.transformer(x, attn_mask=attn_mask.to(x.dtype))
        x = clip.ln_final(x)
        states = x @ clip.text_projection
        eos = states[torch.arange(batch, device=tokens.device), tokens.argmax(dim=-1)]
        return eos, states
