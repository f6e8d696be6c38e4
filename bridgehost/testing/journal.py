"""Journals for tests of commit-then-deliver (§10): in memory, and with injected faults.

    journal = FaultyJournal(MemoryJournal())
    hub = Hub(settings, journal, FakeClock())
    journal.hold()            # commits wait: a slow disk
    journal.fail(1)           # the next commit raises: a full disk
    journal.release()

`install(hub)` wraps the journal of a running server's hub the same way, so
integration tests (`bridgehost.testing.running`) can do it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import cbor2

from ..scalar.hub import Hub
from ..scalar.journal import Journal, StoredEvent

__all__ = ["FaultyJournal", "InjectedFault", "MemoryJournal", "install"]


class InjectedFault(OSError):
    """What a `FaultyJournal` raises when told to fail."""


class MemoryJournal:
    """A `Journal` in a few dicts: all or nothing per commit, like the real store."""

    def __init__(self, *, keep: int = 10000) -> None:
        self.keep = keep
        self.events: dict[str, dict[int, StoredEvent]] = {}
        self.topics: dict[str, tuple[int, str | None]] = {}
        self.nonces: dict[tuple[str, str], StoredEvent] = {}
        self.kv: dict[tuple[str, str], bytes] = {}
        self.batches = 0

    async def commit(self, events: Sequence[StoredEvent]) -> None:
        for e in events:
            if self.keep and e.seq in self.events.get(e.topic, {}):
                raise KeyError(f"{e.topic} already has seq {e.seq}")
        for e in events:
            if self.keep:
                self.events.setdefault(e.topic, {})[e.seq] = e
            seq, title = self.topics.get(e.topic, (0, None))
            self.topics[e.topic] = (max(seq, e.seq), e.title if e.title is not None else title)
            if e.nonce:
                self.nonces.setdefault((e.sender, e.nonce), e)
        self.batches += 1

    async def load_topics(self) -> dict[str, tuple[int, str | None]]:
        return dict(self.topics)

    async def ensure_topic(self, topic: str, title: str | None = None) -> None:
        seq, old = self.topics.get(topic, (0, None))
        self.topics[topic] = (seq, title if title is not None else old)

    async def history(
        self,
        topic: str,
        *,
        after: int | None = None,
        before: int | None = None,
        since: int | None = None,
        limit: int = 50,
    ) -> tuple[list[bytes], bool]:
        ordered = [self.events[topic][s] for s in sorted(self.events.get(topic, {}))]
        if after is not None:
            hits, newest_first = [e for e in ordered if e.seq > after], False
        elif since is not None:
            hits, newest_first = [e for e in ordered if e.time >= since], False
        elif before is not None:
            hits, newest_first = [e for e in ordered if e.seq < before], True
        else:
            hits, newest_first = ordered, True
        page = hits[-limit:] if newest_first else hits[:limit]
        return [e.data for e in page], len(hits) > limit

    async def event_by_id(self, topic: str, event_id: bytes) -> bytes | None:
        for e in self.events.get(topic, {}).values():
            if cbor2.loads(e.data)["id"] == event_id:
                return e.data
        return None

    async def event_at(self, topic: str, seq: int) -> bytes | None:
        e = self.events.get(topic, {}).get(seq)
        return None if e is None else e.data

    async def recent_nonces(
        self, since_ms: int, limit: int
    ) -> list[tuple[str, str, str, int, int]]:
        rows = [
            (sender, nonce, e.topic, e.seq, e.time)
            for (sender, nonce), e in self.nonces.items()
            if e.time >= since_ms
        ]
        return sorted(rows, key=lambda r: r[4], reverse=True)[:limit]

    async def kv_get(self, ns: str, key: str) -> bytes | None:
        return self.kv.get((ns, key))

    async def kv_set(self, ns: str, key: str, value: bytes) -> None:
        self.kv[(ns, key)] = value


class FaultyJournal:
    """Wraps a journal: commits may be held (a slow disk) or fail (a full disk)."""

    def __init__(self, inner: Journal) -> None:
        self.inner = inner
        self._open = asyncio.Event()
        self._open.set()
        self._failures = 0
        self.attempts: list[list[StoredEvent]] = []
        """Every batch a commit was tried with, in order."""
        self.held = asyncio.Event()
        """Set while a commit is waiting for `release()`."""

    def hold(self) -> None:
        """Commits from now on wait until `release()`."""
        self._open.clear()

    def release(self) -> None:
        self.held.clear()
        self._open.set()

    def fail(self, times: int = 1) -> None:
        """The next `times` commits raise `InjectedFault` and write nothing."""
        self._failures += times

    async def commit(self, events: Sequence[StoredEvent]) -> None:
        self.attempts.append(list(events))
        if not self._open.is_set():
            self.held.set()
            await self._open.wait()
        if self._failures:
            self._failures -= 1
            raise InjectedFault("injected commit failure")
        await self.inner.commit(events)

    async def load_topics(self) -> dict[str, tuple[int, str | None]]:
        return await self.inner.load_topics()

    async def ensure_topic(self, topic: str, title: str | None = None) -> None:
        await self.inner.ensure_topic(topic, title)

    async def history(
        self,
        topic: str,
        *,
        after: int | None = None,
        before: int | None = None,
        since: int | None = None,
        limit: int = 50,
    ) -> tuple[list[bytes], bool]:
        return await self.inner.history(topic, after=after, before=before, since=since, limit=limit)

    async def event_by_id(self, topic: str, event_id: bytes) -> bytes | None:
        return await self.inner.event_by_id(topic, event_id)

    async def event_at(self, topic: str, seq: int) -> bytes | None:
        return await self.inner.event_at(topic, seq)

    async def recent_nonces(
        self, since_ms: int, limit: int
    ) -> list[tuple[str, str, str, int, int]]:
        return await self.inner.recent_nonces(since_ms, limit)

    async def kv_get(self, ns: str, key: str) -> bytes | None:
        return await self.inner.kv_get(ns, key)

    async def kv_set(self, ns: str, key: str, value: bytes) -> None:
        await self.inner.kv_set(ns, key, value)


def install(hub: Hub) -> FaultyJournal:
    """Put a `FaultyJournal` between a running hub and its store (for the hub's commits;
    everything else keeps reading the store directly)."""
    faulty = FaultyJournal(hub.commits.journal)
    hub.commits.journal = faulty
    return faulty
