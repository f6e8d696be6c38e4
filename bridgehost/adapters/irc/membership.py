"""Who is in the bridged IRC channels, and netsplits told once (pure).

A QUIT names no channel, so the adapter keeps each joined channel's member
list (NAMES on join, then JOIN/PART/KICK/QUIT/NICK) to know which bridged
channels someone left. When two servers of a network lose each other every
user behind the split quits at once with the two server names as reason;
relayed one by one that is a wall of lines on the other networks. The
`SplitCollector` holds such quits for a few seconds and gives one summary
per channel instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .protocol import fold

_HOST = r"[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)+"
SPLIT_REASON = re.compile(rf"{_HOST} {_HOST}")
"""A netsplit's QUIT reason: the two servers that lost each other (`hub.net leaf.net`)."""
NAME_PREFIXES = "~&@%+!"


class Roster:
    """Members of each channel we are in, by folded nick (display form kept)."""

    def __init__(self) -> None:
        self._members: dict[str, dict[str, str]] = {}
        self._pending: dict[str, dict[str, str]] = {}

    def names(self, channel: str, names: list[str]) -> None:
        """A 353 line: more members of `channel` (prefixes such as `@` stripped)."""
        into = self._pending.setdefault(fold(channel), {})
        for name in names:
            nick = name.lstrip(NAME_PREFIXES)
            if nick:
                into[fold(nick)] = nick

    def end_of_names(self, channel: str) -> None:
        """366: the 353 lines since the last 366 are the whole list."""
        self._members[fold(channel)] = self._pending.pop(fold(channel), {})

    def joined(self, channel: str, nick: str) -> None:
        self._members.setdefault(fold(channel), {})[fold(nick)] = nick

    def parted(self, channel: str, nick: str) -> None:
        self._members.get(fold(channel), {}).pop(fold(nick), None)

    def left_channel(self, channel: str) -> None:
        """We are out of `channel`: its list is unknown until we are back."""
        self._members.pop(fold(channel), None)

    def quit(self, nick: str) -> list[str]:
        """`nick` left the network: the channels (folded) it was in."""
        out = []
        for channel, members in self._members.items():
            if members.pop(fold(nick), None) is not None:
                out.append(channel)
        return out

    def renamed(self, old: str, new: str) -> None:
        for members in self._members.values():
            if members.pop(fold(old), None) is not None:
                members[fold(new)] = new

    def members(self, channel: str) -> list[str]:
        return sorted(self._members.get(fold(channel), {}).values(), key=fold)

    def __contains__(self, item: tuple[str, str]) -> bool:
        channel, nick = item
        return fold(nick) in self._members.get(fold(channel), {})


@dataclass(slots=True)
class Split:
    """Quits of one netsplit in one channel."""

    channel: str
    reason: str
    until: float
    nicks: list[str] = field(default_factory=list)

    def summary(self, limit: int = 64) -> tuple[str, str]:
        """(nick, body) of the one `part` event: `alice, bob and 15 others` / `netsplit a b`."""
        names = self.nicks
        shown = ", ".join(names)
        n = len(names)
        while len(shown) > limit and n > 1:
            n -= 1
            more = len(names) - n
            shown = f"{', '.join(names[:n])} and {more} other{'s' if more > 1 else ''}"
        if len(shown) > limit:
            shown = f"{len(names)} users"
        body = f"netsplit {self.reason}"
        if n < len(names):
            body += f" ({', '.join(names)})"
        return shown, body


class SplitCollector:
    """Holds netsplit quits for `window` seconds after the first; then one summary."""

    def __init__(self, window: float = 3.0, *, max_nicks: int = 5000) -> None:
        self.window = window
        self.max_nicks = max_nicks
        self._splits: dict[tuple[str, str], Split] = {}

    @staticmethod
    def is_split(reason: str) -> bool:
        return SPLIT_REASON.fullmatch(reason.strip()) is not None

    def add(self, channel: str, nick: str, reason: str, now: float) -> None:
        key = (channel, reason.strip())
        split = self._splits.get(key)
        if split is None:
            split = self._splits[key] = Split(channel, reason.strip(), now + self.window)
        if len(split.nicks) < self.max_nicks:
            split.nicks.append(nick)

    def due(self, now: float) -> list[Split]:
        ready = [s for s in self._splits.values() if s.until <= now]
        for split in ready:
            del self._splits[(split.channel, split.reason)]
        return sorted(ready, key=lambda s: s.until)

    def next_due(self) -> float | None:
        return min((s.until for s in self._splits.values()), default=None)
