"""Shared test settings: never touch the network; paths to the real annotation files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real, unmodified annotation files (../shared/realdata next to the checkout)."""
    if not REALDATA.is_dir():
        pytest.skip(f"real annotation files not found at {REALDATA}")
    return REALDATA
