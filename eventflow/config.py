"""Typed, validated configuration: dataclasses filled from YAML or dicts, unknown keys rejected.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Inner:
...     lr: float = 2e-4
>>> @dataclass
... class Outer:
...     name: str = "LIFFireNet"
...     optim: Inner = field(default_factory=Inner)
>>> from_dict(Outer, {"optim": {"lr": 1e-3}})
Outer(name='LIFFireNet', optim=Inner(lr=0.001))
>>> from_dict(Outer, {"optimiser": {}}, source="train.yaml")
Traceback (most recent call last):
...
ValueError: train.yaml: unknown key 'optimiser' in Outer; valid keys: name, optim
"""


import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def _convert(tp: Any, value: Any, where: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ValueError(f"{source}: {where} must be a mapping, got {type(value).__name__}")
        return from_dict(tp, value, source=source, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where, source)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if errors else f"{source}: {where} has an invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{source}: {where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{source}: {where} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ValueError(f"{source}: {where} must have {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, f"{where}[{i}]", source) for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_convert(item, v, f"{where}[{i}]", source) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{source}: {where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{source}: {where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{source}: {where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{source}: {where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{source}: {where} must be a string, got {value!r}")
        return value
    return value


def _type_hints(cls: type) -> dict[str, Any]:
    """Field types, resolving string annotations against the defining module where needed."""
    fields = dataclasses.fields(cls)
    if all(not isinstance(f.type, str) for f in fields):
        return {f.name: f.type for f in fields}
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<config>", where: str | None = None) -> T:
    """Build dataclass ``cls`` from ``data``, checking types and rejecting unknown keys.

    Errors are ``ValueError`` with one line naming ``source`` and the offending key.
    """
    where = where or cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"{source}: unknown key {unknown[0]!r} in {where}; valid keys: {', '.join(fields)}"
        )
    hints = _type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}", source) for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"{source}: {where}: {err}") from None
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain nested dicts and lists (YAML and JSON friendly)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Read a YAML file with ``yaml.safe_load`` into dataclass ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    return from_dict(cls, data, source=str(path))
