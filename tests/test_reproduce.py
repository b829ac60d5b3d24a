"""`tvbench reproduce`: the quick study end to end (and resumed), and real presets failing fast on missing inputs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.presets import PRESET_DIR, load_preset
from benchmark.study.answer import README_END, README_START
from benchmark.study.reproduce import (
    GRID,
    RunSpec,
    begin_run,
    finished,
    plan_runs,
    reproduce,
    run_key,
    study_seeds,
)
from benchmark.study.run_pool import RunFailed, run_all


@pytest.mark.slow
def test_quick_study_end_to_end_and_resume(tmp_path: Path) -> None:
    report = reproduce("synthvtt", out=tmp_path, quick=True, jobs=2)
    study = tmp_path / "synthvtt-quick"
    assert report == study / "report.md"
    text = report.read_text()
    assert text.splitlines()[2].startswith("Verdict (GLSCL, t2v R@1") and "one seed per variant" in text
    for heading in ("## Answer", "## Protocol", "### Which variance each number includes", "## Every variant",
                    "## GLSCL: effects on t2v R@1",
                    "## GLCCL: effects on t2v R@1", "## Every effect, query-only vs seed-aware", "## Training curves",
                    "## Cost", "QUICK MODE"):
        assert heading in text
    for figure in ("r1_by_variant.png", "forest.png", "loss_curves.png"):
        assert (study / figure).stat().st_size > 1000
    html = (study / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("data:image/png;base64,") == 3
    doc = json.loads((study / "report.json").read_text())
    assert [v["name"] for v in doc["variants"]] == list(GRID)
    assert [r["contrast"] for r in doc["effects"] if r["test_family"] == "primary"] == [
        "glscl-no-icl - glscl", "glscl-no-idl - glscl", "glscl-no-aux - glscl", "glscl-global-only - glscl",
        "glccl-no-csc - glccl", "glccl-video-only - glccl"]
    assert all(r["query_only"]["p"] <= r["query_only"]["p_holm"] <= 1 for r in doc["effects"]) and doc["answer"]
    assert (study / "findings.md").read_text().startswith("What it found (1 seed per variant")
    entries = sorted(p.name for p in (tmp_path / "leaderboard-quick" / "entries" / "synthvtt").iterdir())
    assert len(entries) == len(GRID) and (tmp_path / "leaderboard-quick" / "index.html").is_file()
    calibration = doc["calibration"]["rows"]  # one seed, 24 queries: rows fail or are not run, the table is there
    assert {r["target"] for r in calibration} == {"1 fine-tuning matters", "2 mechanism pays", "3 power",
                                                  "4 encoder scale"}
    assert {r["status"] for r in calibration} <= {"fail", "not run"} and "## Benchmark calibration" in text
    record = json.loads((study / "runs" / "glscl-no-aux" / "seed0" / "record" / "run.json").read_text())
    assert record["efficiency"]["per_pair_macs"] > 0 and record["extra"]["trained"] is True
    # Resumed: only the run marked unfinished is retrained, in this process instead of a pool of two, and every
    # record stays byte-identical (numbers do not depend on --jobs).
    records = {p: p.read_bytes() for p in (study / "runs").rglob("ranks.npz")}
    (study / "runs" / "glscl-no-aux" / "seed0" / "run_key.txt").unlink()
    start = time.perf_counter()
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n{README_START}\nold\n{README_END}\n\nrest\n")
    reproduce("synthvtt", out=tmp_path, quick=True, readme=readme, jobs=1)
    assert (study / "runs" / "glscl-no-aux" / "seed0" / "run_key.txt").is_file()
    assert all(p.read_bytes() == blob for p, blob in records.items())
    findings = (study / "findings.md").read_text().strip()
    assert readme.read_text() == f"# T\n\n{README_START}\n{findings}\n{README_END}\n\nrest\n"
    assert time.perf_counter() - start < 120  # generous: one quick run and the re-analysis


def _axis_preset(tmp_path: Path, base: str, encoders: dict) -> Path:
    raw = json.loads((PRESET_DIR / f"{base}.json").read_text())
    path = tmp_path / f"{base}-axis.json"
    path.write_text(json.dumps({**raw, "name": f"{base}-axis", "encoders": encoders}))
    return path


@pytest.mark.slow
def test_quick_study_runs_every_encoder_of_the_axis(tmp_path: Path) -> None:
    models = ["clip-zeroshot", "clip4clip-meanp", "glscl", "glscl-no-icl"]
    preset = _axis_preset(tmp_path, "synthvtt", {
        "tuned": {"models": models}, "frozen": {"training": {"freeze_backbone": True}, "models": models}})
    report = reproduce(str(preset), out=tmp_path, quick=True)
    runs = report.parent / "runs"
    assert {p.name for p in runs.iterdir()} == {"tuned", "frozen"}
    frozen = json.loads((runs / "frozen" / "clip4clip-meanp" / "seed0" / "record" / "run.json").read_text())
    tuned = json.loads((runs / "tuned" / "clip4clip-meanp" / "seed0" / "record" / "run.json").read_text())
    assert frozen["extra"]["trained"] is False and tuned["extra"]["trained"] is True
    assert frozen["config"]["train"]["freeze_backbone"] and not tuned["config"]["train"]["freeze_backbone"]
    rows = json.loads((report.parent / "report.json").read_text())["calibration"]["rows"]
    assert {r["check"].split("]")[0] + "]" for r in rows if r["target"] != "4 encoder scale"} == {"[tuned]",
                                                                                                   "[frozen]"}
    ratio = next(r for r in rows if r["check"] == "parameters frozen / tuned")
    assert ratio["value"] == 1 and ratio["status"] == "fail"  # one backbone twice: no scale
    icl = next(r for r in rows if r["check"].startswith("interaction: (glscl-no-icl - glscl)"))
    assert icl["status"] == "fail" and "not testable" in icl["detail"]  # one seed


def test_an_encoder_axis_on_a_real_preset_is_refused_before_any_work(tmp_path: Path) -> None:
    preset = _axis_preset(tmp_path, "msrvtt-vitb32", {"b32": {}, "b16": {"backbone": {"name": "ViT-B-16"}}})
    with pytest.raises(ValueError, match="`encoders` section is supported on SynthVTT only"):
        reproduce(str(preset), out=tmp_path / "out", data_root=tmp_path, clip_weights=tmp_path / "w.safetensors")
    assert not (tmp_path / "out").exists()


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


def test_reproduce_refuses_bad_arguments_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["reproduce", "--models", "clip4clip-meanp,nope", "--out", str(tmp_path / "a")]) == 2
    assert "nope" in capsys.readouterr().err
    readme = tmp_path / "README.md"
    readme.write_text("# no findings markers\n")
    assert main(["reproduce", "--quick", "--readme", str(readme), "--out", str(tmp_path / "b")]) == 2
    assert "study-findings" in capsys.readouterr().err
    assert main(["reproduce", "--preset", "msrvtt-vitb32", "--jobs", "2", "--out", str(tmp_path / "c")]) == 2
    assert "--jobs runs SynthVTT studies side by side" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abc")


@pytest.mark.parametrize("jobs", [1, 2])
def test_runs_side_by_side_do_every_task_and_name_a_failed_one(tmp_path: Path, jobs: int) -> None:
    files = [tmp_path / f"run{i}" for i in range(3)]
    for file in files:
        file.write_text("")
    run_all([str(f) for f in files], os.remove, jobs=jobs, label=str)  # os.remove: a picklable module function
    assert not any(f.exists() for f in files)
    with pytest.raises(RunFailed, match=r"run .*missing(-too)? failed: FileNotFoundError.*rerun the same command"):
        run_all([str(tmp_path / "missing"), str(tmp_path / "missing-too")], os.remove, jobs=jobs, label=str)


def test_an_encoder_entry_may_run_its_own_seeds(tmp_path: Path) -> None:
    preset = load_preset(_axis_preset(tmp_path, "synthvtt", {
        "tiny": {}, "nano": {"backbone": {"name": "tvbench-nano"}, "training": {"seeds": [0, 1, 2, 3, 4, 5, 6]}}}))
    axis = preset.encoder_presets()
    assert study_seeds(axis["tiny"], "glscl", None, False) == [0, 1, 2]  # the synthvtt preset's seeds
    assert study_seeds(axis["nano"], "glscl", None, False) == list(range(7))
    assert study_seeds(axis["nano"], "glscl", None, True) == [0]
    assert study_seeds(axis["nano"], "glscl", 2, False) == [0, 1]
    # a `models` entry's `train.seeds` wins over the encoder entry's: fewer seeds for the reference baselines
    fewer = dataclasses.replace(axis["nano"], models={**axis["nano"].models, "xpool": {"train": {"seeds": [0, 1]}}})
    assert study_seeds(fewer, "xpool", None, False) == [0, 1]
    assert study_seeds(fewer, "glscl", None, False) == list(range(7))
    planned = plan_runs(["clip-zeroshot", "xpool", "glscl"], lambda m: study_seeds(fewer, m, None, False), tmp_path)
    assert [(s.model, s.seed) for s in planned] == [("clip-zeroshot", 0), ("xpool", 0), ("xpool", 1)] + [
        ("glscl", s) for s in range(7)]
    more = dataclasses.replace(axis["tiny"], training={**axis["tiny"].training, "seeds": list(range(7))})
    spec = RunSpec("glscl", 1, tmp_path / "glscl" / "seed1")
    assert run_key(more, spec, (), "w") == run_key(axis["tiny"], spec, (), "w")  # adding seeds keeps finished runs
    assert run_key(more, spec, ("epochs=3",), "w") != run_key(axis["tiny"], spec, (), "w")
