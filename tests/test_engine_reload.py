"""A checkpoint rebuilds exactly the network that wrote it: every registered model at the real ViT-B/32 size, with
random OpenAI-layout CLIP weights, scores bit for bit the same after save -> `tvbench evaluate --checkpoint`'s
reload path (QuickGELU included, whatever the weights file's format)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from benchmark.data.text import TextTokenizer
from benchmark.engine.backbone import OPENAI_MARKERS, Backbone, BackboneSpec, resolve_quick_gelu
from benchmark.engine.checkpoint import save_checkpoint
from benchmark.engine.distributed import DistEnv
from benchmark.engine.random_weights import random_clip_state, write_random_clip
from benchmark.engine.run_setup import prepare_model_run
from benchmark.engine.train import _checkpoint_state
from benchmark.registry import list_models

CPU = DistEnv(0, 1, torch.device("cpu"))


@pytest.fixture(scope="module")
def vitb32_weights() -> Iterator[Path]:
    """Random ViT-B/32 weights as a weights-only .pt state dict (loaded with QuickGELU; the reload used GELU).
    Removed afterwards: at 600 MB per file, pytest's kept temporary folders would fill the disk."""
    with tempfile.TemporaryDirectory() as folder:
        yield write_random_clip(Path(folder) / "ViT-B-32.pt", "ViT-B-32", seed=3)


@pytest.fixture()
def scratch() -> Iterator[Path]:
    """A folder removed after the test (ViT-B/32 checkpoints are 600 MB)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """2 captions and 2 videos x 2 frames at 224 px (frame 2 of video 1 is padding)."""
    tokens, mask = TextTokenizer(32, name="ViT-B-32")(["a man is cooking", "two dogs run on a beach at night"])
    frames = torch.randn(2, 2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    frame_mask = torch.tensor([[1, 1], [1, 0]])
    return tokens, mask, frames, frame_mask


@torch.no_grad()
def _scores(model: torch.nn.Module) -> torch.Tensor:
    tokens, mask, frames, frame_mask = _inputs()
    model.eval()
    return model.score(model.encode_text(tokens, mask), model.encode_video(frames, frame_mask))


@pytest.mark.parametrize("model_name", list_models())
def test_checkpoint_reload_scores_bit_for_bit(model_name: str, vitb32_weights: Path, scratch: Path) -> None:
    setup = prepare_model_run(model_name=model_name, preset="msrvtt-vitb32", clip_weights=str(vitb32_weights),
                              env=CPU, seed=0)
    assert setup.model.backbone.quick_gelu and setup.model_config["quick_gelu"] is True
    before = _scores(setup.model)
    save_checkpoint(scratch / "best", setup.model, _checkpoint_state(setup, epoch=0, step=0))
    reloaded = prepare_model_run(checkpoint=scratch / "best", env=CPU)
    assert reloaded.model_config == setup.model_config
    assert reloaded.model.backbone.quick_gelu
    assert torch.equal(_scores(reloaded.model), before)


def test_preset_builds_quick_gelu_from_safetensors_without_markers(scratch: Path) -> None:
    """A .safetensors file carries no activation: the ViT-B presets say QuickGELU (OpenAI's CLIP) explicitly."""
    state = {k: v for k, v in random_clip_state("ViT-B-32").items() if k not in OPENAI_MARKERS}
    save_file(state, str(scratch / "w.safetensors"))
    setup = prepare_model_run(model_name="clip4clip-meanp", preset="msrvtt-vitb32",
                              clip_weights=str(scratch / "w.safetensors"), env=CPU)
    assert setup.model.backbone.quick_gelu and setup.model_config["quick_gelu"] is True
    gelu = prepare_model_run(model_name="clip4clip-meanp", preset="msrvtt-vitb32", sets=["quick_gelu=false"],
                             clip_weights=str(scratch / "w.safetensors"), env=CPU)
    assert not gelu.model.backbone.quick_gelu and gelu.model_config["quick_gelu"] is False


def test_quick_gelu_resolution() -> None:
    """Explicit value wins; then what the weights file implies; then the pretrained tag's or open_clip config's."""
    assert not resolve_quick_gelu(BackboneSpec("ViT-B-32", quick_gelu=False), file_quick_gelu=True)
    assert resolve_quick_gelu(BackboneSpec("ViT-B-32", quick_gelu=True), file_quick_gelu=False)
    assert resolve_quick_gelu(BackboneSpec("ViT-B-32"), file_quick_gelu=True)
    assert not resolve_quick_gelu(BackboneSpec("ViT-B-32"))  # open_clip's ViT-B-32 config: GELU
    assert resolve_quick_gelu(BackboneSpec("tvbench-tiny"))  # its config says QuickGELU
    assert resolve_quick_gelu(BackboneSpec("ViT-B-32", pretrained_tag="openai"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_random_clip_file_formats_load_with_quick_gelu(suffix: str, tmp_path: Path) -> None:
    """Both fabricated formats load strictly (the .pt one weights-only) and build QuickGELU from their markers."""
    path = write_random_clip(tmp_path / f"tiny{suffix}", "tvbench-tiny", seed=1)
    if suffix == ".pt":
        torch.load(path, weights_only=True)
    backbone = Backbone(BackboneSpec("tvbench-tiny", weights=str(path), quick_gelu=None))
    assert backbone.quick_gelu
    expected = random_clip_state("tvbench-tiny", seed=1)
    assert all(torch.equal(v, expected[k]) for k, v in backbone.clip.state_dict().items())
