"""Training checkpoints without pickles: a directory with `model.safetensors`, optionally `optimizer.safetensors`
(optimizer state tensors and RNG states) and `state.json` (everything else: step, epoch, config, scaler, ...)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_file, save_model
from torch import nn

from benchmark.engine import weights_file
from benchmark.io import atomic_dir, atomic_path, write_json

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
# Keys every checkpoint state holds (what `prepare_model_run` rebuilds the model from).
REQUIRED_STATE = ("model", "config", "preset", "train")
# ... and what resuming needs besides (written with the optimizer).
RESUME_STATE = frozenset({"optimizer", "rng", "step", "epoch"})


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing a file or does not fit the model; the message names what to do."""


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Python, numpy and torch (CPU and CUDA) RNG states as (tensors, JSON-able values)."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (libraries may use the global RNG)
    py_version, py_state, py_gauss = random.getstate()
    values = {
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, values


def set_rng_state(tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    kind, keys, pos, has_gauss, cached = values["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    py_version, py_state, py_gauss = values["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Atomically write a checkpoint directory (replacing an old one). With `optimizer`, also its state and the RNGs."""
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        with atomic_path(tmp / MODEL_FILE) as file:  # safetensors creates owner-only files; this honours the umask
            save_model(model, str(file))
        payload = dict(state)
        if optimizer is not None:
            optim_tensors, optim_json = _optimizer_tensors(optimizer)
            rng_tensors, rng_json = rng_state()
            with atomic_path(tmp / OPTIMIZER_FILE) as file:
                save_file({**optim_tensors, **rng_tensors}, str(file))
            payload.update(optimizer=optim_json, rng=rng_json)
        write_json(tmp / STATE_FILE, payload)
    return directory


def _checkpoint_file(directory: str | Path, name: str) -> Path:
    """`directory/name`, after refusing a `directory` that is a file (a weights file passed as a checkpoint)."""
    directory = Path(directory)
    if directory.is_file():
        try:
            kind = weights_file.weights_format(directory)
            what = (weights_file.torchscript_message(directory) if kind == weights_file.TORCHSCRIPT
                    else f"`{directory}` is a {kind} weights file; CLIP weights go to --clip-weights.")  # fmt: skip
        except weights_file.WeightsFileError as err:
            what = str(err)
        raise CheckpointError(f"A checkpoint is a folder written by `tvbench train` (RUN/checkpoints/best), not a "
                              f"file. {what}")  # fmt: skip
    return directory / name


def read_state(directory: str | Path) -> dict[str, Any]:
    """The JSON state of a checkpoint directory (a dict naming at least the model, its config and the preset)."""
    path = _checkpoint_file(directory, STATE_FILE)
    if not path.is_file():
        raise CheckpointError(
            f"`{directory}` is not a tvbench checkpoint (no {STATE_FILE}). Pass a directory written by "
            "`tvbench train`, e.g. RUN/checkpoints/best or RUN/checkpoints/last."
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"`{path}` is not valid JSON ({err}); the checkpoint is damaged, re-run "
                              "training.") from err  # fmt: skip
    missing = [key for key in REQUIRED_STATE if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"`{path}` lacks {', '.join(missing)}; it was not written by `tvbench train` or is "
                              "damaged.")  # fmt: skip
    return state


def _safetensors_file(directory: str | Path, name: str) -> Path:
    """`directory/name` when it is a safetensors file; CheckpointError naming it otherwise."""
    path = _checkpoint_file(directory, name)
    try:
        if weights_file.require_loadable(path) != weights_file.SAFETENSORS:
            raise CheckpointError(f"`{path}` is not a .safetensors file; the checkpoint is damaged, re-run training.")
    except weights_file.WeightsFileError as err:
        raise CheckpointError(f"Checkpoint `{directory}`: {err}") from err
    return path


def model_file(directory: str | Path) -> Path:
    """The checkpoint's `model.safetensors`, refused (CheckpointError) when missing or not a safetensors file; cheap
    (the first bytes only), so runs check it before any work."""
    if not _checkpoint_file(directory, MODEL_FILE).is_file():
        raise CheckpointError(f"Checkpoint `{directory}` has no {MODEL_FILE}; it is incomplete, re-run training.")
    return _safetensors_file(directory, MODEL_FILE)


def load_weights(directory: str | Path, model: nn.Module) -> None:
    """Load `model.safetensors` of a checkpoint into `model` (strict: every tensor must fit)."""
    path = model_file(directory)
    try:
        missing, unexpected = load_model(model, str(path), strict=False, device=str(next(model.parameters()).device))
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"Checkpoint `{path}` is damaged or does not fit the model: "
                              f"{' '.join(str(err).split())[:400]}") from err  # fmt: skip
    if missing or unexpected:
        raise CheckpointError(
            f"Checkpoint `{path}` does not fit the model: missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]}. Was it written for another model or config?"
        )


def load_training_state(directory: str | Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the optimizer and the RNGs from a checkpoint; returns its JSON state."""
    state = read_state(directory)
    if not (Path(directory) / OPTIMIZER_FILE).is_file() or not RESUME_STATE <= state.keys():
        raise CheckpointError(f"`{directory}` holds no optimizer state (or its {STATE_FILE} lacks one of "
                              f"{', '.join(sorted(RESUME_STATE))}), so training cannot resume from it.")  # fmt: skip
    try:
        tensors, _ = weights_file.read_safetensors(_safetensors_file(directory, OPTIMIZER_FILE))
    except weights_file.WeightsFileError as err:
        raise CheckpointError(f"Checkpoint `{directory}`: {err}") from err
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value
    for key, value in state["optimizer"]["scalars"].items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in state["optimizer"]["param_groups"]]
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    set_rng_state({k: v for k, v in tensors.items() if k.startswith("rng.")}, state["rng"])
    return state
