"""What the IRC side remembers of a channel's messages, across restarts.

IRC has no edits, reactions or replies of its own, so rendering them needs
the message they point at: who said it and what it says now (an edit of an
edit is diffed against the latest text, a reaction quotes it). IRCv3
`+draft/reply` needs the IRC `msgid` of the message answered, and an
incoming one needs the Scalar event that `msgid` was. All of it is kept in
a `PagedMap` in the adapter's kv: bounded, written behind, loaded at start.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass

from ...scalar.store import KeyValue
from ..pagedmap import PagedMap

TEXT_KEPT = 1000
"""Characters of a message kept; a longer one is edited as `* new text`."""
LAST_LINES = 2000
"""(channel, nick) pairs whose last line is kept for `s/a/b/` corrections."""


@dataclass(frozen=True, slots=True)
class Said:
    """One message of the channel as IRC readers know it."""

    nick: str
    text: str
    msgid: str | None = None
    complete: bool = True
    """False when `text` is only the start of a longer message."""


class Memory:
    def __init__(self, kv: KeyValue, *, capacity: int = 20_000) -> None:
        self.map = PagedMap(kv, "said:", capacity=capacity)
        self._last: collections.OrderedDict[tuple[str, str], bytes] = collections.OrderedDict()

    async def load(self) -> None:
        await self.map.load()

    async def save(self) -> None:
        await self.map.save()

    def said(self, event_id: bytes) -> Said | None:
        raw = self.map.get("e:" + event_id.hex())
        if raw is None:
            return None
        nick, text, msgid, complete = json.loads(raw)
        return Said(nick, text, msgid, complete)

    def remember(self, event_id: bytes, nick: str, text: str, msgid: str | None = None) -> None:
        complete = len(text) <= TEXT_KEPT
        value = json.dumps([nick, text[:TEXT_KEPT], msgid, complete], ensure_ascii=False)
        self.map.put("e:" + event_id.hex(), value)
        if msgid:
            self.map.put("m:" + msgid, event_id.hex())

    def edited(self, event_id: bytes, text: str) -> None:
        """The message now reads `text` (its nick and msgid stay)."""
        old = self.said(event_id)
        if old is not None:
            self.remember(event_id, old.nick, text, old.msgid)

    def set_msgid(self, event_id: bytes, msgid: str) -> None:
        """The IRC msgid our own relayed line got (from echo-message)."""
        old = self.said(event_id)
        if old is not None and old.msgid is None:
            value = json.dumps([old.nick, old.text, msgid, old.complete], ensure_ascii=False)
            self.map.put("e:" + event_id.hex(), value)
        self.map.put("m:" + msgid, event_id.hex())

    def by_msgid(self, msgid: str) -> bytes | None:
        raw = self.map.get("m:" + msgid)
        return bytes.fromhex(raw) if raw else None

    # --- a nick's last line, for s/a/b/ (memory only: a correction comes at once) ----

    def spoke(self, channel: str, nick: str, event_id: bytes) -> None:
        key = (channel, nick)
        self._last[key] = event_id
        self._last.move_to_end(key)
        while len(self._last) > LAST_LINES:
            self._last.popitem(last=False)

    def last_line(self, channel: str, nick: str) -> bytes | None:
        return self._last.get((channel, nick))
