"""tvbench's `glscl` against the official GLSCL outputs stored by the parity harness (tests/fixtures/parity_glscl.json,
written by `nox -s parity -- --method glscl --official PATH --write-fixture ...` from zchoi/GLSCL@06979f8): same seed,
weights and inputs give the official Sim1, Sim2, S, loss terms and gradient norms without the official code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmark.study.parity import (
    OfficialCodeError,
    ParitySetup,
    check,
    compare,
    compare_many,
    fixture_outputs,
    format_table,
    make_inputs,
    official_import,
)
from benchmark.study.parity_glscl import MATRICES, REPOSITORY, SCALARS, build_tvbench, official_name, tvbench_outputs

FIXTURE = Path(__file__).parent / "fixtures" / "parity_glscl.json"


def test_tvbench_matches_the_official_outputs_of_the_fixture() -> None:
    fixture = json.loads(FIXTURE.read_text())
    setup = ParitySetup(**fixture["setup"])
    official = fixture_outputs(fixture, (*MATRICES, *SCALARS))
    ours = tvbench_outputs(build_tvbench(setup), make_inputs(setup))
    rows = [compare(name, ours[name], official[name]) for name in (*MATRICES, *SCALARS)]
    assert check(rows, 1e-5), format_table(rows, 1e-5)
    norms = official["grad_norms"]
    assert set(ours["grads"]) == set(norms)  # the same parameters get gradients (conv1 frozen in both)
    for name, grad in ours["grads"].items():
        assert float(grad.norm()) == pytest.approx(norms[name], rel=1e-4, abs=1e-9), name


def test_every_parameter_maps_to_one_official_name() -> None:
    model = build_tvbench(ParitySetup(backbone="tvbench-tiny", size=64))
    names = [official_name(n) for n, _ in model.named_parameters()]
    assert len(set(names)) == len(names)
    assert "frame_position_embeddings.weight" in names and "spatial_queries" in names
    with pytest.raises(KeyError, match="no official counterpart"):
        official_name("head.extra")


def test_table_and_official_import_helpers(tmp_path: Path) -> None:
    rows = [compare("a", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5])),
            compare_many("g", {"x": torch.ones(2)}, {"x": torch.ones(2)})]
    assert rows[0].max_abs_diff == 0.5 and rows[0].max_abs_official == 2.5 and rows[1].count == 2
    text = format_table(rows, 0.1)
    assert "| a | 2 | 5.00e-01 | 2.5 | **no** |" in text and "| g | 2 | 0.00e+00 | 1 | yes |" in text
    assert not check(rows, 0.1) and check(rows, 0.5)
    with pytest.raises(ValueError, match="shape"):
        compare("b", torch.ones(2), torch.ones(3))
    with pytest.raises(OfficialCodeError, match="git clone https://github.com/zchoi/GLSCL"):
        with official_import(tmp_path, "tvr", "tvr/models/modeling.py", REPOSITORY):
            pass
    (tmp_path / "tvr").mkdir()
    (tmp_path / "tvr" / "__init__.py").write_text("ORIGIN = 'checkout'\n")
    (tmp_path / "tvr" / "marker.py").write_text("")
    with official_import(tmp_path, "tvr", "tvr/marker.py", REPOSITORY):
        import tvr

        assert tvr.ORIGIN == "checkout"
    import sys

    assert "tvr" not in sys.modules and str(tmp_path) not in sys.path
