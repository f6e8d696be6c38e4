"""What an IRC channel said while the bridge was away, from the server's own
channel history (pure; no I/O).

IRC has no replay for a client that was gone: what was said while the
bridge was disconnected (its process restarting, the network split) never
reaches it. Servers that keep channel history send the recent lines to a
client joining the channel, as an IRCv3 `chathistory` batch (InspIRCd's
`chanhistory` module with channel mode `+H`, for one); each line carries its
`msgid` and `time` tags. On every join the adapter hands that batch here:

- **Inbound.** The link's inbound position (the `msgid` and time of the last
  line it relayed, kept in its store) says where to go on: lines after it
  are relayed, in order. Each line is published with a nonce made from its
  `msgid` (§10), so a line relayed just before the process died and then
  again from history is published once. Without a position (the link's
  first join) nothing old is relayed; the batch only sets the position.
- **Outbound.** The bridge's own lines in the batch tell whether the event
  a link was sending when its process died did reach the channel (`went_out`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

POSITION_KEY = "inbound:"
"""kv key prefix (+ the link's origin): where the link's IRC -> Scalar relay stands."""


@dataclass(frozen=True, slots=True)
class Line:
    """One channel message as the server sent it (live or from history)."""

    nick: str
    text: str
    """As on the wire (CTCP ACTION still wrapped), before any formatting is read."""
    msgid: str | None = None
    time_ms: int | None = None
    """The `time` tag (server-time), ms since the epoch."""


@dataclass(frozen=True, slots=True)
class Position:
    """The last line a link relayed (or, before any, where its first join was)."""

    msgid: str | None
    time_ms: int | None

    def encode(self) -> bytes:
        return json.dumps({"msgid": self.msgid, "time": self.time_ms}).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> Position | None:
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            msgid, time_ms = data.get("msgid"), data.get("time")
        except (ValueError, AttributeError):
            return None
        return cls(
            msgid if isinstance(msgid, str) else None,
            time_ms if type(time_ms) is int else None,
        )

    @classmethod
    def of(cls, line: Line) -> Position:
        return cls(line.msgid, line.time_ms)


def server_time(value: str | None) -> int | None:
    """An IRCv3 `time` tag (`2026-12-03T11:47:50.123Z`) as ms since the epoch."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def nonce(line: Line) -> str:
    """The Scalar nonce of a relayed line: the same line, relayed twice, once.

    From the server's `msgid` when there is one; else from the time, nick and
    text (a line without a time tag gets no stable nonce: a fresh one)."""
    if line.msgid:
        key = line.msgid
    elif line.time_ms is not None:
        key = f"{line.time_ms}\0{line.nick}\0{line.text}"
    else:
        return ""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"irc:{digest}"


def to_relay(history: Sequence[Line], position: Position | None) -> list[Line]:
    """The lines of a history batch (oldest first, the bridge's own left out) that
    come after `position`: none without a position (a first join)."""
    if position is None:
        return []
    if position.msgid is not None:
        for i, line in enumerate(history):
            if line.msgid == position.msgid:
                return list(history[i + 1 :])
    if position.time_ms is None:
        return []
    # The position's line is not in the batch: go by time, at the one-second
    # resolution servers store history with (the nonce takes care of overlap).
    since = position.time_ms - position.time_ms % 1000
    return [line for line in history if line.time_ms is not None and line.time_ms >= since]


def went_out(own: Sequence[Line], lines: Sequence[str]) -> bool | None:
    """Whether the bridge's own history lines (`own`) end with the lines an event
    became; None when the server sent no history (nothing to tell by)."""
    if not lines or not own:
        return None
    return own[-1].text == lines[-1]  # what it sent last, it was sending when it died
