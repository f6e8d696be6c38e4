"""The SQLite store as a Journal: one transaction per batch, collisions fail loudly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import cbor2
import pytest

from bridgehost.scalar.journal import StoredEvent
from bridgehost.scalar.store import Store


def event(topic: str, seq: int, body: str) -> StoredEvent:
    return StoredEvent(topic, seq, 1000 + seq, cbor2.dumps({"seq": seq, "body": body}))


async def test_a_seq_written_twice_fails_and_the_whole_batch_is_rolled_back(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path)
    try:
        await store.commit([event("#a", 1, "first")])
        with pytest.raises(sqlite3.IntegrityError):
            await store.commit([event("#b", 1, "other"), event("#a", 1, "impostor")])
        [data], _ = await store.history("#a", after=0)
        assert cbor2.loads(data)["body"] == "first"
        assert await store.history("#b", after=0) == ([], False)
        assert await store.load_topics() == {"#a": (1, None)}
        await store.commit([event("#b", 1, "other")])  # the connection is usable again
        assert (await store.load_topics())["#b"] == (1, None)
        assert store.commit_latency.count == 2
    finally:
        await store.close()


async def test_without_history_only_the_seqs_are_kept(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, keep=0)
    try:
        await store.commit([event("bob@x", 1, "dm"), event("bob@x", 2, "dm")])
        assert await store.load_topics() == {"bob@x": (2, None)}
        assert await store.history("bob@x") == ([], False)
    finally:
        await store.close()
