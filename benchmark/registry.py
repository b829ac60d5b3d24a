"""Name -> component registries with helpful misses, and the model registry of the DESIGN contract.

Every model comes from a plugin, the shipped ones included: each entry point of the group `tvbench.models` (a module
whose import registers models with `@register_model`; tvbench declares `baselines` and `glscl` in its
pyproject.toml) is imported on first use, and `include_models` imports a user's file or folder of modules
(`--include PATH`). `model_source` says where a model came from, so a checkpoint can name the plugin it needs.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from benchmark.config_fields import coerce_fields

T = TypeVar("T")

ENTRY_POINT_GROUP = "tvbench.models"


class Registry(Generic[T]):
    """A dictionary of named components that refuses silent re-registration and suggests names on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items and self._items[name] is not item:
            raise KeyError(f"{self.kind} `{name}` is already registered; pick another name.")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=3)
            hint = f" Did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
            raise KeyError(f"Unknown {self.kind} `{name}`.{hint} Available: {', '.join(sorted(self._items))}.")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model: its class, config dataclass and the preset values of this name."""

    name: str
    cls: type
    config_cls: type
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def make_config(self, **overrides: Any) -> Any:
        """The config of this name with `overrides` applied; unknown keys or values of the wrong type are an error
        naming the field."""
        valid = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise KeyError(f"Model `{self.name}` has no config field(s) {unknown}. Valid fields: {sorted(valid)}.")
        return self.config_cls(**coerce_fields(self.config_cls, {**self.defaults, **overrides}))


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(
    name: str, *, config: type, defaults: dict[str, Any] | None = None, description: str = ""
) -> Callable[[type], type]:
    """Class decorator: register `cls` under `name` with its config dataclass and preset defaults (stackable)."""

    def decorate(cls: type) -> type:
        MODELS.add(name, ModelSpec(name, cls, config, dict(defaults or {}), description))
        return cls

    return decorate


class PluginError(RuntimeError):
    """A model plugin cannot be found or imported; the message names the plugin and how to get it."""


@dataclass
class _Plugins:
    """What this process has loaded: entry points (once), included files (module name -> path), failures."""

    entry_points_loaded: bool = False
    included: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


_PLUGINS = _Plugins()


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _load_entry_points() -> None:
    """Import every `tvbench.models` entry point once; a plugin that fails is recorded, and the others still load."""
    if _PLUGINS.entry_points_loaded:
        return
    _PLUGINS.entry_points_loaded = True
    for point in _entry_points():
        try:
            point.load()
        except Exception as err:  # a broken third-party plugin must not hide every other model
            dist = f" of {point.dist.name}" if point.dist else ""
            _PLUGINS.failed[f"entry point `{point.name}`{dist}"] = f"{type(err).__name__}: {err}"


def _module_name(file: Path) -> str:
    """A module name for an included file that cannot clash with an installed module (stem + path hash)."""
    stem = re.sub(r"\W", "_", file.stem)
    return f"tvbench_include_{stem}_{hashlib.sha256(str(file).encode()).hexdigest()[:8]}"


def _import_file(file: Path) -> bool:
    """Import `file` as a module (once per process); returns whether it was imported now."""
    name = _module_name(file)
    if name in sys.modules:
        return False
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise PluginError(f"--include {file}: not an importable Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look the module up while it executes
    _PLUGINS.included[name] = str(file)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name], _PLUGINS.included[name]
        raise PluginError(f"--include {file}: importing it failed: {type(err).__name__}: {err}") from err
    return True


def include_models(paths: Sequence[str | Path]) -> list[str]:
    """Import a user's model file, or every `*.py` file directly in a folder (sorted; names starting with `_` are
    skipped), so that their `@register_model` classes register; returns the model names added."""
    _load_entry_points()
    added: list[str] = []
    for given in paths:
        path = Path(given).expanduser().resolve()
        if path.is_dir():
            files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.is_file() and path.suffix == ".py":
            files = [path]
        else:
            raise FileNotFoundError(f"--include {given}: no such .py file or folder of modules.")
        if not files:
            raise FileNotFoundError(f"--include {given}: the folder holds no .py module.")
        before = set(MODELS.names())
        imported = [_import_file(file) for file in files]
        new = sorted(set(MODELS.names()) - before)
        if all(imported) and not new:
            raise PluginError(
                f"--include {given} registered no model. Decorate your model class with "
                "`@register_model(\"name\", config=YourConfig)` (`from benchmark import register_model`)."
            )
        added += new
    return added


def _no_models_message() -> str:
    return (
        f"No model is registered: this environment has no working `{ENTRY_POINT_GROUP}` entry points (tvbench "
        "declares `baselines` and `glscl` in its pyproject.toml). Reinstall tvbench (`pip install -e .` in the "
        "checkout, or `nox` recreates its environment) so that its installed metadata is current."
    )


def _failures() -> str:
    if not _PLUGINS.failed:
        return ""
    return " Plugins that failed to load: " + "; ".join(f"{k}: {v}" for k, v in _PLUGINS.failed.items()) + "."


def plugin_failures() -> dict[str, str]:
    """Entry points that failed to import in this process (name -> error), for `tvbench models` to report."""
    _load_entry_points()
    return dict(_PLUGINS.failed)


def list_models() -> list[str]:
    """Names of every registered model."""
    _load_entry_points()
    if not MODELS.names():
        raise PluginError(_no_models_message() + _failures())
    return MODELS.names()


def model_spec(name: str) -> ModelSpec:
    """The registry entry of `name`."""
    _load_entry_points()
    if not MODELS.names():
        raise PluginError(_no_models_message() + _failures())
    try:
        return MODELS.get(name)
    except KeyError as err:
        hint = " A model of your own: pass --include FILE, or install its package (entry point group " \
               f"`{ENTRY_POINT_GROUP}`)."
        raise KeyError(err.args[0] + hint + _failures()) from None


def model_source(name: str) -> dict[str, str]:
    """Where model `name` came from: its `module`, plus the `include` path or the `entry_point` and `distribution`
    that provide it. Checkpoints and run records keep it, so a later run can load the same plugin."""
    module = model_spec(name).cls.__module__
    if module in _PLUGINS.included:
        return {"module": module, "include": _PLUGINS.included[module]}
    for point in _entry_points():
        if module == point.module or module.startswith(point.module + "."):
            return {"module": module, "entry_point": point.name,
                    "distribution": point.dist.name if point.dist else ""}  # fmt: skip
    return {"module": module}


def require_model(name: str, source: dict[str, str] | None) -> ModelSpec:
    """The spec of `name`, first loading the plugin `source` (from `model_source`) when `name` is not registered:
    a checkpoint evaluated later needs no flags, and a plugin that is gone is named with how to get it back."""
    _load_entry_points()
    source = source or {}
    if name not in MODELS and source.get("include"):
        path = Path(source["include"])
        if not path.is_file():
            raise PluginError(
                f"Model `{name}` was defined in `{path}` (--include), which no longer exists; pass --include with "
                "the file's new location."
            )
        include_models([path])
    elif name not in MODELS and source.get("entry_point"):
        dist = source.get("distribution") or "the package that provides it"
        raise PluginError(
            f"Model `{name}` comes from the plugin `{source['entry_point']}` of the distribution `{dist}` (entry "
            f"point group `{ENTRY_POINT_GROUP}`), which is not installed here; install it (e.g. `pip install "
            f"{dist}`) and run again." + _failures()
        )
    elif name not in MODELS and source.get("module"):
        try:
            importlib.import_module(source["module"])
        except ImportError as err:
            raise PluginError(
                f"Model `{name}` was registered by the module `{source['module']}`, which cannot be imported here "
                f"({err}); make it importable or pass --include with its file."
            ) from err
    return model_spec(name)


def build_model(name: str, **overrides: Any) -> Any:
    """Build the model registered as `name`, with config fields overridden by keyword."""
    spec = model_spec(name)
    return spec.cls(spec.make_config(**overrides))


def config_to_json(config: Any) -> dict[str, Any]:
    """A model config as a JSON-serialisable dict (round-trips through json.dumps)."""
    data = dataclasses.asdict(config)
    json.dumps(data)
    return data
