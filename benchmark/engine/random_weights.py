"""Random-weight CLIP files in OpenAI's layout, for rehearsals, parity checks and tests that need the real
architecture without the real weights.

The tensors come from open_clip's own initialisation (so activations stay in a realistic range) and the file carries
OpenAI's marker buffers (`input_resolution`, `context_length`, `vocab_size`), so it is read exactly as a converted
OpenAI checkpoint would be. Formats: `.safetensors`, or a weights-only `.pt` state dict (never TorchScript).
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from benchmark.engine.backbone import _quiet_random_init
from benchmark.io import atomic_path

FORMATS = (".safetensors", ".pt")


def random_clip_state(name: str = "ViT-B-32", seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a randomly initialised open_clip `name` (QuickGELU, as OpenAI's) plus OpenAI's marker
    buffers; the same `seed` gives the same tensors."""
    with torch.random.fork_rng(devices=[]), _quiet_random_init():
        torch.manual_seed(seed)
        model = open_clip.create_model(name, pretrained=None, quick_gelu=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    visual = model.visual
    size = visual.image_size[0] if isinstance(visual.image_size, tuple) else visual.image_size
    state.update(input_resolution=torch.tensor(int(size)), context_length=torch.tensor(model.context_length),
                 vocab_size=torch.tensor(model.vocab_size))
    return state


def write_random_clip(path: str | Path, name: str = "ViT-B-32", seed: int = 0) -> Path:
    """Write a random-weight CLIP file; the suffix (.safetensors or .pt) chooses the format. Atomic."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ValueError(f"Random CLIP weights are written as {' or '.join(FORMATS)}, not `{path.name}`.")
    state = random_clip_state(name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            save_file(state, str(tmp))
        else:
            torch.save(state, str(tmp))
    return path
