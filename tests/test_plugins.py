# ruff: noqa: F811  (pytest fixtures imported from fixtures_synth are parameters by name)
"""Models of one's own: the README example run from outside the repository (models, train, evaluate, efficiency,
leaderboard submit, reproduce --models), an entry-point plugin installed into a folder on the path, and the
registry's plugin loading and provenance (`include_models`, `model_source`, `require_model`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_synth import synth_cache, synth_clip_weights, synth_root  # noqa: F401 (fixtures)

from benchmark import registry
from benchmark.runs import load_run

REPO = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The first Python block of the README section "Add your own method"."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Add your own method", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README section 'Add your own method' has no Python example"
    return match.group(1)


def tvbench(*args: str, cwd: Path, env: dict[str, str] | None = None, path: tuple[Path, ...] = (),
            check: bool = True) -> subprocess.CompletedProcess:
    """`python -m benchmark ARGS` in `cwd` with this checkout importable (as an installed tvbench would be), after the
    folders `path`."""
    search = os.pathsep.join(p for p in (*map(str, path), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {}), "PYTHONPATH": search}
    done = subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, capture_output=True, text=True,
                          env=full_env, timeout=600)  # fmt: skip
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture()
def plugin_file(tmp_path: Path) -> Path:
    """The README example written to a folder outside the repository."""
    folder = tmp_path / "my_method"
    folder.mkdir()
    path = folder / "attnpool.py"
    path.write_text(readme_example(), encoding="utf-8")
    assert REPO not in path.parents
    return path


@pytest.mark.slow
def test_readme_example_runs_from_outside_the_repository(tmp_path: Path, plugin_file: Path, synth_root: Path,
                                                         synth_clip_weights: Path) -> None:
    work = plugin_file.parent
    listed = tvbench("models", "--include", "attnpool.py", cwd=work)
    assert re.search(r"^attnpool\s+AttnPool\s+--include " + re.escape(str(plugin_file)), listed.stdout, re.M)
    assert "glscl" in listed.stdout  # the shipped models are still there

    tvbench("train", "--include", "attnpool.py", "--model", "attnpool", "--preset", "synthvtt", "--seed", "0",
            "--out", "run", "--data-root", str(synth_root), "--clip-weights", str(synth_clip_weights),
            "--set", "batch_size=8", "--set", "max_frames=2", "--set", "heads=2", "--max-steps", "2", "--quiet",
            cwd=work)  # fmt: skip
    trained = load_run(work / "run" / "record")
    assert trained.method == "attnpool" and trained.config["model"]["heads"] == 2
    assert trained.extra["model_source"]["include"] == str(plugin_file)
    state = json.loads((work / "run" / "checkpoints" / "best" / "state.json").read_text())
    assert state["model_source"]["include"] == str(plugin_file)

    # Later, from elsewhere and without --include: the checkpoint names its plugin file.
    tvbench("evaluate", "--checkpoint", str(work / "run" / "checkpoints" / "best"), "--out", str(tmp_path / "eval"),
            cwd=tmp_path)  # fmt: skip
    assert load_run(tmp_path / "eval").metrics == trained.metrics

    # Its cost, measured like every shipped model's; no CUDA warning on this CPU-only run even with a CUDA_HOME set.
    cost = tvbench("efficiency", "--include", str(plugin_file), "--model", "attnpool", "--backbone", "tvbench-tiny",
                   "--frames", "2", "--words", "8", "--gallery", "10", "--min-run-time", "0.01", "--json", cwd=work,
                   env={"CUDA_HOME": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
    assert json.loads(cost.stdout)["model"] == "attnpool" and "CUDA" not in cost.stderr

    from benchmark.data import load_split
    from leaderboard.splits import register_split_manifest

    board = tmp_path / "board"
    register_split_manifest(board, load_split("synthvtt", synth_root, "test"))
    # The folder `train --out` wrote, not its record/; two training steps leave it at chance, which must be declared.
    tvbench("leaderboard", "submit", "run", "--benchmark", "synthvtt", "--name", "attnpool seed 0", "--root",
            str(board), "--allow-chance", cwd=work)  # fmt: skip
    entry = load_run(board / "entries" / "synthvtt" / "attnpool-seed-0")
    assert entry.method == "attnpool" and entry.metrics == trained.metrics



@pytest.mark.slow
def test_reproduce_studies_the_chosen_models_with_a_plugin(tmp_path: Path, plugin_file: Path) -> None:
    out = tmp_path / "study"
    tvbench("reproduce", "--quick", "--include", str(plugin_file), "--models", "glscl,attnpool", "--out", str(out),
            "--keep-checkpoints", "none", cwd=plugin_file.parent)  # fmt: skip
    runs = out / "synthvtt-quick" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["attnpool", "glscl"]
    record = load_run(runs / "attnpool" / "seed0" / "record")
    assert record.method == "attnpool" and record.efficiency["per_pair_macs"] > 0
    assert not (runs / "attnpool" / "seed0" / "checkpoints").exists()  # --keep-checkpoints none
    assert "checkpoint" not in record.extra and record.extra["model_source"]["include"] == str(plugin_file)
    report = json.loads((out / "synthvtt-quick" / "report.json").read_text())
    assert [v["name"] for v in report["variants"]] == ["glscl", "attnpool"]
    entries = sorted(p.name for p in (out / "leaderboard-quick" / "entries" / "synthvtt").iterdir())
    assert entries == ["attnpool-seed-0", "glscl-seed-0"]


@pytest.mark.slow
def test_an_installed_entry_point_plugin_is_listed(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "tvb_attnpool").mkdir(parents=True)
    (source / "tvb_attnpool" / "__init__.py").write_text(readme_example(), encoding="utf-8")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "tvb-attnpool"\nversion = "0.1"\n\n'
        '[project.entry-points."tvbench.models"]\nattnpool = "tvb_attnpool"\n', encoding="utf-8")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True, capture_output=True,
                   timeout=300)  # fmt: skip
    listed = tvbench("models", cwd=tmp_path, path=(site,))
    assert re.search(r"^attnpool\s+AttnPool\s+tvb-attnpool:attnpool\s", listed.stdout, re.M)
    assert re.search(r"^glscl\s+GLSCL\s+tvbench:glscl\s", listed.stdout, re.M)  # shipped ones: the same door


# ---------------------------------------------------------------- the registry's plugin loading, in process


@pytest.fixture()
def isolated_registry() -> Iterator[None]:
    """Models and included modules registered by a test are forgotten after it."""
    registry.model_spec("glscl")  # entry points loaded before the snapshot
    items, included = dict(registry.MODELS._items), dict(registry._PLUGINS.included)
    yield
    for name in set(registry._PLUGINS.included) - set(included):
        del sys.modules[name]
    registry.MODELS._items.clear()
    registry.MODELS._items.update(items)
    registry._PLUGINS.included.clear()
    registry._PLUGINS.included.update(included)


def test_include_registers_and_records_the_file(isolated_registry: None, plugin_file: Path) -> None:
    assert registry.include_models([plugin_file]) == ["attnpool"]
    assert registry.include_models([plugin_file.parent]) == []  # each file is imported once per process
    assert registry.model_source("attnpool") == {"module": registry.MODELS.get("attnpool").cls.__module__,
                                                 "include": str(plugin_file)}  # fmt: skip
    source = registry.model_source("xpool")
    assert (source["entry_point"], source["distribution"]) == ("baselines", "tvbench")
    from benchmark import RetrievalModel

    assert issubclass(registry.model_spec("attnpool").cls, RetrievalModel)


def test_include_errors_name_the_file(isolated_registry: None, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such .py file or folder"):
        registry.include_models([tmp_path / "nowhere.py"])
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(registry.PluginError, match="registered no model.*@register_model"):
        registry.include_models([empty])
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    with pytest.raises(registry.PluginError, match=f"--include {re.escape(str(broken))}: importing it failed: "
                                                   "ModuleNotFoundError"):  # fmt: skip
        registry.include_models([broken])


def test_require_model_loads_or_names_the_missing_plugin(isolated_registry: None, plugin_file: Path) -> None:
    assert registry.require_model("attnpool", {"include": str(plugin_file)}).name == "attnpool"
    with pytest.raises(registry.PluginError, match="`/gone/m.py` \\(--include\\), which no longer exists"):
        registry.require_model("other-model", {"include": "/gone/m.py"})
    with pytest.raises(registry.PluginError, match="plugin `fancy` of the distribution `fancy-tvr`.*pip install"):
        registry.require_model("fancy-model", {"module": "fancy_tvr", "entry_point": "fancy",
                                               "distribution": "fancy-tvr"})  # fmt: skip
    assert registry.require_model("xpool", {"module": "baselines.xpool"}).name == "xpool"


@pytest.mark.parametrize(("source", "message"), [
    ({"module": "tvbench_include_gone", "include": "/gone/attnpool.py"},
     "Model `gone-model` was defined in `/gone/attnpool.py` (--include), which no longer exists; pass --include"),
    ({"module": "fancy_tvr.model", "entry_point": "fancy", "distribution": "fancy-tvr"},
     "Model `gone-model` comes from the plugin `fancy` of the distribution `fancy-tvr`"),
])  # fmt: skip
def test_evaluate_names_the_plugin_a_checkpoint_needs(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      source: dict, message: str) -> None:
    from benchmark.cli import main

    (tmp_path / "state.json").write_text(json.dumps({"model": "gone-model", "model_source": source,
                                                     "preset": "synthvtt", "config": {}, "train": {}}))  # fmt: skip
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert f"tvbench evaluate: error: {message}" in err and not (tmp_path / "eval").exists()


def test_a_failing_entry_point_is_reported_and_the_others_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    points = [*registry._entry_points(), EntryPoint("broken", "no_such_plugin_module", registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry, "_entry_points", lambda: points)
    monkeypatch.setattr(registry, "_PLUGINS", registry._Plugins())
    assert "glscl" in registry.list_models()
    assert list(registry.plugin_failures()) == ["entry point `broken`"]
    with pytest.raises(KeyError, match="failed to load: entry point `broken`: ModuleNotFoundError"):
        registry.model_spec("no-such-model")
