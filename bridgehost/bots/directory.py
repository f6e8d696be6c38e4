"""Which bots are in a topic, for `help`: a small protocol-level convention.

Bots in one process share a registry (the host's runners). A bot in another
process — any language — announces itself by sending a direct message to
the well-known reserved ID `!bots@<domain>` after each (re)connect:

    kind: notice, body: {"scalar-bot": 1, "prefix": "!", "topics": [...],
                         "commands": [{"name": "ping", "help": "...", "usage": ""}]}

(JSON text). The sender is authenticated, so a manifest cannot speak for
another ID. The bot host listens on `!bots@<domain>` and counts a remote bot
as present while the server has a connection for its ID.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..scalar.events import Event
from .api import BotCommands, CommandInfo

log = logging.getLogger(__name__)

DIRECTORY_NAME = "bots"
MANIFEST_KEY = "scalar-bot"


def directory_id(domain: str) -> str:
    return f"!{DIRECTORY_NAME}@{domain}"


def manifest_body(prefix: str, topics: Iterable[str], commands: Iterable[CommandInfo]) -> str:
    return json.dumps(
        {
            MANIFEST_KEY: 1,
            "prefix": prefix,
            "topics": list(topics),
            "commands": [{"name": c.name, "help": c.help, "usage": c.usage} for c in commands],
        },
        separators=(",", ":"),
    )


def parse_manifest(event: Event) -> BotCommands | None:
    """A manifest event -> the bot's commands, or None if it is not one."""
    if event.kind != "notice" or not event.sender.startswith("!"):
        return None
    try:
        data: Any = json.loads(event.body)
        if not isinstance(data, dict) or data.get(MANIFEST_KEY) != 1:
            return None
        prefix = data.get("prefix", "!")
        topics = tuple(str(t).lower() for t in data.get("topics", []))
        commands = tuple(
            CommandInfo(str(c["name"]), str(c.get("help", "")), str(c.get("usage", "")))
            for c in data.get("commands", [])
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        log.debug("ignored malformed bot manifest from %s", event.sender)
        return None
    if not isinstance(prefix, str):
        return None
    return BotCommands(event.sender, prefix, commands, topics)


class StaticDirectory:
    """A fixed list (an out-of-process bot knows only itself)."""

    def __init__(self, entries: Iterable[BotCommands] = ()) -> None:
        self.entries = list(entries)

    def commands_in(self, topic: str) -> list[BotCommands]:
        return [e for e in self.entries if topic in e.topics or topic == e.bot_id]


class HostDirectory:
    """In-process bots from live callbacks, remote bots from their manifests."""

    def __init__(self, is_online: Callable[[str], bool]) -> None:
        self.is_online = is_online
        self.local: dict[str, Callable[[], BotCommands | None]] = {}
        self.remote: dict[str, BotCommands] = {}

    def add_local(self, bot_id: str, entry: Callable[[], BotCommands | None]) -> None:
        """`entry()` gives the bot's commands while it is present, else None."""
        self.local[bot_id] = entry

    def learn(self, event: Event) -> bool:
        found = parse_manifest(event)
        if found is None or found.bot_id in self.local:
            return False
        self.remote[found.bot_id] = found
        log.info("bot %s announced %d command(s)", found.bot_id, len(found.commands))
        return True

    def commands_in(self, topic: str) -> list[BotCommands]:
        out = []
        for get in self.local.values():
            entry = get()
            if entry is not None and (topic in entry.topics or topic == entry.bot_id):
                out.append(entry)
        for entry in self.remote.values():
            if topic in entry.topics and self.is_online(entry.bot_id):
                out.append(entry)
        return sorted(out, key=lambda e: e.bot_id)
