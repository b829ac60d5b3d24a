"""Name -> component registries with helpful misses, and the model registry of the DESIGN contract."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Packages whose import registers models; imported lazily so `tvbench --help` stays fast.
MODEL_PACKAGES = ("baselines", "glscl")


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
        """The config of this name with `overrides` applied; unknown keys are an error naming the valid ones."""
        valid = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise KeyError(f"Model `{self.name}` has no config field(s) {unknown}. Valid fields: {sorted(valid)}.")
        return self.config_cls(**{**self.defaults, **overrides})


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(
    name: str, *, config: type, defaults: dict[str, Any] | None = None, description: str = ""
) -> Callable[[type], type]:
    """Class decorator: register `cls` under `name` with its config dataclass and preset defaults (stackable)."""

    def decorate(cls: type) -> type:
        MODELS.add(name, ModelSpec(name, cls, config, dict(defaults or {}), description))
        return cls

    return decorate


def _load_model_packages() -> None:
    for package in MODEL_PACKAGES:
        importlib.import_module(package)


def list_models() -> list[str]:
    """Names of every registered model."""
    _load_model_packages()
    return MODELS.names()


def model_spec(name: str) -> ModelSpec:
    """The registry entry of `name`."""
    _load_model_packages()
    return MODELS.get(name)


def build_model(name: str, **overrides: Any) -> Any:
    """Build the model registered as `name`, with config fields overridden by keyword."""
    spec = model_spec(name)
    return spec.cls(spec.make_config(**overrides))


def config_to_json(config: Any) -> dict[str, Any]:
    """A model config as a JSON-serialisable dict (round-trips through json.dumps)."""
    data = dataclasses.asdict(config)
    json.dumps(data)
    return data
