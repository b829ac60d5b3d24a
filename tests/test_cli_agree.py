# ruff: noqa: F811  (pytest fixtures imported from fixtures_synth are parameters by name)
"""Commands that agree: one error style and exit status 2 for every usage error, `--version`, typed `--set` and every
input checked before any work, one pretraining recipe and one cache folder for `pretrain` and `train`, checkpoints
kept as asked, every split checked by `data check`, the leaderboard store outside the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures_synth import synth_cache, synth_clip_weights, synth_root  # noqa: F401 (fixtures)

from benchmark import paths
from benchmark.cli import main
from benchmark.config_fields import FieldTypeError, coerce_field, coerce_fields
from benchmark.presets import TrainConfig, load_preset

TRAIN = ["train", "--preset", "synthvtt", "--model", "clip4clip-meanp", "--quiet"]


def _error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run `tvbench ARGV` in process, expect exit status 2 and return stderr (which must hold no traceback)."""
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse refuses a value while parsing
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    return err


# ---------------------------------------------------------------- one error style, exit status 2


def test_no_command_prints_the_overview_and_exits_2(capsys: pytest.CaptureFixture) -> None:
    err = _error(capsys, [])
    assert "commands:" in err and "reproduce" in err and "tvbench: error: no command given" in err


def test_version(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == "tvbench 0.1.0"


@pytest.mark.parametrize(("argv", "message"), [
    (["evaluate", "--out", "x"], "tvbench evaluate: error: give exactly one of --checkpoint DIR"),
    (["metrics", "nowhere.npy"], "tvbench metrics: error: score matrix `nowhere.npy` must be an existing .npy file"),
    (["pretrain", "--data", ".", "--steps", "-1"],
     "tvbench pretrain: error: argument --steps: expected an integer >= 1, got `-1`"),
    (["train", "--preset", "synthvtt", "--model", "glscl", "--out", "x", "--max-steps", "0"],
     "tvbench train: error: argument --max-steps: expected an integer >= 1, got `0`"),
    (["leaderboard", "show", "--benchmark", "msrvtt", "--resamples", "0"],
     "tvbench leaderboard show: error: argument --resamples: expected an integer >= 1, got `0`"),
    (["leaderboard", "show", "--benchmark", "msrvtt", "--alpha", "7"],
     "tvbench leaderboard show: error: argument --alpha: expected a probability strictly between 0 and 1, got `7`"),
    (["reproduce", "--models", "clip4clip-meanp,nosuch", "--out", "never"],
     "tvbench reproduce: error: Unknown model `nosuch`"),
    (["nosuch"], "tvbench: error: argument command: invalid choice: 'nosuch'"),
])  # fmt: skip
def test_usage_errors_exit_2_with_one_message_style(capsys: pytest.CaptureFixture, argv: list[str],
                                                    message: str) -> None:
    assert message in _error(capsys, argv)
    assert not Path("never").exists()


def test_a_bad_score_matrix_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scores = np.eye(3, dtype=np.float32)
    scores[1, 2] = np.nan
    np.save(tmp_path / "s.npy", scores)
    assert "tvbench metrics: error:" in _error(capsys, ["metrics", str(tmp_path / "s.npy")])


def test_a_leaderboard_root_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "board").write_text("")
    err = _error(capsys, ["leaderboard", "show", "--benchmark", "msrvtt", "--root", str(tmp_path / "board")])
    assert f"tvbench leaderboard: error: The leaderboard root {tmp_path / 'board'} is a file" in err


# ---------------------------------------------------------------- --set typed, every input checked before any work


