"""SQLite persistence (aiosqlite, WAL): history, topics, users/tokens, key-value state.

Events are written by one writer task with group commit: everything appended
while a transaction is running goes into the next one, so a busy server pays
one commit per batch, not per event. `append()` returns the batch's future;
the server echoes a `msg` to its sender only once that future is done, so an
acknowledged event is on disk. Reads use a second connection, so a catch-up
never waits behind a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosqlite

from ..runtime import Histogram

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS topics(
    topic TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0, title TEXT);
CREATE TABLE IF NOT EXISTS events(
    topic TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY(topic, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_time ON events(topic, time);
CREATE INDEX IF NOT EXISTS events_id ON events(substr(data, 7, 32));
CREATE TABLE IF NOT EXISTS nonces(
    sender TEXT NOT NULL, nonce TEXT NOT NULL, time INTEGER NOT NULL,
    topic TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(sender, nonce)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_time ON nonces(time);
CREATE TABLE IF NOT EXISTS credentials(
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, hash TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv(
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY(ns, key)) WITHOUT ROWID;
"""

STORED_ID = "substr(data, 7, 32)"
"""Where the event id sits in a stored event: `data` is canonical CBOR, a map of
fewer than 24 pairs (1 header byte) whose first key is `"id"` (3 bytes) holding
32 bytes (2 header bytes). `events_id` indexes this expression, so looking an
event up by id needs no column of its own and no migration of older databases."""

NONCE_TTL_MS = 15 * 60 * 1000
"""How long a (sender, nonce) is kept on disk; §10 asks for at least 10 minutes."""

MAX_UNCOMMITTED = 10000
"""Events fanned out but not yet committed, at most; after an unclean stop every
topic's seq skips this many so a seq a subscriber saw is never reused."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    topic: str
    seq: int
    time: int
    data: bytes
    """The event map, encoded once (CBOR, with `id`)."""
    sender: str = ""
    nonce: str | None = None
    """The publisher's `msg.nonce`: kept with the event so a re-sent `msg` finds it
    again after a restart (§10)."""
    title: str | None = None
    """A `topic` event's new channel title, written with the event."""


