"""Scalar event id <-> Matrix event id, kept in the adapter's key-value store.

Replies, edits and redactions name the event they refer to; across the bridge
that is the other side's id. Every bridged message is remembered both ways:
`m2s:<event id>` -> Scalar id, and `s2m:<Scalar id hex>:<room id>` -> event
id (a Scalar event may be sent to several rooms). The map is a ring of
`capacity` entries: the oldest mapping is forgotten when a new one needs its
slot, so the store does not grow forever; replies to very old messages then
simply carry no reference.
"""

from __future__ import annotations

import collections

from ...scalar.store import KeyValue

NEXT_KEY = "map:next"
SAVE_EVERY = 100


class EventMap:
    def __init__(self, kv: KeyValue, *, capacity: int = 100_000, cache: int = 5000) -> None:
        self.kv = kv
        self.capacity = capacity
        self._cache: collections.OrderedDict[str, str | bytes] = collections.OrderedDict()
        self._cache_size = cache
        self._next: int | None = None

    def _cached(self, key: str, value: str | bytes) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    @staticmethod
    def _s2m(scalar_id: bytes, room_id: str) -> str:
        return f"s2m:{scalar_id.hex()}:{room_id}"

    async def remember(self, room_id: str, event_id: str, scalar_id: bytes) -> None:
        """Record that `event_id` in `room_id` and Scalar `scalar_id` are one message."""
        m2s, s2m = f"m2s:{event_id}", self._s2m(scalar_id, room_id)
        self._cached(m2s, scalar_id)
        self._cached(s2m, event_id)
        if self._next is None:
            saved = await self.kv.get(NEXT_KEY)
            self._next = int(saved) if saved else 0
        n, self._next = self._next, self._next + 1
        slot = f"ring:{n % self.capacity:08d}"
        old = await self.kv.get(slot)
        if old:
            old_m2s, _, old_s2m = old.decode().partition("\n")
            for key in (old_m2s, old_s2m):
                if key not in (m2s, s2m):
                    await self.kv.delete(key)
                    self._cache.pop(key, None)
        await self.kv.set(m2s, scalar_id)
        await self.kv.set(s2m, event_id.encode())
        await self.kv.set(slot, f"{m2s}\n{s2m}".encode())
        if n % SAVE_EVERY == 0:
            await self.kv.set(NEXT_KEY, str(n + SAVE_EVERY).encode())

    async def scalar_id(self, event_id: str) -> bytes | None:
        key = f"m2s:{event_id}"
        hit = self._cache.get(key)
        if isinstance(hit, bytes):
            return hit
        value = await self.kv.get(key)
        if value is not None:
            self._cached(key, value)
        return value

    async def event_id(self, room_id: str, scalar_id: bytes) -> str | None:
        key = self._s2m(scalar_id, room_id)
        hit = self._cache.get(key)
        if isinstance(hit, str):
            return hit
        value = await self.kv.get(key)
        if value is None:
            return None
        event_id = value.decode()
        self._cached(key, event_id)
        return event_id
