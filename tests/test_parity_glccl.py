"""tvbench's `glccl` against the official GLCCL outputs stored by the parity harness (tests/fixtures/parity_glccl.json,
written by `nox -s parity -- --method glccl --official PATH --write-fixture ...`; the fixture's `source` names the
official file and its SHA-256): same seed, weights and inputs give the official S, four scores, CSC, InfoNCE, loss and
gradient norms without the official code. Also the shared harness pieces GLCCL added and the `parity` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from benchmark.study import parity_cli
from benchmark.study.parity import (
    Harness,
    OfficialCodeError,
    ParityRun,
    ParitySetup,
    check,
    compare,
    fixture_outputs,
    format_table,
    gradient_rows,
    make_inputs,
    official_import,
)
from benchmark.study.parity_glccl import (
    HEAD_MATRICES,
    MARKER,
    REPOSITORY,
    SCALARS,
    SCORES,
    build_tvbench,
    official_name,
    tvbench_outputs,
    valid_frames,
)

FIXTURE = Path(__file__).parent / "fixtures" / "parity_glccl.json"
TINY = ParitySetup(backbone="tvbench-tiny", texts=3, frames=2, words=10, size=64)


def test_tvbench_matches_the_official_outputs_of_the_fixture() -> None:
    fixture = json.loads(FIXTURE.read_text())
    assert fixture["source"]["repository"] == REPOSITORY and fixture["source"]["file"] == "modules/modeling_glccl.py"
    setup = ParitySetup(**fixture["setup"])
    official = fixture_outputs(fixture, (*SCORES, *SCALARS))
    ours = tvbench_outputs(build_tvbench(setup), make_inputs(setup, valid_frames(setup)))
    rows = [compare(name, ours[name], official[name]) for name in (*SCORES, *SCALARS)]
    assert check(rows, 1e-5), format_table(rows, 1e-5)
    norms = official["grad_norms"]
    assert set(ours["grads"]) == set(norms)  # every tvbench parameter gets a gradient, as officially
    for name, grad in ours["grads"].items():
        assert float(grad.norm()) == pytest.approx(norms[name], rel=1e-4, abs=1e-9), name


def test_every_parameter_maps_to_one_official_name_and_the_head_is_off_identity() -> None:
    model = build_tvbench(TINY)
    names = [official_name(n) for n, _ in model.named_parameters()]
    assert len(set(names)) == len(names)
    assert set(HEAD_MATRICES.values()) <= set(names) and "frame_position_embeddings.weight" in names
    params = dict(model.named_parameters())
    for name in HEAD_MATRICES:  # a swapped mapping must change the outputs
        assert not torch.equal(params[name], torch.eye(params[name].shape[0])), name
    again = dict(build_tvbench(TINY).named_parameters())
    assert all(torch.equal(params[name], again[name]) for name in HEAD_MATRICES)  # seeded: the same every time
    with pytest.raises(KeyError, match="no official counterpart"):
        official_name("head.extra")


def test_inputs_vary_padding_and_zero_padded_frames() -> None:
    setup = ParitySetup(texts=4, frames=3, size=8)
    assert valid_frames(setup) == [3, 2, 1, 3]
    inputs = make_inputs(setup, valid_frames(setup))
    assert inputs["frame_mask"].sum(1).tolist() == [3, 2, 1, 3]
    assert inputs["frames"][1, 2].abs().sum() == 0 and inputs["frames"][1, 1].abs().sum() > 0
    default = make_inputs(ParitySetup(size=8))["frame_mask"]  # GLSCL's: only the last clip's last frame padded
    assert default.sum(1).tolist() == [3, 3, 2]


def test_gradient_rows_take_the_first_matching_group_and_refuse_strays() -> None:
    grads = {"backbone.clip.visual.w": torch.ones(2), "backbone.clip.t": torch.ones(3), "head.m": torch.zeros(1)}
    official = {**grads, "backbone.clip.t": torch.full((3,), 1.5)}
    groups = {"image": "backbone.clip.visual.", "text": "backbone.clip.", "head": ("head.", "other.")}
    rows = gradient_rows(grads, official, groups)
    assert [(r.name, r.count, r.max_abs_diff) for r in rows] == [("image", 2, 0.0), ("text", 3, 0.5), ("head", 1, 0.0)]
    with pytest.raises(ValueError, match="`stray` belongs to no parity group"):
        gradient_rows({**grads, "stray": torch.ones(1)}, {**official, "stray": torch.ones(1)}, groups)


def test_a_wrong_checkout_fails_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert parity_cli.main(["--method", "glccl", "--official", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parity: error:") and "modules/modeling_glccl.py` is missing" in err
    assert "git clone https://github.com/JingXiaolun/GLCCL" in err
    assert parity_cli.main(["--official", str(tmp_path)]) == 2  # default method: GLSCL
    assert "https://github.com/zchoi/GLSCL" in capsys.readouterr().err


def test_a_missing_official_dependency_or_module_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "__init__.py").write_text("")
    (tmp_path / "modules" / "modeling_glccl.py").write_text("import boto3_missing_for_this_test\n")
    with pytest.raises(OfficialCodeError, match="imports `boto3_missing_for_this_test`, which is not installed") as err:
        with official_import(tmp_path, "modules", MARKER, REPOSITORY):
            import modules.modeling_glccl  # noqa: F401
    assert "pip install boto3_missing_for_this_test" in str(err.value)
    with pytest.raises(OfficialCodeError, match="no module `modules.module_clip`: pass a complete checkout of Jing"):
        with official_import(tmp_path, "modules", MARKER, REPOSITORY):
            import modules.module_clip  # noqa: F401
    assert "modules" not in sys.modules and str(tmp_path) not in sys.path  # nothing of the checkout leaks
    assert parity_cli.main(["--method", "glccl", "--official", str(tmp_path), "--backbone", "tvbench-tiny"]) == 2
    assert "builds ViT CLIPs" in capsys.readouterr().err  # refused before any model is built


def test_the_command_prints_checks_and_writes_the_fixture(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[ParitySetup] = []

    def run(path: Path, setup: ParitySetup) -> ParityRun:
        seen.append(setup)
        diff = 0.0 if path.name == "good" else 2e-5
        return ParityRun("title line", [compare("S", torch.tensor([1.0 + diff]), torch.tensor([1.0]))],
                         [compare("S with GELU", torch.tensor([1.5]), torch.tensor([1.0]))], {"official": {"s": [1.0]}})

    monkeypatch.setitem(parity_cli.HARNESSES, "fake", Harness("fake", "someone/fake", ParitySetup(texts=5), run, 1e-5))
    out = tmp_path / "fixture.json"
    argv = ["--method", "fake", "--frames", "4", "--write-fixture", str(out)]
    assert parity_cli.main([*argv, "--official", str(tmp_path / "good")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("title line") and "| S | 1 | 0.00e+00 | 1 | yes |" in printed
    assert "| S with GELU | 1 | 5.00e-01 | 1 | **no** |" in printed  # departures are shown, not checked
    assert json.loads(out.read_text()) == {"official": {"s": [1.0]}}
    assert seen[0] == ParitySetup(texts=5, frames=4)  # the harness's defaults, then the options
    assert parity_cli.main([*argv, "--official", str(tmp_path / "bad")]) == 1  # 2e-5 > the harness's 1e-5
    assert parity_cli.main([*argv, "--official", str(tmp_path / "bad"), "--tolerance", "1e-4"]) == 0
