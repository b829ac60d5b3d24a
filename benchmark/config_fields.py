"""Values for a config dataclass checked against its field types (`--set lr=fast` fails at once, not after minutes of
work): JSON-like values in, the field's type out (an int becomes a float for a float field, a list a tuple)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Union


class FieldTypeError(ValueError):
    """A config value does not have its field's type; the message names the field, the type and the value."""


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])} values"
        return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    if origin is list:
        return f"a list of {_describe(args[0])} values" if args else "a list"
    names = {type(None): "null", bool: "true or false", int: "a whole number", float: "a number", str: "a string",
             dict: "an object"}  # fmt: skip
    return names.get(origin or tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any) -> Any:
    """`value` as type `tp`, or raise TypeError. Types it does not know are accepted as they are."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        for arm in args:
            try:
                return _convert(value, arm)
            except TypeError:
                continue
        raise TypeError
    if origin is Literal:
        if value in args:
            return value
        raise TypeError
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise TypeError
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise TypeError
            return tuple(_convert(v, a) for v, a in zip(value, args))
        item = args[0] if args else Any
        items = [_convert(v, item) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError
        return value
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if tp is bool or tp is str:
        if isinstance(value, tp):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise TypeError
    if isinstance(tp, type) and not isinstance(value, tp):
        raise TypeError
    return value


def _shown(value: Any) -> str:
    return f"the string {value!r}" if isinstance(value, str) else repr(value)


def field_types(config_cls: type) -> dict[str, Any]:
    """Field name -> resolved type of a config dataclass (empty when its annotations cannot be resolved)."""
    try:
        hints = typing.get_type_hints(config_cls)
    except (NameError, TypeError):
        return {}
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls) if f.name in hints}


def coerce_field(config_cls: type, name: str, value: Any) -> Any:
    """`value` converted to the type of field `name` of `config_cls`; FieldTypeError when it does not fit."""
    tp = field_types(config_cls).get(name, Any)
    try:
        return _convert(value, tp)
    except TypeError:
        raise FieldTypeError(
            f"`{name}` must be {_describe(tp)} ({config_cls.__name__}.{name}), got {_shown(value)}."
        ) from None


def coerce_fields(config_cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Every value of `values` converted to its field's type (see `coerce_field`)."""
    return {name: coerce_field(config_cls, name, value) for name, value in values.items()}
