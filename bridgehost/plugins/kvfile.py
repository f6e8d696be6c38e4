"""A child adapter's key-value store: its own SQLite file in the data dir.

Why not the server's store: the data dir's database belongs to the server
process (it holds the lock, runs the one writer with group commit and the
schema); a child writing it too would be a second writer contending for it.
Why not behind the protocol: values such as a page of remembered message
ids outgrow one 16 KiB frame, and every write would wait on the parent.
So a child keeps `data_dir/plugins/<account>/state.sqlite3`, locked by
the one process that uses it. Writes commit at once in the child (WAL,
synchronous=NORMAL: a commit survives the process being killed; only a
machine crash can take the last ones), so a delivery position written
right after a send is there when the next child starts.

The parent moves an account's state between its own store and this file
when the account switches between `process: true` and in-process
(`migrate_in` / `migrate_out`), so a switch loses neither positions nor the
Matrix login and checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from pathlib import Path

from ..scalar.store import ensure_private_dir

STATE_FILE = "state.sqlite3"
LOCK_FILE = "lock"


def state_dir(data_dir: Path, account: str) -> Path:
    return data_dir / "plugins" / account


class Locked(Exception):
    """Another process holds the state directory."""


class FileKeyValue:
    """`KeyValue` over one SQLite file, used by one process at a time (flock)."""

    def __init__(self, db: sqlite3.Connection, lock_fd: int | None, path: Path) -> None:
        self.db, self.path = db, path
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, directory: Path, *, wait: float = 5.0, lock: bool = True) -> FileKeyValue:
        """Open (creating) the store in `directory`; waits up to `wait` s for the lock."""
        ensure_private_dir(directory)
        lock_fd = None
        if lock:
            lock_fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        os.close(lock_fd)
                        raise Locked(f"{directory} is in use by another process") from None
                    time.sleep(0.05)
        path = directory / STATE_FILE
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            os.chmod(path, 0o600)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return cls(db, lock_fd, path)

    def close(self) -> None:
        self.db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def get(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    async def set(self, key: str, value: bytes) -> None:
        self.set_now(key, value)

    def set_now(self, key: str, value: bytes) -> None:
        """Committed when it returns (a delivery position written right after a send)."""
        self.db.execute("INSERT OR REPLACE INTO kv(key, value) VALUES(?, ?)", (key, value))

    async def delete(self, key: str) -> None:
        self.db.execute("DELETE FROM kv WHERE key = ?", (key,))

    async def items(self, prefix: str = "") -> list[tuple[str, bytes]]:
        rows = self.db.execute(
            "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        ).fetchall()
        return [(k, bytes(v)) for k, v in rows]

    def replace_all(self, items: list[tuple[str, bytes]]) -> None:
        """Make the store hold exactly `items` (one transaction)."""
        with contextlib.closing(self.db.cursor()) as cur:
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute("DELETE FROM kv")
                cur.executemany("INSERT INTO kv(key, value) VALUES(?, ?)", items)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
