"""Atomic outputs honour the umask (issue 12, item 9) and the next write of a path removes the temporary folders a
killed writer left, never a live writer's (item 23)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from benchmark.data.synthvtt import generate
from benchmark.engine.checkpoint import save_checkpoint
from benchmark.io import atomic_dir, current_umask, write_json, write_npz

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_outputs_get_the_modes_the_umask_gives(umask: int, tmp_path: Path) -> None:
    assert current_umask() == umask
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    assert _mode(write_json(tmp_path / "a.json", {"a": 1})) == file_mode
    assert _mode(write_npz(tmp_path / "r.npz", x=[1, 2])) == file_mode
    with atomic_dir(tmp_path / "record") as tmp:
        write_json(tmp / "run.json", {})
    assert _mode(tmp_path / "record") == dir_mode and _mode(tmp_path / "record" / "run.json") == file_mode
    checkpoint = save_checkpoint(tmp_path / "ckpt", torch.nn.Linear(2, 2), {"step": 0})
    assert _mode(checkpoint) == dir_mode
    assert {_mode(f) for f in checkpoint.iterdir()} == {file_mode}


# A writer that stops inside atomic_dir(PATH) until it is killed.
_WRITER = textwrap.dedent("""
    import sys, time
    from benchmark.io import atomic_dir, write_json
    with atomic_dir(sys.argv[1]) as tmp:
        write_json(tmp / "half.json", {"written": "half"})
        print("inside", flush=True)
        time.sleep(120)
""")


def _writer(path: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None and process.stdout.readline().strip() == "inside"
    return process


def _temporaries(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def test_the_next_write_removes_what_a_killed_writer_left_but_not_a_live_one(tmp_path: Path) -> None:
    path = tmp_path / "record"
    killed, live = _writer(path), _writer(path)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert len(_temporaries(path)) == 2
        old = tmp_path / f".record.{_temporaries(path)[0].split('.')[2].rsplit('-', 1)[0]}-{killed.pid}.abc.old"
        (old / "x").mkdir(parents=True)  # as if killed between the two renames of a replacement
        with atomic_dir(path) as tmp:
            write_json(tmp / "run.json", {"complete": True})
        left = _temporaries(path)
        assert len(left) == 1 and f"-{live.pid}." in left[0]  # the live writer's folder is kept
    finally:
        live.kill()
        live.wait()
    assert (path / "run.json").is_file()


def test_synthvtt_generation_removes_a_killed_generation(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    killed = _writer(out)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert _temporaries(out)
    generate(out, seed=0, n_train=2, n_val=1, n_test=1, n_images=4, workers=1, progress=False)
    assert _temporaries(out) == []
