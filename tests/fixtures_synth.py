"""Session-scoped SynthVTT fixtures other test files can import: a tiny generated dataset and a tiny pretrained
backbone (5 steps) on it. Use with ``from fixtures_synth import synth_root, synth_clip_weights``."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.data.synthvtt import generate
from benchmark.engine.pretrain import PretrainConfig, ensure_pretrained

# The pretraining settings the fixture uses (the CLI test repeats them to hit the same cache entry).
TINY_PRETRAIN = PretrainConfig(steps=5, batch_size=16)
# Test modules import these fixtures, which makes a separate fixture per module; this keeps one copy per session.
_MADE: dict[str, Path] = {}


def make_tiny_synthvtt(out_dir: Path) -> Path:
    """A SynthVTT folder with 24 train, 6 val and 10 test clips and 120 pretraining images."""
    generate(out_dir, seed=0, n_train=24, n_val=6, n_test=10, n_images=120, workers=1, progress=False)
    return out_dir


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SynthVTT generated once per test session."""
    if "root" not in _MADE:
        _MADE["root"] = make_tiny_synthvtt(tmp_path_factory.mktemp("synthvtt"))
    return _MADE["root"]


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The backbone cache folder of the session: `backbones/` of a cache folder (`--cache-dir` = its parent)."""
    if "cache" not in _MADE:
        _MADE["cache"] = tmp_path_factory.mktemp("cache") / "backbones"
    return _MADE["cache"]


@pytest.fixture(scope="session")
def synth_clip_weights(synth_root: Path, synth_cache: Path) -> Path:
    """tvbench-tiny pretrained for 5 steps on the tiny SynthVTT (weights file path)."""
    return ensure_pretrained(synth_root, TINY_PRETRAIN, cache=synth_cache, progress=False)