def test_set_values_are_checked_against_the_field_type(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    base = [*TRAIN, "--out", str(tmp_path / "run"), "--data-root", str(tmp_path / "nodata")]
    err = _error(capsys, [*base, "--set", "lr=fast"])
    assert "--set lr=fast: `lr` must be a number (TrainConfig.lr), got the string 'fast'" in err
    err = _error(capsys, [*base, "--set", "epochs=abc"])
    assert "--set epochs=abc: `epochs` must be a whole number (TrainConfig.epochs)" in err
    err = _error(capsys, [*base, "--set", "text_padding_mask=3"])
    assert "`text_padding_mask` must be true or false" in err
    assert not (tmp_path / "run").exists()


def test_coerce_fields_converts_json_values_to_the_field_types() -> None:
    values = coerce_fields(TrainConfig, {"lr": 1, "betas": [0.9, 0.99], "seeds": [1, 2], "schedule_epochs": None})
    assert values == {"lr": 1.0, "betas": (0.9, 0.99), "seeds": (1, 2), "schedule_epochs": None}
    assert isinstance(values["lr"], float) and coerce_field(TrainConfig, "schedule_epochs", 4) == 4
    for name, bad in (("epochs", True), ("epochs", 2.5), ("betas", [0.9]), ("lr", float("nan")), ("amp", None)):
        with pytest.raises(FieldTypeError, match=f"`{name}` must be"):
            coerce_field(TrainConfig, name, bad)


@pytest.mark.parametrize(("sets", "message"), [
    (["backbone=nosuch"], "Unknown backbone `nosuch`"),
    (["batch_size=100000"], "batch_size 100000 exceeds the training samples"),
])  # fmt: skip
def test_inputs_are_checked_before_pretraining(capsys: pytest.CaptureFixture, tmp_path: Path, synth_root: Path,
                                               sets: list[str], message: str) -> None:
    cache = tmp_path / "cache"
    argv = [*TRAIN, "--out", str(tmp_path / "run"), "--data-root", str(synth_root), "--cache-dir", str(cache)]
    assert message in _error(capsys, [*argv, *(a for s in sets for a in ("--set", s))])
    assert not cache.exists()  # nothing was pretrained


def test_train_refuses_an_out_that_is_a_file(capsys: pytest.CaptureFixture, tmp_path: Path, synth_root: Path) -> None:
    (tmp_path / "run").write_text("")
    err = _error(capsys, [*TRAIN, "--out", str(tmp_path / "run"), "--data-root", str(synth_root),
                          "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert "is a file; pass a folder" in err and not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- one pretraining recipe, one cache


def test_pretrain_and_train_use_the_same_settings_and_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            synth_root: Path) -> None:
    import benchmark.engine.pretrain as pretrain
    from benchmark.engine.run_setup import prepare_model_run

    asked: list[tuple] = []

    def record(data_root, config, cache=None, progress=True):
        asked.append((config, cache))
        raise RuntimeError("stop here")

    monkeypatch.setattr(pretrain, "ensure_pretrained", record)
    assert main(["pretrain", "--data", str(synth_root)]) == 2
    with pytest.raises(RuntimeError, match="stop here"):
        prepare_model_run(model_name="clip4clip-meanp", preset="synthvtt", data_root=synth_root)
    (by_hand, cache_a), (by_train, cache_b) = asked
    assert by_hand == by_train == pretrain.PretrainConfig() and by_hand.steps == 300
    assert cache_a == cache_b == paths.cache_dir() / "backbones"
    assert pretrain.pretrain_config(load_preset("synthvtt")) == pretrain.PretrainConfig()


def test_cache_follows_xdg_and_never_the_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "tvbench"
    assert paths.cache_dir(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG rule: relative values are ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.cache_dir() == tmp_path / "home" / ".cache" / "tvbench"


def test_pretraining_says_what_it_does_and_where(tmp_path: Path, synth_root: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    from benchmark.engine.pretrain import PretrainConfig, ensure_pretrained

    config = PretrainConfig(steps=1, batch_size=16)
    path = ensure_pretrained(synth_root, config, cache=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert f"Pretraining tvbench-tiny on {synth_root} (1 steps" in err and f"cached at {path}" in err
    assert ensure_pretrained(synth_root, config, cache=tmp_path, progress=True) == path
    assert f"Using the pretrained tvbench-tiny backbone cached at {path}" in capsys.readouterr().err


# ---------------------------------------------------------------- checkpoints kept as asked


def test_keep_checkpoints_prunes_after_the_record(tmp_path: Path) -> None:
    from benchmark.engine.run_setup import TrainError
    from benchmark.engine.train import BEST, LAST, RECORD, check_out_dir, prune_checkpoints

    kept = {}
    for keep in ("best", "last", "all", "none"):
        run = tmp_path / keep
        for part in (BEST, LAST, RECORD):
            (run / part).mkdir(parents=True)
            (run / part / "state.json").write_text("{}")
        prune_checkpoints(run, keep)
        kept[keep] = sorted(p.name for p in (run / "checkpoints").iterdir()) if (run / "checkpoints").exists() else None
    assert kept == {"best": ["best"], "last": ["last"], "all": ["best", "last"], "none": None}
    with pytest.raises(TrainError, match="last checkpoint was not kept"):
        check_out_dir(tmp_path / "best", resume=True)
    check_out_dir(tmp_path / "last", resume=True)
    with pytest.raises(TrainError, match="already holds a run; pass --resume"):
        check_out_dir(tmp_path / "none", resume=False)


# ---------------------------------------------------------------- data check: every split


def test_data_check_without_split_checks_every_split(tmp_path: Path, synth_root: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    from benchmark.data import load_split

    root = tmp_path / "synth"
    shutil.copytree(synth_root, root)
    assert main(["data", "check", "synthvtt", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert all(f"synthvtt / {name}" in out for name in ("train", "val", "test"))
    video = Path(load_split("synthvtt", root, "train").videos[0].path)
    video.write_bytes(video.read_bytes()[:200])  # a truncated training video
    assert main(["data", "check", "synthvtt", "--root", str(root), "--split", "test"]) == 0
    assert main(["data", "check", "synthvtt", "--root", str(root)]) == 1
    assert f"unreadable: {video}" in capsys.readouterr().out


# ---------------------------------------------------------------- the leaderboard store


def test_default_leaderboard_store_is_the_user_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import leaderboard
    from leaderboard.store import resolve_root

    monkeypatch.delenv("TVBENCH_LEADERBOARD", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert resolve_root() == tmp_path / "data" / "tvbench" / "leaderboard"
    assert Path(leaderboard.__file__).parent not in resolve_root().parents
    monkeypatch.setenv("TVBENCH_LEADERBOARD", str(tmp_path / "env"))
    assert resolve_root() == tmp_path / "env" and resolve_root(tmp_path / "arg") == tmp_path / "arg"