def ensure_private_dir(path: Path) -> Path:
    """Create `path` as a 0700 directory (tightening it if it exists)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class Store:
    def __init__(self, path: Path, *, keep: int = 10000, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.keep = keep
        self._sync = synchronous
        self._w: aiosqlite.Connection | None = None
        self._r: aiosqlite.Connection | None = None
        self._pending: list[StoredEvent] = []
        self._pending_topics: dict[str, int] = {}
        self._pending_titles: dict[str, str] = {}
        self._nonces_since_prune = 0
        self._batch: asyncio.Future[None] | None = None
        self._committing: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._writer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._since_trim: dict[str, int] = {}
        self._queued = 0
        self._inflight = 0
        self.was_clean = True
        self.batches = 0
        self.commit_latency = Histogram()
        """Seconds from a batch's start (lock wait included) to its commit (/metrics)."""

    # --- lifecycle -----------------------------------------------------------

    @classmethod
    async def open(cls, data_dir: Path, *, keep: int = 10000, synchronous: str = "NORMAL") -> Store:
        ensure_private_dir(data_dir)
        store = cls(data_dir / "bridgehost.sqlite3", keep=keep, synchronous=synchronous)
        await store._open()
        return store

    async def _open(self) -> None:
        self._w = await self._connect()
        await self._w.executescript(SCHEMA)
        row = await (await self._w.execute("SELECT value FROM meta WHERE key='clean'")).fetchone()
        self.was_clean = row is None or row[0] == "1"
        await self._w.execute("INSERT OR REPLACE INTO meta VALUES('clean', '0')")
        await self._w.commit()
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)
        self._r = await self._connect()
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(), name="store-writer"
        )

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level="DEFERRED")
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={self._sync}")
        await db.execute("PRAGMA busy_timeout=10000")
        return db

    async def close(self) -> None:
        """Commit what is pending, mark a clean stop, close both connections."""
        if self._writer is None:
            return
        await self.flush()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None
        assert self._w is not None and self._r is not None
        await self._w.execute("INSERT OR REPLACE INTO meta VALUES('clean', '1')")
        await self._w.commit()
        await self._r.close()
        await self._w.close()

    # --- events: group commit ------------------------------------------------

    @property
    def uncommitted(self) -> int:
        """Events appended and not yet committed (queued plus the running batch)."""
        return self._queued + self._inflight

    def append(self, event: StoredEvent | None, topic: str, seq: int) -> asyncio.Future[None]:
        """Queue one event (or only a topic's new seq) for the next commit."""
        if self._batch is None or self._batch.done():
            self._batch = asyncio.get_running_loop().create_future()
        if event is not None and self.keep > 0:
            self._pending.append(event)
        if event is not None and event.title is not None:
            self._pending_titles[topic] = event.title
        self._pending_topics[topic] = max(seq, self._pending_topics.get(topic, 0))
        self._queued += 1
        if self.uncommitted >= MAX_UNCOMMITTED:
            self._room.clear()
        self._wake.set()
        return self._batch

    async def flush(self) -> None:
        """Wait until everything appended so far is committed (the batch being
        committed now too: its events may already be delivered)."""
        for batch in (self._committing, self._batch):
            if batch is not None and not batch.done():
                await asyncio.shield(batch)

    async def wait_backlog(self) -> None:
        """Back-pressure for publishers: wait while the uncommitted backlog is too big."""
        while self.uncommitted >= MAX_UNCOMMITTED:
            await self._room.wait()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            # Let this iteration's fan-out flush run before the commit starts: the
            # aiosqlite thread would otherwise compete for the GIL with the writes to
            # subscribers (up to a 5 ms switch interval of added latency).
            await asyncio.sleep(0)
            self._wake.clear()
            batch, self._batch = self._batch, None
            self._committing = batch
            events, self._pending = self._pending, []
            topics, self._pending_topics = self._pending_topics, {}
            titles, self._pending_titles = self._pending_titles, {}
            count = self._queued
            self._queued = 0
            self._inflight = count
            if batch is None:
                continue
            started = time.monotonic()
            try:
                async with self._lock:
                    await self._commit(events, topics, titles)
                self.commit_latency.observe(time.monotonic() - started)
            except Exception as exc:
                log.exception("history commit failed for %d events", count)
                if not batch.done():
                    batch.set_exception(exc)
                    batch.exception()  # consumed by the callbacks; don't warn twice
            else:
                if not batch.done():
                    batch.set_result(None)
            finally:
                self._inflight = 0
            if self.uncommitted < MAX_UNCOMMITTED:
                self._room.set()

    async def _commit(
        self,
        events: list[StoredEvent],
        topics: dict[str, int],
        titles: dict[str, str] | None = None,
    ) -> None:
        db = self._w
        assert db is not None
        if events:
            await db.executemany(
                "INSERT OR REPLACE INTO events(topic, seq, time, data) VALUES(?, ?, ?, ?)",
                [(e.topic, e.seq, e.time, e.data) for e in events],
            )
        await db.executemany(
            "INSERT INTO topics(topic, seq) VALUES(?, ?) "
            "ON CONFLICT(topic) DO UPDATE SET seq = max(seq, excluded.seq)",
            list(topics.items()),
        )
        if titles:
            await db.executemany(
                "UPDATE topics SET title = ? WHERE topic = ?",
                [(title, topic) for topic, title in titles.items()],
            )
        await self._remember_nonces(db, events)
        for e in events:
            self._since_trim[e.topic] = self._since_trim.get(e.topic, 0) + 1
        slack = max(self.keep // 10, 100)
        for topic in [t for t, n in self._since_trim.items() if n >= slack]:
            del self._since_trim[topic]
            await db.execute(
                "DELETE FROM events WHERE topic = ? AND seq <= (SELECT seq FROM events "
                "WHERE topic = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (topic, topic, self.keep),
            )
        await db.commit()
        self.batches += 1

    async def _remember_nonces(self, db: aiosqlite.Connection, events: list[StoredEvent]) -> None:
        rows = [(e.sender, e.nonce, e.time, e.topic, e.seq) for e in events if e.nonce]
        if not rows:
            return
        await db.executemany(
            "INSERT OR IGNORE INTO nonces(sender, nonce, time, topic, seq) VALUES(?, ?, ?, ?, ?)",
            rows,
        )
        self._nonces_since_prune += len(rows)
        if self._nonces_since_prune >= 1000:
            self._nonces_since_prune = 0
            newest = max(r[2] for r in rows)
            await db.execute("DELETE FROM nonces WHERE time < ?", (newest - NONCE_TTL_MS,))

    # --- topics --------------------------------------------------------------

    async def load_topics(self) -> dict[str, tuple[int, str | None]]:
        """Every known topic -> (last seq, title); applies the unclean-stop seq skip."""
        assert self._r is not None
        skip = 0 if self.was_clean else MAX_UNCOMMITTED + 1
        if skip:
            log.warning("previous run did not stop cleanly: topic seqs skip %d", skip)
        rows = await (await self._r.execute("SELECT topic, seq, title FROM topics")).fetchall()
        return {t: (s + skip if s else s, title) for t, s, title in rows}

    async def ensure_topic(self, topic: str, title: str | None = None) -> None:
        async with self._lock:
            db = self._w
            assert db is not None
            await db.execute(
                "INSERT INTO topics(topic, seq, title) VALUES(?, 0, ?) ON CONFLICT(topic) "
                "DO UPDATE SET title = coalesce(excluded.title, title)",
                (topic, title),
            )
            await db.commit()

    # --- history reads -------------------------------------------------------

    async def history(
        self,
        topic: str,
        *,
        after: int | None = None,
        before: int | None = None,
        since: int | None = None,
        limit: int = 50,
    ) -> tuple[list[bytes], bool]:
        """Up to `limit` events nearest the cursor, oldest first, and whether more remain
        beyond them (away from the cursor)."""
        await self.flush()
        assert self._r is not None
        args: tuple[int, ...]
        if after is not None:
            sql, args, ascending = "seq > ? ORDER BY seq ASC", (after,), True
        elif since is not None:
            sql, args, ascending = "time >= ? ORDER BY seq ASC", (since,), True
        elif before is not None:
            sql, args, ascending = "seq < ? ORDER BY seq DESC", (before,), False
        else:
            sql, args, ascending = "1 ORDER BY seq DESC", (), False
        cur = await self._r.execute(
            f"SELECT data FROM events WHERE topic = ? AND {sql} LIMIT ?",
            (topic, *args, limit + 1),
        )
        rows = [r[0] for r in await cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        if not ascending:
            rows.reverse()
        return rows, more

    async def event_by_id(self, topic: str, event_id: bytes) -> bytes | None:
        """The stored event with this id in this topic (canonical CBOR), if kept."""
        await self.flush()
        assert self._r is not None
        cur = await self._r.execute(
            f"SELECT data FROM events WHERE {STORED_ID} = ? AND topic = ?", (event_id, topic)
        )
        row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def events_naming(self, topic: str, event_id: bytes, after: int) -> list[bytes]:
        """Stored events of `topic` after seq `after` whose encoding contains `event_id`
        (edits, deletions, reactions, replies of it), oldest first; the caller decodes
        and checks them. A scan of the topic's kept history past `after`."""
        await self.flush()
        assert self._r is not None
        cur = await self._r.execute(
            "SELECT data FROM events WHERE topic = ? AND seq > ? AND instr(data, ?) > 0 "
            "ORDER BY seq",
            (topic, after, event_id),
        )
        return [bytes(r[0]) for r in await cur.fetchall()]

    async def event_at(self, topic: str, seq: int) -> bytes | None:
        await self.flush()
        assert self._r is not None
        cur = await self._r.execute(
            "SELECT data FROM events WHERE topic = ? AND seq = ?", (topic, seq)
        )
        row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def recent_nonces(
        self, since_ms: int, limit: int
    ) -> list[tuple[str, str, str, int, int]]:
        """(sender, nonce, topic, seq, time) of publishes since `since_ms`, newest first."""
        assert self._r is not None
        cur = await self._r.execute(
            "SELECT sender, nonce, topic, seq, time FROM nonces WHERE time >= ? "
            "ORDER BY time DESC LIMIT ?",
            (since_ms, limit),
        )
        return [(a, b, c, d, e) for a, b, c, d, e in await cur.fetchall()]

    # --- credentials ---------------------------------------------------------

    async def set_credential(self, ident: str, kind: str, hashed: str, now_ms: int) -> None:
        async with self._lock:
            assert self._w is not None
            await self._w.execute(
                "INSERT OR REPLACE INTO credentials(id, kind, hash, created) VALUES(?, ?, ?, ?)",
                (ident, kind, hashed, now_ms),
            )
            await self._w.commit()

    async def credential(self, ident: str) -> tuple[str, str] | None:
        """(kind, hash) for an ID, read fresh so users added by the CLI work at once."""
        assert self._r is not None
        cur = await self._r.execute("SELECT kind, hash FROM credentials WHERE id = ?", (ident,))
        row = await cur.fetchone()
        return None if row is None else (row[0], row[1])

    async def delete_credential(self, ident: str) -> bool:
        async with self._lock:
            assert self._w is not None
            cur = await self._w.execute("DELETE FROM credentials WHERE id = ?", (ident,))
            await self._w.commit()
            return bool(cur.rowcount)

    # --- key-value state for adapters and bots ---------------------------------

    async def kv_get(self, ns: str, key: str) -> bytes | None:
        assert self._r is not None
        cur = await self._r.execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key))
        row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def kv_set(self, ns: str, key: str, value: bytes) -> None:
        await self.kv_set_many(ns, [(key, value)])

    async def kv_set_many(self, ns: str, items: Iterable[tuple[str, bytes]]) -> None:
        async with self._lock:
            assert self._w is not None
            await self._w.executemany(
                "INSERT OR REPLACE INTO kv(ns, key, value) VALUES(?, ?, ?)",
                [(ns, k, v) for k, v in items],
            )
            await self._w.commit()

    async def kv_delete(self, ns: str, key: str) -> None:
        async with self._lock:
            assert self._w is not None
            await self._w.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))
            await self._w.commit()

    async def kv_items(self, ns: str, prefix: str = "") -> list[tuple[str, bytes]]:
        assert self._r is not None
        cur = await self._r.execute(
            "SELECT key, value FROM kv WHERE ns = ? AND substr(key, 1, ?) = ? ORDER BY key",
            (ns, len(prefix), prefix),
        )
        return [(k, bytes(v)) for k, v in await cur.fetchall()]

    def namespace(self, ns: str) -> Namespace:
        return Namespace(self, ns)


class KeyValue(Protocol):
    """Small persistent state of one adapter or bot, bytes-valued."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def items(self, prefix: str = "") -> list[tuple[str, bytes]]: ...


class Namespace:
    """One namespace of the store's key-value table: a `KeyValue`."""

    def __init__(self, store: Store, ns: str) -> None:
        self.store, self.ns = store, ns

    async def get(self, key: str) -> bytes | None:
        return await self.store.kv_get(self.ns, key)

    async def set(self, key: str, value: bytes) -> None:
        await self.store.kv_set(self.ns, key, value)

    async def delete(self, key: str) -> None:
        await self.store.kv_delete(self.ns, key)

    async def items(self, prefix: str = "") -> list[tuple[str, bytes]]:
        return await self.store.kv_items(self.ns, prefix)
