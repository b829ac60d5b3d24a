"""What every parity harness shares (`parity_glscl`, `parity_glccl`): import an official implementation from a
user's checkout and nowhere else, build tvbench's model on seeded random weights, feed both the same inputs, compare
their outputs, print the table of differences and store the official outputs as a fixture for CI.

A harness (`Harness`) builds both models on identical weights and inputs, collects named outputs from each
(similarities, loss terms, gradients) and returns a `ParityRun`; `benchmark.study.parity_cli` prints it and says
whether every difference is within the tolerance. Official code is never copied into tvbench: `official_import` puts
the checkout on `sys.path` for the duration of the comparison only.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.data.text import TextTokenizer
from benchmark.registry import build_model

Outputs = dict[str, Any]  # named tensors of one side, plus "grads": {tvbench parameter name: gradient}
CAPTIONS = ("a man is slicing tomatoes in a kitchen", "two dogs run along the beach",
            "a woman sings on a stage while a band plays guitar and drums behind her", "a red car", "kids play",
            "someone explains how to fold a paper plane step by step")
# tvbench's defaults that differ from an official computation, measured on S by `departures` (not parity checks):
# (label, config override, encode under bf16 autocast as tvbench's default `amp` does on CUDA).
DEFAULT_DEPARTURES = (("S with GELU (the reload bug)", {"quick_gelu": False}, False),
                      ("S with LayerNorm eps 1e-5", {"temporal_ln_eps": 1e-5}, False),
                      ("S encoded under bf16 autocast", {}, True))


class ParityUsageError(ValueError):
    """What the user passed cannot be compared (sizes, backbone, checkout); the message says what to change."""


class OfficialCodeError(ParityUsageError):
    """The official checkout is missing, incomplete or lacks a dependency; the message says what to do."""


@dataclass(frozen=True)
class ParitySetup:
    """Sizes and seed of one comparison (real ViT-B/32 at 224 px by default; few items keep it fast)."""

    backbone: str = "ViT-B-32"
    texts: int = 3
    frames: int = 3
    words: int = 32
    size: int = 224
    seed: int = 0


@dataclass(frozen=True)
class Comparison:
    """One row of a parity table: the largest absolute difference of a quantity and the largest official value."""

    name: str
    max_abs_diff: float
    max_abs_official: float
    count: int

    @property
    def relative(self) -> float:
        """max |diff| / max |official| (0 when both are 0)."""
        return self.max_abs_diff / self.max_abs_official if self.max_abs_official else self.max_abs_diff


@dataclass(frozen=True)
class ParityRun:
    """What one harness run found: the checked rows, tvbench's default departures (not checked) and the fixture."""

    title: str
    rows: list[Comparison]
    departures: list[Comparison] = field(default_factory=list)
    fixture: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Harness:
    """One method's parity harness: the official repository, the default setup, the comparison itself and the
    tolerance its issue set (largest absolute difference accepted, fp32)."""

    method: str
    repository: str  # owner/name on GitHub, the checkout users pass
    setup: ParitySetup
    run: Callable[[Path, ParitySetup], ParityRun]
    tolerance: float = 1e-4


def compare(name: str, ours: torch.Tensor | float, official: torch.Tensor | float) -> Comparison:
    """Compare two tensors (or numbers) of the same shape in float64."""
    a = torch.as_tensor(ours, dtype=torch.float64).detach().cpu()
    b = torch.as_tensor(official, dtype=torch.float64).detach().cpu()
    if a.shape != b.shape:
        raise ValueError(f"`{name}`: tvbench gives shape {tuple(a.shape)}, the official code {tuple(b.shape)}.")
    return Comparison(name, float((a - b).abs().max()) if a.numel() else 0.0,
                      float(b.abs().max()) if b.numel() else 0.0, a.numel())


