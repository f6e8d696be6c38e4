"""What an IRC connection reports to its owner: the `Listener` interface the
adapter implements, and the registration failure it raises."""

from __future__ import annotations

from typing import Protocol

from .history import Line
from .protocol import LineKind
from .tags import Tags


class RegistrationFailed(Exception):
    """The server would not let us in; `auth` marks credential problems,
    which retrying soon cannot fix."""

    def __init__(self, reason: str, *, auth: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.auth = reason, auth


class Listener(Protocol):
    """What the adapter hears from a connection (called in the event loop)."""

    def on_message(
        self,
        channel: str,
        nick: str,
        text: str,
        kind: LineKind,
        *,
        line: Line | None = None,
        tags: Tags | None = None,
    ) -> None: ...

    def on_history(self, channel: str, nick: str, text: str, kind: LineKind, line: Line) -> None:
        """A line of the channel's history sent on join (`nick` may be ours)."""

    def on_history_end(self, channel: str) -> None: ...

    def on_echo(self, channel: str, text: str, tags: Tags) -> None:
        """Our own PRIVMSG/NOTICE as the server relayed it (echo-message)."""

    def on_topic(self, channel: str, nick: str | None, text: str) -> None:
        """A TOPIC change (`nick` None: the topic as it was when we joined, 332)."""

    def on_member(self, channel: str, nick: str, change: str, reason: str) -> None:
        """Someone else `join`ed or `part`ed (a PART or a KICK) a channel."""

    def on_quit(self, nick: str, reason: str) -> None: ...

    def on_nick(self, old: str, new: str) -> None: ...

    def on_names(self, channel: str, names: list[str], end: bool) -> None:
        """A NAMES reply (353 lines, then `end` with 366)."""

    def on_joined(self, channel: str) -> None: ...

    def on_join_error(self, channel: str, reason: str) -> None: ...

    def on_removed(self, channel: str, reason: str) -> None: ...

    def on_refused(self, channel: str, reason: str) -> None: ...
