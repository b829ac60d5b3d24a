"""`tvbench reproduce`: the quick study end to end (and resumed), and real presets failing fast on missing inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.study.reproduce import GRID, RunSpec, begin_run, finished, reproduce


@pytest.mark.slow
def test_quick_study_end_to_end_and_resume(tmp_path: Path) -> None:
    report = reproduce("synthvtt", out=tmp_path, quick=True)
    study = tmp_path / "synthvtt-quick"
    assert report == study / "report.md"
    text = report.read_text()
    for heading in ("## Answer", "## Protocol", "## Every variant", "## Effect of removing ICL, IDL, both",
                    "## Cost", "QUICK MODE"):
        assert heading in text
    assert "Holm" in text and (study / "r1_by_variant.png").stat().st_size > 1000
    html = (study / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    doc = json.loads((study / "report.json").read_text())
    assert [v["name"] for v in doc["variants"]] == list(GRID)
    assert {r["ablation"] for r in doc["effects"]} == {"glscl-no-icl", "glscl-no-idl", "glscl-no-aux",
                                                        "glscl-global-only"}
    assert all(0 <= r["p_holm"] <= 1 and r["p_holm"] >= r["p"] for r in doc["effects"]) and doc["answer"]
    entries = sorted(p.name for p in (tmp_path / "leaderboard-quick" / "entries" / "synthvtt").iterdir())
    assert len(entries) == len(GRID) and (tmp_path / "leaderboard-quick" / "index.html").is_file()
    record = json.loads((study / "runs" / "glscl-no-aux" / "seed0" / "record" / "run.json").read_text())
    assert record["efficiency"]["per_pair_macs"] > 0 and record["extra"]["trained"] is True
    # Resumed: nothing is retrained, the records stay byte-identical.
    records = {p: p.read_bytes() for p in (study / "runs").rglob("ranks.npz")}
    start = time.perf_counter()
    reproduce("synthvtt", out=tmp_path, quick=True)
    assert all(p.read_bytes() == blob for p, blob in records.items())
    assert time.perf_counter() - start < 120  # generous: only re-analysis, no training


def _reproduce_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark", "reproduce", *args], capture_output=True, text=True,
                          timeout=120)


def test_real_preset_without_inputs_fails_fast_naming_them(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = _reproduce_cli("--preset", "msrvtt-vitb32", "--data-root", str(tmp_path / "nowhere"),
                            "--clip-weights", str(tmp_path / "ViT-B-32.pt"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"data root `{tmp_path / 'nowhere'}` does not exist" in result.stderr
    assert f"CLIP weights file `{tmp_path / 'ViT-B-32.pt'}` does not exist" in result.stderr
    assert time.perf_counter() - start < 60 and not (tmp_path / "out").exists()


def test_real_preset_names_the_missing_annotation_file(realdata: Path, tmp_path: Path) -> None:
    weights = tmp_path / "ViT-B-32.pt"
    weights.write_bytes(b"not checked before the data")
    result = _reproduce_cli("--preset", "msrvtt-vitb32", "--data-root", str(realdata / "msrvtt"),
                            "--clip-weights", str(weights), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "MSRVTT_data.json" in result.stderr


def test_a_changed_run_key_never_resumes_old_checkpoints(tmp_path: Path) -> None:
    spec = RunSpec("glscl", 0, tmp_path / "glscl" / "seed0")
    (spec.directory / "checkpoints" / "last").mkdir(parents=True)
    assert begin_run(spec, "key-a") is False  # nothing was started with key-a: cleared, fresh run
    assert not (spec.directory / "checkpoints").exists()
    (spec.directory / "checkpoints" / "last").mkdir(parents=True)
    assert begin_run(spec, "key-a") is True  # interrupted run with the same key: resume
    assert begin_run(spec, "key-b") is False and not (spec.directory / "checkpoints").exists()
    assert not finished(spec, "key-b")
