"""Scalar event id <-> Matrix event id, kept in the adapter's key-value store.

Replies, edits, redactions and reactions name the event they act on; across
the bridge that is the other side's id. Every bridged message is remembered
both ways: Matrix event id -> (Scalar id, the sender's name and user ID, for
edits and redactions relayed later), and (Scalar id, room) -> Matrix event
id (a Scalar event may be sent to several rooms; several Scalar lines merged
into one Matrix message all map to it, marked, since it cannot be edited to
mean one of them).

The map lives in a `PagedMap` (memory, written behind a page at a time,
bounded to the latest `capacity` entries) so that remembering costs no
database commit on the relay path. Entries an older version wrote one key
each (`m2s:`, `s2m:`) are still found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...scalar.store import KeyValue
from ..pagedmap import PagedMap

CAPACITY = 40_000
"""Entries kept (two per message): the latest 20,000 bridged messages."""


@dataclass(frozen=True, slots=True)
class Bridged:
    """What we know of a Matrix event that crossed the bridge."""

    scalar_id: bytes
    nick: str = ""
    sender: str = ""


@dataclass(frozen=True, slots=True)
class Sent:
    """The Matrix event a Scalar event became in one room."""

    event_id: str
    merged: bool = False
    """Part of a message that carries several Scalar lines (not editable alone)."""


class EventMap:
    def __init__(self, kv: KeyValue, *, capacity: int = CAPACITY) -> None:
        self.kv = kv
        self.map = PagedMap(kv, "evmap:", capacity=capacity)

    async def load(self) -> None:
        await self.map.load()

    async def save(self) -> None:
        await self.map.save()

    def remember(
        self,
        room_id: str,
        event_id: str,
        scalar_id: bytes,
        *,
        nick: str = "",
        sender: str = "",
        merged: bool = False,
    ) -> None:
        """Record that `event_id` in `room_id` and Scalar `scalar_id` are one message."""
        self.map.put("m:" + event_id, json.dumps([scalar_id.hex(), nick, sender]))
        self.map.put(f"s:{scalar_id.hex()}:{room_id}", ("+" if merged else "") + event_id)

    async def bridged(self, event_id: str) -> Bridged | None:
        raw = self.map.get("m:" + event_id)
        if raw is not None:
            hexid, nick, sender = json.loads(raw)
            return Bridged(bytes.fromhex(hexid), nick, sender)
        legacy = await self.kv.get("m2s:" + event_id)
        return Bridged(legacy) if legacy is not None else None

    async def scalar_id(self, event_id: str) -> bytes | None:
        found = await self.bridged(event_id)
        return found.scalar_id if found is not None else None

    async def sent(self, room_id: str, scalar_id: bytes) -> Sent | None:
        raw = self.map.get(f"s:{scalar_id.hex()}:{room_id}")
        if raw is None:
            legacy = await self.kv.get(f"s2m:{scalar_id.hex()}:{room_id}")
            raw = legacy.decode() if legacy is not None else None
        if raw is None:
            return None
        return Sent(raw.removeprefix("+"), merged=raw.startswith("+"))

    async def event_id(self, room_id: str, scalar_id: bytes) -> str | None:
        found = await self.sent(room_id, scalar_id)
        return found.event_id if found is not None else None
