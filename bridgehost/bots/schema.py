"""Validate a bot's `config:` map against the schema the bot declares.

A bot declares it either by parametrising `Bot` with a dataclass
(`class Greeter(Bot[GreeterConfig])`: typed for mypy, checked here) or with a
dict schema in `config_schema`. Every problem is collected with its key, so
the message names what to fix: `config.greeting: must be str, not 3`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from .api import Bot


class BotConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Bad:
    """Marker: the value did not fit (the problem is already recorded)."""


_BAD = _Bad()


def config_type(cls: type[Bot[Any]]) -> Any:
    """The type argument of `Bot[...]` in the class's bases, or None."""
    for klass in cls.__mro__:
        for base in klass.__dict__.get("__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Bot):
                args = get_args(base)
                if args:
                    return args[0]
    return None


def build_config(cls: type[Bot[Any]], raw: Mapping[str, Any]) -> Any:
    """The value `self.config` gets; raises BotConfigError listing every problem."""
    problems: list[str] = []
    tp = config_type(cls)
    if not isinstance(raw, Mapping):
        raise BotConfigError([f"config: must be a map, not {type(raw).__name__}"])
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        value = _dataclass(tp, raw, "config", problems)
    elif cls.config_schema is not None:
        value = _dict_schema(cls.config_schema, raw, problems)
    else:
        value = dict(raw)
    if problems:
        raise BotConfigError(problems)
    return value


def _show(value: Any) -> str:
    text = type(value).__name__ if isinstance(value, Mapping | list) else repr(value)
    return text[:60]


def _name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if get_origin(tp) in (Union, types.UnionType):
        return " | ".join(_name(a) for a in get_args(tp))
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if isinstance(tp, type) and not get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _dataclass(tp: type[Any], raw: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a map, not {_show(raw)}")
        return _BAD
    hints = typing.get_type_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
    kwargs: dict[str, Any] = {}
    before = len(problems)
    for key in raw:
        if key not in fields:
            known = ", ".join(fields) or "none"
            problems.append(f"{path}.{key}: unknown key (known: {known})")
    for name, f in fields.items():
        if name in raw:
            value = _check(raw[name], hints.get(name, Any), f"{path}.{name}", problems)
            if value is not _BAD:
                kwargs[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{path}.{name}: is required ({_name(hints.get(name, Any))})")
    if len(problems) > before:
        return _BAD
    try:
        return tp(**kwargs)
    except (TypeError, ValueError) as exc:
        problems.append(f"{path}: {exc}")
        return _BAD


def _dict_schema(schema: Mapping[str, Any], raw: Mapping[str, Any], problems: list[str]) -> Any:
    out: dict[str, Any] = {}
    for key in raw:
        if key not in schema:
            problems.append(f"config.{key}: unknown key (known: {', '.join(schema) or 'none'})")
    for key, rule in schema.items():
        tp, has_default, default = rule, False, None
        if isinstance(rule, tuple) and len(rule) == 2:
            (tp, default), has_default = rule, True
        if key in raw:
            value = _check(raw[key], tp, f"config.{key}", problems)
            if value is not _BAD:
                out[key] = value
        elif has_default:
            out[key] = default
        else:
            problems.append(f"config.{key}: is required ({_name(tp)})")
    return out


def _check(value: Any, tp: Any, path: str, problems: list[str]) -> Any:
    """`value` converted to `tp` (lists to tuples, ints to floats), or _BAD."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any or tp is object:
        return value
    if tp is type(None) or tp is None:
        return value if value is None else _fail(value, tp, path, problems)
    if origin in (Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if value is not None and len(others) == 1 and dataclasses.is_dataclass(others[0]):
            return _check(value, others[0], path, problems)
        for arg in args:
            scratch: list[str] = []
            got = _check(value, arg, path, scratch)
            if not scratch:
                return got
        return _fail(value, tp, path, problems)
    if origin is Literal:
        return value if value in args else _fail(value, tp, path, problems)
    if tp is bool:
        return value if isinstance(value, bool) else _fail(value, tp, path, problems)
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value if ok else _fail(value, tp, path, problems)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return _fail(value, tp, path, problems)
    if tp is str:
        return value if isinstance(value, str) else _fail(value, tp, path, problems)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        return _sequence(value, tp, path, problems)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            return _fail(value, tp, path, problems)
        vt = args[1] if len(args) == 2 else Any
        out = {str(k): _check(v, vt, f"{path}.{k}", problems) for k, v in value.items()}
        return _BAD if any(v is _BAD for v in out.values()) else out
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, path, problems)
    if isinstance(tp, type):
        return value if isinstance(value, tp) else _fail(value, tp, path, problems)
    return value


def _sequence(value: Any, tp: Any, path: str, problems: list[str]) -> Any:
    origin, args = get_origin(tp) or tp, get_args(tp)
    if not isinstance(value, list | tuple):
        return _fail(value, tp, path, problems)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            problems.append(f"{path}: must have {len(args)} items, not {len(value)}")
            return _BAD
        pairs = enumerate(zip(value, args, strict=True))
        items = [_check(v, a, f"{path}[{i}]", problems) for i, (v, a) in pairs]
    else:
        item_tp = args[0] if args else Any
        items = [_check(v, item_tp, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if any(v is _BAD for v in items):
        return _BAD
    return tuple(items) if origin is tuple else items


def _fail(value: Any, tp: Any, path: str, problems: list[str]) -> _Bad:
    problems.append(f"{path}: must be {_name(tp)}, not {_show(value)}")
    return _BAD