def compare_many(name: str, ours: dict[str, torch.Tensor], official: dict[str, torch.Tensor]) -> Comparison:
    """One row over many tensors matched by name (e.g. every parameter's gradient of one group)."""
    if set(ours) != set(official):
        raise ValueError(f"`{name}`: tensors only in tvbench {sorted(set(ours) - set(official))[:5]}, only official "
                         f"{sorted(set(official) - set(ours))[:5]}.")
    rows = [compare(key, ours[key], official[key]) for key in ours]
    return Comparison(name, max((r.max_abs_diff for r in rows), default=0.0),
                      max((r.max_abs_official for r in rows), default=0.0), sum(r.count for r in rows))


def gradient_rows(ours: dict[str, torch.Tensor], official: dict[str, torch.Tensor],
                  groups: Mapping[str, str | tuple[str, ...]]) -> list[Comparison]:
    """One row per parameter group; a parameter belongs to the first group (in order) whose prefix it starts with,
    and a gradient in no group is an error (nothing is left out of the table silently)."""
    def group_of(name: str) -> str:
        for label, prefix in groups.items():
            if name.startswith(prefix):
                return label
        raise ValueError(f"Gradient of `{name}` belongs to no parity group {list(groups)}.")

    split: dict[str, tuple[dict, dict]] = {label: ({}, {}) for label in groups}
    for side, grads in enumerate((ours, official)):
        for name, grad in grads.items():
            split[group_of(name)][side][name] = grad
    return [compare_many(label, *split[label]) for label in groups]


def format_table(rows: list[Comparison], tolerance: float) -> str:
    """A Markdown table: quantity, elements, max |tvbench - official|, max |official|, and whether it is within
    `tolerance` (absolute)."""
    lines = ["| quantity | elements | max abs diff | max abs official | within |",
             "|---|---:|---:|---:|:---:|"]
    for row in rows:
        ok = "yes" if row.max_abs_diff <= tolerance else "**no**"
        lines.append(f"| {row.name} | {row.count:,} | {row.max_abs_diff:.2e} | {row.max_abs_official:.3g} | {ok} |")
    return "\n".join(lines)


def check(rows: list[Comparison], tolerance: float) -> bool:
    """Whether every difference is within `tolerance`."""
    return all(row.max_abs_diff <= tolerance for row in rows)


