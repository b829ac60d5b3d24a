"""Where tvbench keeps the files it owns outside a run's `--out`: the cache (pretrained backbones, efficiency counts)
and the user's leaderboard. Both follow the XDG base directories, so nothing lands in the directory a command ran
from or inside the installed package."""

from __future__ import annotations

import os
from pathlib import Path

APP = "tvbench"


def _xdg(variable: str, fallback: str) -> Path:
    """$`variable` when it is an absolute path (the XDG rule: relative values are ignored), else ~/`fallback`."""
    value = os.environ.get(variable, "")
    return Path(value) if value and Path(value).is_absolute() else Path.home() / fallback


def cache_dir(override: str | Path | None = None) -> Path:
    """The cache folder: `override` (`--cache-dir`), else $XDG_CACHE_HOME/tvbench, else ~/.cache/tvbench."""
    return Path(override) if override is not None else _xdg("XDG_CACHE_HOME", ".cache") / APP


def data_dir() -> Path:
    """tvbench's user data folder: $XDG_DATA_HOME/tvbench, else ~/.local/share/tvbench."""
    return _xdg("XDG_DATA_HOME", ".local/share") / APP
