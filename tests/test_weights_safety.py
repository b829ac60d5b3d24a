# ruff: noqa: F811  (pytest fixtures imported from fixtures_synth are parameters by name)
"""No command runs code from a weights or checkpoint file (issue 12, item 1), and damaged files get messages.

A crafted TorchScript archive whose scripted ``__setstate__`` writes into a canary file through
``torch.from_file(..., shared=True)`` goes through every command and function that takes weights or checkpoints; the
canary must stay untouched and every refusal must name the conversion command. A control test shows the archive is
live: ``torch.jit.load`` does overwrite its canary.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import open_clip
import pytest
import torch
from fixtures_synth import synth_root  # noqa: F401 (fixture)
from safetensors.torch import save_file

from benchmark.cli import main
from benchmark.engine.backbone import Backbone, BackboneSpec, BackboneWeightsError, create_clip, read_state_dict
from benchmark.engine.checkpoint import CheckpointError, load_training_state, load_weights, read_state, save_checkpoint
from benchmark.engine.pretrain import cached_weights_path, pretrain_config
from benchmark.engine.run_setup import prepare_model_run
from benchmark.presets import load_preset
from benchmark.registry import build_model

CANARY = b"canary: nothing may write here\n"
CONVERT = "tvbench weights convert"


class _Payload(torch.nn.Module):
    """A module whose TorchScript ``__setstate__`` (run by torch.jit.load) writes "PWNED" into `target`."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.weight = torch.nn.Parameter(torch.ones(3))
        self.mark = torch.zeros(5, dtype=torch.uint8)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool, torch.Tensor]:
        return (self.target, self.training, self.weight)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool, torch.Tensor]) -> None:
        self.weight = state[2]
        self.target = state[0]
        self.training = state[1]
        mapped = torch.from_file(self.target, shared=True, size=5, dtype=torch.uint8)
        self.mark = mapped.copy_(torch.tensor([80, 87, 78, 69, 68], dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def craft_archive(path: Path, target: Path) -> Path:
    """Write a TorchScript archive at `path` whose loading overwrites the start of `target`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; the attack still works
        torch.jit.script(_Payload(str(target))).save(str(path))
    return path


@pytest.fixture
def evil(tmp_path: Path) -> Iterator[Path]:
    """A hostile archive named like OpenAI's release; after the test its canary must be byte-identical."""
    canary = tmp_path / "canary.txt"
    canary.write_bytes(CANARY)
    before = canary.stat().st_mtime_ns
    yield craft_archive(tmp_path / "ViT-B-32.pt", canary)
    assert canary.read_bytes() == CANARY and canary.stat().st_mtime_ns == before


@pytest.fixture(autouse=True)
def _restore_determinism() -> Iterator[None]:
    """`tvbench train` switches torch to deterministic kernels; switch them back for the other tests."""
    yield
    torch.use_deterministic_algorithms(False)


def test_the_crafted_archive_is_live(tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_bytes(CANARY)
    archive = craft_archive(tmp_path / "evil.pt", canary)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(archive))
    assert canary.read_bytes().startswith(b"PWNED")


def _refused(capsys: pytest.CaptureFixture, *argv: str) -> str:
    assert main(list(argv)) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("how", ["--clip-weights", "--set"])
def test_train_refuses_the_archive(evil: Path, tmp_path: Path, capsys: pytest.CaptureFixture, how: str) -> None:
    weights = [how, str(evil) if how == "--clip-weights" else f"clip_weights={json.dumps(str(evil))}"]
    err = _refused(capsys, "train", "--preset", "synthvtt", "--model", "clip4clip-meanp", "--out", str(tmp_path / "r"),
                   "--data-root", str(tmp_path / "none"), "--quiet", *weights)
    assert CONVERT in err and str(evil) in err and "Traceback" not in err


def test_evaluate_refuses_the_archive_as_weights_and_as_checkpoint(evil: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    err = _refused(capsys, "evaluate", "--model", "clip-zeroshot", "--preset", "synthvtt", "--out", str(tmp_path / "e"),
                   "--clip-weights", str(evil))
    assert CONVERT in err
    err = _refused(capsys, "evaluate", "--checkpoint", str(evil), "--out", str(tmp_path / "e"))
    assert CONVERT in err and "not a file" in err


def _checkpoint(directory: Path) -> Path:
    """A checkpoint exactly as `tvbench train` writes it (random tiny model, with optimizer state)."""
    setup = prepare_model_run(model_name="clip4clip-meanp", preset="synthvtt", clip_weights="random",
                              data_root=directory)
    optimizer = torch.optim.AdamW(setup.model.parameters())
    state = {"model": setup.model_name, "config": setup.model_config, "train": {}, "preset": setup.preset.name,
             "sources": setup.sources, "step": 0, "epoch": 0}
    return save_checkpoint(directory / "ckpt", setup.model, state, optimizer)


def test_checkpoint_files_replaced_by_the_archive_are_refused(evil: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    ckpt = _checkpoint(tmp_path)
    model = build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random")
    (ckpt / "optimizer.safetensors").write_bytes(evil.read_bytes())
    with pytest.raises(CheckpointError, match=CONVERT):
        load_training_state(ckpt, torch.optim.AdamW(model.parameters()))
    (ckpt / "model.safetensors").write_bytes(evil.read_bytes())
    with pytest.raises(CheckpointError, match=CONVERT):
        load_weights(ckpt, model)
    err = _refused(capsys, "evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "e"))
    assert CONVERT in err and "model.safetensors" in err
    with pytest.raises(CheckpointError, match=CONVERT):
        read_state(evil)


def test_reproduce_input_check_refuses_the_archive(evil: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["reproduce", "--preset", "msrvtt-vitb32", "--data-root", str(tmp_path / "none"), "--clip-weights",
                 str(evil), "--out", str(tmp_path / "out")]) == 2
    assert CONVERT in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["ViT-B-32.pt", "weights.pth", "model.bin", "disguised.safetensors"])
def test_functions_refuse_the_archive_under_any_name(evil: Path, name: str) -> None:
    path = evil.with_name(name)
    path.write_bytes(evil.read_bytes())
    for load in (read_state_dict, lambda p: Backbone(BackboneSpec("tvbench-tiny", weights=str(p))),
                 lambda p: build_model("clip-zeroshot", backbone="tvbench-tiny", clip_weights=str(p))):
        with pytest.raises(BackboneWeightsError, match=CONVERT):
            load(path)


def test_an_open_clip_tag_cannot_smuggle_a_file_in(evil: Path) -> None:
    with pytest.raises(BackboneWeightsError, match="not an open_clip pretrained tag"):
        create_clip(BackboneSpec("ViT-B-32", pretrained_tag=str(evil)))


def test_a_planted_pretrain_cache_entry_is_refused(evil: Path, synth_root: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the default cache: $XDG_CACHE_HOME/tvbench
    planted = cached_weights_path(synth_root, pretrain_config(load_preset("synthvtt")))
    planted.parent.mkdir(parents=True)
    planted.write_bytes(evil.read_bytes())
    err = _refused(capsys, "train", "--preset", "synthvtt", "--model", "clip4clip-meanp", "--out", str(tmp_path / "r"),
                   "--data-root", str(synth_root), "--quiet", "--set", "batch_size=8")  # valid but for the weights
    assert CONVERT in err and planted.name in err


def test_convert_refuses_without_trust_code(evil: Path, capsys: pytest.CaptureFixture) -> None:
    err = _refused(capsys, "weights", "convert", str(evil))
    assert "executes code" in err and "--trust-code" in err and not evil.with_suffix(".safetensors").exists()


def _openai_style_archive(path: Path) -> torch.jit.ScriptModule:
    """A traced tiny CLIP with the three extra entries OpenAI's archives carry, saved as TorchScript at `path`."""
    torch.manual_seed(0)
    model = open_clip.create_model("tvbench-tiny", pretrained=None).eval()
    model.attn_mask = model._buffers.pop("attn_mask")  # non-persistent buffer: keep it out of the traced state
    for key, value in (("input_resolution", 32), ("context_length", 32), ("vocab_size", 49408)):
        model.__dict__.pop(key, None)  # open_clip keeps two of them as plain attributes
        model.register_buffer(key, torch.tensor(value))
    size = model.visual.image_size
    image = torch.zeros(1, 3, *(size if isinstance(size, tuple) else (size, size)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(model, {"encode_image": image}, check_trace=False)
    traced.save(str(path))
    return traced


def test_convert_writes_safetensors_with_the_archive_state_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    archive = tmp_path / "tiny.pt"
    _openai_style_archive(archive)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        expected = torch.jit.load(str(archive)).state_dict()
    assert main(["weights", "convert", str(archive), "--trust-code"]) == 0
    out = archive.with_suffix(".safetensors")
    assert "Executing the TorchScript archive" in capsys.readouterr().err
    state, quick_gelu = read_state_dict(out)
    assert quick_gelu and state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) and state[k].dtype == expected[k].dtype for k in expected)
    loaded = create_clip(BackboneSpec("tvbench-tiny", weights=str(out))).state_dict()
    assert all(torch.equal(loaded[k], expected[k]) for k in loaded)
    before = out.read_bytes()
    assert _refused(capsys, "weights", "convert", str(archive), "--trust-code")  # never replaces a file
    assert out.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def _torch_object(path: Path) -> None:
    torch.save({"model": open_clip.CLIP}, path)  # a class: refused by weights_only=True


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(os.urandom(4096)), "neither a .safetensors file nor a file written by torch.save"),
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_bytes(b"\x20\x00\x00\x00\x00\x00\x00\x00{\"w\": {\"dtype\": \"F32\"}}" + b" " * 9),
     "damaged .safetensors"),
    (lambda p: save_file({"w": torch.ones(64)}, str(p)) or p.write_bytes(p.read_bytes()[:-40]), "damaged"),
    (lambda p: torch.save({"w": torch.ones(64)}, p) or p.write_bytes(p.read_bytes()[:300]), "damaged"),
    (_torch_object, "holds Python objects besides tensors"),
    (lambda p: torch.save([torch.ones(2)], p), "holds no state dict"),
])
def test_malformed_weights_name_the_file(tmp_path: Path, make, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "weights.bin"
    make(path)
    with pytest.raises(BackboneWeightsError) as caught:
        read_state_dict(path)
    text = str(caught.value)
    assert message in text and str(path) in text
    assert "weights_only=False" not in text and "`weights_only` set to `False`" not in text and "pickled" not in text


def test_malformed_checkpoint_files_name_the_file(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path)
    model = build_model("clip4clip-meanp", backbone="tvbench-tiny", clip_weights="random")
    (ckpt / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_weights(ckpt, model)
    state = ckpt / "state.json"
    written = json.loads(state.read_text())
    state.write_text(json.dumps({k: v for k, v in written.items() if k != "rng"}))
    with pytest.raises(CheckpointError, match="state.json lacks one of epoch, optimizer, rng, step"):
        load_training_state(ckpt, torch.optim.AdamW(model.parameters()))
    state.write_text('{"model": "clip4clip-meanp", "config": {}}')
    with pytest.raises(CheckpointError, match=r"state.json` lacks preset, train"):
        read_state(ckpt)
    state.write_text('{"model": ')
    with pytest.raises(CheckpointError, match="state.json` is not valid JSON"):
        read_state(ckpt)
