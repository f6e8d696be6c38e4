"""Where the Matrix sync stands, and what a crash may have left half-done.

The checkpoint (adapter kv `sync`) holds the `/sync` token after which
nothing has been relayed yet, plus, per channel, the seq of the last event
the adapter published there. It is written only after a whole batch is
published, so a crash makes the next start read that batch again. The
events of it that did reach the hub are exactly the channel's events from
this link's `origin` after the recorded seq, in order: they are skipped once
(`take`) instead of being published a second time.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Awaitable, Callable, Iterable

from ...scalar.client import Client
from ...scalar.errors import ScalarError
from ...scalar.events import Event
from ...scalar.store import KeyValue

log = logging.getLogger(__name__)

KEY = "sync"


class Checkpoint:
    def __init__(self, kv: KeyValue, connect: Callable[[], Awaitable[Client]]) -> None:
        self.kv = kv
        self.connect = connect
        self.since: str | None = None
        self.seqs: dict[str, int] = {}
        self._pending: dict[str, collections.deque[Event]] = {}

    async def load(self) -> bool:
        """Read the saved checkpoint; False on a first start (there is none)."""
        raw = await self.kv.get(KEY)
        if raw is None:
            self.since = None
            return False
        data = json.loads(raw)
        self.since = str(data["since"])
        self.seqs = {str(k): int(v) for k, v in data.get("seqs", {}).items()}
        return True

    async def save(self, next_batch: str) -> None:
        self.since = next_batch
        data = {"since": next_batch, "seqs": self.seqs}
        await self.kv.set(KEY, json.dumps(data).encode())

    def published(self, event: Event) -> None:
        self.seqs[event.topic] = max(self.seqs.get(event.topic, 0), event.seq)

    async def mark_heads(self, channels: Iterable[str]) -> None:
        """First start: record each channel's current last seq."""
        scalar = await self.connect()
        try:
            for channel in channels:
                try:
                    page = await scalar.catchup(channel, limit=1)
                except ScalarError:
                    self.seqs[channel] = 0
                else:
                    self.seqs[channel] = page.events[-1].seq if page.events else 0
        finally:
            await scalar.close()

    async def find_unsaved(self, links: Iterable[tuple[str, str]]) -> int:
        """Find what `(channel, origin)` links published after the checkpoint; how many."""
        self._pending.clear()
        total = 0
        scalar = await self.connect()
        try:
            for channel, origin in links:
                found: collections.deque[Event] = collections.deque()
                async for event in scalar.history_after(channel, self.seqs.get(channel, 0)):
                    if event.origin == origin:
                        found.append(event)
                if found:
                    self._pending[origin] = found
                    self.published(found[-1])
                    total += len(found)
        finally:
            await scalar.close()
        return total

    def take(self, origin: str, body: str) -> Event | None:
        """The already-published event this one would duplicate, if any (used once)."""
        pending = self._pending.get(origin)
        if not pending or pending[0].body != body:
            return None
        return pending.popleft()

    def forget_unsaved(self) -> None:
        """After the first batch: whatever was not matched is not ours to skip."""
        for origin, left in self._pending.items():
            if left:
                log.warning(
                    "%d event(s) of %s published before a crash were not matched", len(left), origin
                )
        self._pending.clear()
