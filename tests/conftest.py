"""Shared test settings: never touch the network or the user's cache and leaderboard; paths to the real annotation
files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def private_user_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The XDG cache and data folders (pretrained backbones, the default leaderboard) in a temporary folder, for this
    process and the commands it starts; the default leaderboard variable is cleared."""
    home = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(home / "cache"))
        patch.setenv("XDG_DATA_HOME", str(home / "data"))
        patch.delenv("TVBENCH_LEADERBOARD", raising=False)
        yield home


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
