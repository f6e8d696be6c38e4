"""Typed getters over one YAML map that record problems (with their YAML path)
instead of raising, and the `${ENV}` / `${file:PATH}` secret substitution."""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

_SECRET = re.compile(r"\$\{([^}]+)\}")
T = TypeVar("T")
S = TypeVar("S", bound=str)
D = TypeVar("D")


class Reader:
    """Typed getters over one YAML map that record problems instead of raising."""

    def __init__(self, problems: list[str], path: str, raw: Any, base: Path) -> None:
        self.problems, self.path, self.base = problems, path, base
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problem("", f"must be a map, not {type(raw).__name__}")
            raw = {}
        self.raw: dict[str, Any] = raw
        self._known: set[str] = set()

    def where(self, key: str) -> str:
        if not key:
            return self.path or "(top level)"
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.where(key)}: {text}")

    def child(self, key: str) -> Reader:
        self._known.add(key)
        return Reader(self.problems, self.where(key), self.raw.get(key), self.base)

    def _get(self, key: str, default: T, check: Callable[[Any], bool], what: str) -> T:
        self._known.add(key)
        if key not in self.raw or self.raw[key] is None:
            return default
        value = self.raw[key]
        if not check(value):
            self.problem(key, f"must be {what}, not {show(value)}")
            return default
        return value  # type: ignore[no-any-return]

    def text(
        self, key: str, default: Any = None, *, required: bool = False, secret: bool = False
    ) -> Any:
        if required and self.raw.get(key) is None:
            self._known.add(key)
            self.problem(key, "is required")
            return default
        value = self._get(
            key, default, lambda v: isinstance(v, str | int) and not isinstance(v, bool), "text"
        )
        if value is None or value is default:
            return value
        return self._substitute(key, str(value), secret)

    def boolean(self, key: str, default: bool) -> bool:
        return self._get(key, default, lambda v: isinstance(v, bool), "true or false")

    def integer(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        value = self._get(key, default, lambda v: type(v) is int, "an integer")
        return int(self._bounded(key, value, default, lo, hi))

    def number(self, key: str, default: float, lo: float | None = None) -> float:
        value = self._get(key, default, lambda v: type(v) in (int, float), "a number")
        return float(self._bounded(key, value, default, lo, None))

    def _bounded(self, key: str, value: Any, default: Any, lo: Any, hi: Any) -> Any:
        if lo is not None and value < lo:
            self.problem(key, f"must be at least {lo}")
            return default
        if hi is not None and value > hi:
            self.problem(key, f"must be at most {hi}")
            return default
        return value

    def choice(self, key: str, default: S, choices: tuple[S, ...]) -> S:
        value = self.text(key, default)
        for choice in choices:
            if value == choice:
                return choice
        self.problem(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return default

    def options(self, key: str, cls: type[D]) -> D:
        """A map of switches into the frozen dataclass `cls` (e.g. `relay:`):
        each field is a key, typed and defaulted by the field; unknown keys
        are problems."""
        r = self.child(key)
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            default: Any = f.default
            if default is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}.{f.name}: an option needs a default")
            hint = hints[f.name]
            if typing.get_origin(hint) is Literal:
                values[f.name] = r.choice(f.name, default, typing.get_args(hint))
            elif hint is bool:
                values[f.name] = r.boolean(f.name, default)
            elif hint is int:
                values[f.name] = r.integer(f.name, default, lo=0)
            elif hint is float:
                values[f.name] = r.number(f.name, default, lo=0.0)
            else:
                values[f.name] = r.text(f.name, default)
        r.unknown()
        return cls(**values)

    def path_(
        self, key: str, default: Path | None = None, *, required: bool = False
    ) -> Path | None:
        value = self.text(key, None, required=required)
        if value is None:
            return default
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p

    def items(self, key: str) -> list[tuple[str, Any]]:
        value: list[Any] = self._get(key, [], lambda v: isinstance(v, list), "a list")
        return [(f"{self.where(key)}[{i}]", item) for i, item in enumerate(value)]

    def texts(self, key: str) -> tuple[str, ...]:
        value: list[str] = self._get(
            key,
            [],
            lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            "a list of text",
        )
        return tuple(value)

    def _substitute(self, key: str, value: str, secret: bool) -> str:
        def repl(m: re.Match[str]) -> str:
            ref = m.group(1)
            if ref.startswith("file:"):
                path = Path(os.path.expanduser(ref[5:]))
                path = path if path.is_absolute() else self.base / path
                try:
                    return path.read_text().rstrip("\r\n")
                except OSError as exc:
                    self.problem(key, f"cannot read secret file {path}: {exc.strerror}")
                    return ""
            if ref not in os.environ:
                self.problem(key, f"environment variable {ref} is not set")
                return ""
            return os.environ[ref]

        return _SECRET.sub(repl, value)

    def unknown(self) -> None:
        for key in self.raw:
            if key not in self._known:
                self.problem(str(key), "unknown key")


def show(value: Any) -> str:
    return type(value).__name__ if isinstance(value, dict | list) else repr(value)[:60]
