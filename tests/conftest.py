"""Shared test settings: never touch the network; paths to the real annotation files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _find_realdata() -> Path:
    """$TVBENCH_REALDATA, else the first `shared/realdata` beside or above the checkout, else /work/shared/realdata."""
    if os.environ.get("TVBENCH_REALDATA"):
        return Path(os.environ["TVBENCH_REALDATA"])
    for parent in Path(__file__).resolve().parents[1:]:
        if (parent / "shared" / "realdata").is_dir():
            return parent / "shared" / "realdata"
    return Path("/work/shared/realdata")


REALDATA = _find_realdata()


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real, unmodified annotation files (../shared/realdata next to the checkout)."""
    if not REALDATA.is_dir():
        pytest.skip(f"real annotation files not found at {REALDATA}")
    return REALDATA
