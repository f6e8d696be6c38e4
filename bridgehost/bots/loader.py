"""Find a bot class from `plugin:` — `module:Class`, or an entry point name in
the group `bridgehost.bots` (how a pip-installed bot package registers).

Every failure is a `BotLoadError` with a reason a user can act on; the host
reports it with the bot's name and starts the other bots anyway.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from .api import Bot

ENTRY_POINT_GROUP = "bridgehost.bots"
BUILTINS = {
    "ping": "bridgehost.bots.builtin.ping:Ping",
    "help": "bridgehost.bots.builtin.help:Help",
    "seen": "bridgehost.bots.builtin.seen:Seen",
}
"""The builtins by name, also when bridgehost runs from a source tree whose
entry points are not installed."""


class BotLoadError(Exception):
    pass


def resolve(spec: str) -> str:
    """`module:Class` for a plugin spec (entry point names looked up)."""
    spec = spec.strip()
    if ":" in spec:
        return spec
    found = entry_points(group=ENTRY_POINT_GROUP).select(name=spec)
    for ep in found:
        return str(ep.value)
    if spec in BUILTINS:
        return BUILTINS[spec]
    names = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(BUILTINS))
    raise BotLoadError(
        f"no bot named {spec!r} in entry point group {ENTRY_POINT_GROUP} "
        f"(installed: {', '.join(names)}); or give module:Class"
    )


def load_bot_class(spec: str) -> type[Bot[Any]]:
    target = resolve(spec)
    module_name, _, qualname = target.partition(":")
    if not module_name or not qualname:
        raise BotLoadError(f"plugin {spec!r}: use module:Class")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise BotLoadError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BotLoadError(f"module {module_name} has no {qualname}") from None
    if not (isinstance(obj, type) and issubclass(obj, Bot)):
        raise BotLoadError(f"{target} is not a subclass of bridgehost.bots.Bot")
    return obj