def make_inputs(setup: ParitySetup, valid_frames: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """Tokenised captions of different lengths and random clips; padded frames are zero. `valid_frames` gives each
    clip's number of real frames (default: all, but the last clip has one padded frame)."""
    if not 2 <= setup.texts <= len(CAPTIONS) or setup.frames < 2:
        raise ParityUsageError(f"Use 2..{len(CAPTIONS)} texts and at least 2 frames, got {setup.texts} and "
                               f"{setup.frames}.")
    valid = list(valid_frames) if valid_frames is not None else [setup.frames] * (setup.texts - 1) + [setup.frames - 1]
    if len(valid) != setup.texts or not all(1 <= v <= setup.frames for v in valid):
        raise ParityUsageError(f"Each of the {setup.texts} clips needs 1..{setup.frames} real frames, got {valid}.")
    tokens, mask = TextTokenizer(setup.words, name=setup.backbone)(list(CAPTIONS[: setup.texts]))
    generator = torch.Generator().manual_seed(setup.seed)
    frames = torch.randn(setup.texts, setup.frames, 3, setup.size, setup.size, generator=generator)
    frame_mask = (torch.arange(setup.frames)[None, :] < torch.tensor(valid)[:, None]).long()
    frames[frame_mask == 0] = 0.0
    return {"tokens": tokens, "mask": mask, "frames": frames, "frame_mask": frame_mask,
            "ids": torch.arange(setup.texts)}


def no_dropout(model: nn.Module) -> None:
    """Dropout off everywhere (also inside attention), so training-mode outputs are deterministic."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = 0.0


def seeded_model(name: str, setup: ParitySetup, **config: Any) -> nn.Module:
    """tvbench's model `name` with random weights drawn from `setup.seed` (the global RNG is left untouched) and
    dropout off."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(setup.seed)
        model = build_model(name, backbone=setup.backbone, clip_weights="random", **config)
    no_dropout(model)
    return model


def gradients(model: nn.Module, rename: Callable[[str], str] | None = None) -> dict[str, torch.Tensor]:
    """Every parameter's gradient by (optionally renamed) parameter name; parameters without one are left out."""
    return {(rename(n) if rename else n): p.grad.detach().clone() for n, p in model.named_parameters()
            if p.grad is not None}


def departures(build: Callable[..., nn.Module], inputs: dict[str, torch.Tensor], official_s: torch.Tensor,
               score: Callable[[nn.Module, dict, dict], torch.Tensor] | None = None) -> list[Comparison]:
    """How far each of tvbench's `DEFAULT_DEPARTURES` moves S from the official S. `build(**override)` returns the
    parity model with one override; `score(model, text, video)` gives S on the official scale (default
    `model.score`). Encoding runs under CPU autocast where the departure is bf16, scoring outside it."""
    rows = []
    for label, override, autocast in DEFAULT_DEPARTURES:
        model = build(**override)
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            text = model.encode_text(inputs["tokens"], inputs["mask"])
            video = model.encode_video(inputs["frames"], inputs["frame_mask"])
        with torch.no_grad():
            s = score(model, text, video) if score else model.score(text, video)
            rows.append(compare(label, s, official_s))
    return rows


def fixture_from(official: Outputs, names: Sequence[str], setup: ParitySetup, config: dict[str, Any],
                 source: dict[str, str]) -> dict[str, Any]:
    """What CI needs to check tvbench without the official code: the setup and tvbench config that reproduce the
    comparison, where the official outputs came from, the official `names` outputs and every gradient's L2 norm."""
    return {"setup": asdict(setup), "tvbench_config": config, "source": source,
            "official": {**{k: torch.as_tensor(official[k]).tolist() for k in names},
                         "grad_norms": {n: float(g.norm()) for n, g in sorted(official["grads"].items())}}}


def fixture_outputs(fixture: dict[str, Any], names: Sequence[str]) -> Outputs:
    """The official outputs stored in a fixture, with gradient norms in place of gradients."""
    data = fixture["official"]
    return {**{k: torch.tensor(data[k], dtype=torch.float64) for k in names}, "grad_norms": data["grad_norms"]}


def checkout_source(path: str | Path, repository: str, marker: str) -> dict[str, str]:
    """Where official outputs came from: the repository and the SHA-256 of the checkout's `marker` file (a checkout
    may have no git metadata, so the file's hash is what identifies the code)."""
    digest = hashlib.sha256((Path(path) / marker).read_bytes()).hexdigest()
    return {"repository": repository, "file": marker, "sha256": digest}


def require_checkout(path: str | Path, marker: str, repository: str) -> Path:
    """The resolved checkout folder; fails with a message naming `repository` unless `marker` exists in it."""
    root = Path(path).resolve()
    if not (root / marker).is_file():
        raise OfficialCodeError(f"`{path}` is not a checkout of the official code: `{marker}` is missing. Clone it "
                                f"(e.g. git clone https://github.com/{repository}) and pass its folder.")
    return root


@contextlib.contextmanager
def official_import(path: str | Path, package: str, marker: str, repository: str) -> Iterator[None]:
    """Make `package` importable from the checkout at `path` (and only from there) inside the block.

    `marker` is a file that must exist in the checkout (e.g. `tvr/models/modeling.py`), so a wrong folder fails with
    a message naming `repository` instead of importing something else; a module the official code needs but cannot
    import fails the same way, naming it. Modules of `package` are dropped from `sys.modules` before and after, so the
    official code never leaks into the rest of the process.
    """
    root = require_checkout(path, marker, repository)

    def purge() -> None:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]

    purge()
    sys.path.insert(0, str(root))
    try:
        yield
    except ModuleNotFoundError as err:
        missing = err.name or str(err)
        if missing == package or missing.startswith(package + "."):
            raise OfficialCodeError(f"The checkout at `{path}` has no module `{missing}`: pass a complete checkout of "
                                    f"{repository}.") from err
        raise OfficialCodeError(f"The official code at `{path}` imports `{missing}`, which is not installed here: "
                                f"`pip install {missing.split('.')[0]}` beside tvbench (or `pip install --target DIR` "
                                "and add DIR to PYTHONPATH).") from err
    finally:
        sys.path.remove(str(root))
        purge()
