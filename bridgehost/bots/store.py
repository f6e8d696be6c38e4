"""A bot's persistent key-value store (`self.store`).

Values are JSON (str, int, float, bool, None, lists and maps of those).
In process the store is the server's own database (namespace `bot:<id>`);
out of process a small SQLite file of the bot's own. Both sit behind the
same bytes-level `KeyValue` interface the adapters use.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, TypeVar, overload

import aiosqlite

from ..scalar.store import KeyValue

log = logging.getLogger(__name__)

JSON = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]
T = TypeVar("T")


class BotStore:
    """JSON values over a `KeyValue` backend."""

    def __init__(self, backend: KeyValue) -> None:
        self.backend = backend

    @overload
    async def get(self, key: str) -> JSON: ...

    @overload
    async def get(self, key: str, default: T) -> T: ...

    async def get(self, key: str, default: Any = None) -> Any:
        """The stored value, or `default` when missing. With a default, a stored
        value of another type also gives the default (and a warning), so
        `await store.get("count", 0)` is an `int` you can rely on."""
        raw = await self.backend.get(key)
        if raw is None:
            return default
        try:
            value = json.loads(raw)
        except ValueError:
            log.warning("store key %r holds no JSON; using the default", key)
            return default
        if default is None or _fits(value, default):
            return value
        log.warning(
            "store key %r holds %s, not %s; using the default",
            key,
            type(value).__name__,
            type(default).__name__,
        )
        return default

    async def set(self, key: str, value: JSON) -> None:
        await self.backend.set(key, json.dumps(value, separators=(",", ":")).encode())

    async def delete(self, key: str) -> None:
        await self.backend.delete(key)

    async def items(self, prefix: str = "") -> list[tuple[str, JSON]]:
        out: list[tuple[str, JSON]] = []
        for key, raw in await self.backend.items(prefix):
            try:
                out.append((key, json.loads(raw)))
            except ValueError:
                log.warning("store key %r holds no JSON; skipped", key)
        return out


def _fits(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, tuple):
        return isinstance(value, list)
    return isinstance(value, type(default))


class MemoryKV:
    """Not persistent: for unit tests of bot logic."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set(self, key: str, value: bytes) -> None:
        self.data[key] = value

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def items(self, prefix: str = "") -> list[tuple[str, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))


class SqliteKV:
    """A bot's own SQLite file (out-of-process bots)."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db, self.path = db, path

    @classmethod
    async def open(cls, path: Path) -> SqliteKV:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = await aiosqlite.connect(path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(
                "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value BLOB NOT NULL)"
            )
            await db.commit()
        except BaseException:
            await db.close()
            raise
        os.chmod(path, 0o600)
        return cls(db, path)

    async def close(self) -> None:
        await self.db.close()

    async def get(self, key: str) -> bytes | None:
        cur = await self.db.execute("SELECT value FROM kv WHERE key = ?", (key,))
        row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def set(self, key: str, value: bytes) -> None:
        await self.db.execute("INSERT OR REPLACE INTO kv(key, value) VALUES(?, ?)", (key, value))
        await self.db.commit()

    async def delete(self, key: str) -> None:
        await self.db.execute("DELETE FROM kv WHERE key = ?", (key,))
        await self.db.commit()

    async def items(self, prefix: str = "") -> list[tuple[str, bytes]]:
        cur = await self.db.execute(
            "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return [(str(k), bytes(v)) for k, v in await cur.fetchall()]
