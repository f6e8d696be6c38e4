"""SQLite persistence (aiosqlite, WAL): history, topics, users/tokens, key-value state.

The store is the hub's `Journal`: `commit()` writes one batch of events in one
transaction, with plain INSERTs so that a (topic, seq) written twice fails
loudly instead of replacing an event someone has seen, and rolls back on any
failure. Batching and delivery order are the hub's (`journal.GroupCommit`).
Reads use a second connection, so a catch-up never waits behind a commit.
Nothing in the database describes the running server (no "clean stop" flag),
so administrative commands may open it beside a running server. The server
opens it as the data dir's owner (`owner=True`): an `flock` on `data_dir/lock`,
held until `close()`, keeps a second server off the same data (§10).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import aiosqlite

from ..runtime import Histogram
from .journal import MAX_BACKLOG, StoredEvent

__all__ = [
    "SCHEMA_VERSION",
    "DataDirInUse",
    "KeyValue",
    "Namespace",
    "Store",
    "StoreError",
    "StoredEvent",
    "ensure_private_dir",
]

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

SCHEMA_VERSION = 1
"""`PRAGMA user_version` of a database this code wrote. 0 is every database made
before versions existed (they all have the tables above, or some of them)."""

UNCLEAN_SKIP = MAX_BACKLOG + 1
"""Before version 1, events were fanned out before their commit, at most 10000 of
them, and a `meta.clean = '0'` row said the last run had not stopped cleanly. A
database left so is migrated by moving every topic's seq past what subscribers
may have seen, once."""

MIGRATIONS: dict[int, str] = {
    0: f"""
        UPDATE topics SET seq = seq + {UNCLEAN_SKIP}
            WHERE (SELECT value FROM meta WHERE key = 'clean') = '0';
        DELETE FROM meta WHERE key = 'clean';
    """,
}
"""Per version, the SQL that brings a database of that version to the next one."""

STORED_ID = "substr(data, 7, 32)"
"""Where the event id sits in a stored event: `data` is canonical CBOR, a map of
fewer than 24 pairs (1 header byte) whose first key is `"id"` (3 bytes) holding
32 bytes (2 header bytes). `events_id` indexes this expression, so looking an
event up by id needs no column of its own and no migration of older databases."""

NONCE_TTL_MS = 15 * 60 * 1000
"""How long a (sender, nonce) is kept on disk; §10 asks for at least 10 minutes."""


LOCK_FILE = "lock"
"""In the data dir: locked (flock) by the server that owns the dir, holding its PID."""


class StoreError(OSError):
    """The data cannot be used by this process: it belongs to another server, or was
    written by a newer version. (An OSError, so `bridgehost run` reports it as a failed
    start and exits 1.)"""


class DataDirInUse(StoreError):
    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"{data_dir} is in use by {who} (another bridgehost server)")
        self.pid = pid


class OwnerLock:
    """An exclusive `flock` on the data dir's lock file, with the holder's PID in it.

    The kernel drops the lock when the process ends however it ends, so a stale
    file left by a crash never keeps the next server out.
    """

    def __init__(self, data_dir: Path) -> None:
        path = data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise DataDirInUse(data_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _holder(fd: int) -> int | None:
    """The PID the lock holder wrote (it may still be writing it: try a few times)."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None


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
        self._nonces_since_prune = 0
        self._lock = asyncio.Lock()
        self._since_trim: dict[str, int] = {}
        self.batches = 0
        self.commit_latency = Histogram()
        """Seconds per `commit()` (one batch), read by the web side's /metrics."""
        self._owner: OwnerLock | None = None
        self._commits: ThreadPoolExecutor | None = None
        """The one thread events are committed on (with `_events_db`)."""
        self._events_db: sqlite3.Connection | None = None

    # --- lifecycle -----------------------------------------------------------

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        keep: int = 10000,
        synchronous: str = "NORMAL",
        owner: bool = False,
    ) -> Store:
        """Open the data dir's database. `owner=True` is for the server: it takes the
        data dir's lock (or raises DataDirInUse naming the holder) and keeps it until
        `close()`. Administrative commands open without it, beside a running server."""
        ensure_private_dir(data_dir)
        store = cls(data_dir / "bridgehost.sqlite3", keep=keep, synchronous=synchronous)
        if owner:
            store._owner = OwnerLock(data_dir)
        try:
            await store._open()
        except BaseException:
            store._release()
            raise
        return store

    def _release(self) -> None:
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    async def _open(self) -> None:
        self._w = await self._connect()
        try:
            await self._migrate(self._w)
        except BaseException:
            await self._w.close()
            raise
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)
        self._r = await self._connect()
        self._commits = ThreadPoolExecutor(1, thread_name_prefix="store-commit")
        loop = asyncio.get_running_loop()
        self._events_db = await loop.run_in_executor(self._commits, self._connect_events)

    def _connect_events(self) -> sqlite3.Connection:
        """The commit thread's connection (autocommit mode: transactions are explicit)."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._sync}")
        db.execute("PRAGMA busy_timeout=10000")
        return db

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level="DEFERRED")
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={self._sync}")
        await db.execute("PRAGMA busy_timeout=10000")
        return db

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        """Bring the database to SCHEMA_VERSION, each step in one transaction."""
        while True:
            (version,) = await (await db.execute("PRAGMA user_version")).fetchone() or (0,)
            if version == SCHEMA_VERSION:
                await db.executescript(SCHEMA)  # tables and indexes added since, if any
                return
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: database schema version {version} was written by a newer "
                    f"bridgehost (this one knows up to {SCHEMA_VERSION})"
                )
            if version == 0:
                await db.executescript(SCHEMA)
                row = await (
                    await db.execute("SELECT value FROM meta WHERE key = 'clean'")
                ).fetchone()
                if row is not None and row[0] == "0":
                    log.warning(
                        "%s: the last run of an older bridgehost did not stop cleanly: "
                        "every topic's seq moves on by %d",
                        self.path,
                        UNCLEAN_SKIP,
                    )
            await db.executescript(
                f"BEGIN IMMEDIATE; {MIGRATIONS[version]} PRAGMA user_version = {version + 1}; "
                "COMMIT;"
            )
            log.info("%s: database schema %d -> %d", self.path, version, version + 1)

    async def close(self) -> None:
        """Close both connections (after a commit that is running, if any), then let go
        of the data dir."""
        if self._w is None:
            return
        async with self._lock:
            w, r, self._w, self._r = self._w, self._r, None, None
            commits, events_db, self._commits, self._events_db = (
                self._commits,
                self._events_db,
                None,
                None,
            )
            try:
                if commits is not None:
                    if events_db is not None:
                        loop = asyncio.get_running_loop()
                        await loop.run_in_executor(commits, events_db.close)
                    commits.shutdown(wait=True)
                if r is not None:
                    await r.close()
                await w.close()
            finally:
                self._release()

    # --- events ----------------------------------------------------------------

    async def commit(self, events: Sequence[StoredEvent]) -> None:
        """Write one batch in one transaction (the `Journal` contract): events (when
        history is kept), each topic's last seq and new title, nonces. On any failure
        nothing of it stays, and the error is raised.

        The batch goes to the commit thread in one hop, with its own connection, so a
        commit costs one round trip off the event loop, not one per statement."""
        if self._commits is None or self._events_db is None:
            raise StoreError("the store is closed")
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._commits, self._commit_in_thread, self._events_db, events)
        self.batches += 1
        self.commit_latency.observe(time.monotonic() - started)

    def _commit_in_thread(self, db: sqlite3.Connection, events: Sequence[StoredEvent]) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            self._write(db, events)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _write(self, db: sqlite3.Connection, events: Sequence[StoredEvent]) -> None:
        if self.keep > 0:
            db.executemany(
                "INSERT INTO events(topic, seq, time, data) VALUES(?, ?, ?, ?)",
                [(e.topic, e.seq, e.time, e.data) for e in events],
            )
        seqs: dict[str, int] = {}
        titles: dict[str, str] = {}
        for e in events:
            seqs[e.topic] = max(e.seq, seqs.get(e.topic, 0))
            if e.title is not None:
                titles[e.topic] = e.title
        db.executemany(
            "INSERT INTO topics(topic, seq) VALUES(?, ?) "
            "ON CONFLICT(topic) DO UPDATE SET seq = max(seq, excluded.seq)",
            list(seqs.items()),
        )
        if titles:
            db.executemany(
                "UPDATE topics SET title = ? WHERE topic = ?",
                [(title, topic) for topic, title in titles.items()],
            )
        self._remember_nonces(db, events)
        for e in events:
            self._since_trim[e.topic] = self._since_trim.get(e.topic, 0) + 1
        slack = max(self.keep // 10, 100)
        for topic in [t for t, n in self._since_trim.items() if n >= slack]:
            del self._since_trim[topic]  # (a failed commit only makes a trim come early)
            db.execute(
                "DELETE FROM events WHERE topic = ? AND seq <= (SELECT seq FROM events "
                "WHERE topic = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (topic, topic, self.keep),
            )

    def _remember_nonces(self, db: sqlite3.Connection, events: Sequence[StoredEvent]) -> None:
        rows = [(e.sender, e.nonce, e.time, e.topic, e.seq) for e in events if e.nonce]
        if not rows:
            return
        db.executemany(
            "INSERT OR IGNORE INTO nonces(sender, nonce, time, topic, seq) VALUES(?, ?, ?, ?, ?)",
            rows,
        )
        self._nonces_since_prune += len(rows)
        if self._nonces_since_prune >= 1000:
            self._nonces_since_prune = 0
            newest = max(r[2] for r in rows)
            db.execute("DELETE FROM nonces WHERE time < ?", (newest - NONCE_TTL_MS,))

    # --- topics --------------------------------------------------------------

    async def load_topics(self) -> dict[str, tuple[int, str | None]]:
        """Every known topic -> (last committed seq, title)."""
        assert self._r is not None
        rows = await (await self._r.execute("SELECT topic, seq, title FROM topics")).fetchall()
        return {t: (s, title) for t, s, title in rows}

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
        assert self._r is not None
        cur = await self._r.execute(
            "SELECT data FROM events WHERE topic = ? AND seq > ? AND instr(data, ?) > 0 "
            "ORDER BY seq",
            (topic, after, event_id),
        )
        return [bytes(r[0]) for r in await cur.fetchall()]

    async def event_at(self, topic: str, seq: int) -> bytes | None:
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
