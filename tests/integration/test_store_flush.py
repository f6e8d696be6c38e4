"""Store.flush waits for the batch being committed, not only for the next one:
an event is delivered before its commit ends, and a client may point at it at once
(a bot reacting to a command), which looks it up in the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridgehost.scalar.events import EncodedEvent, Event
from bridgehost.scalar.store import Store, StoredEvent


async def test_flush_waits_for_the_batch_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(tmp_path)
    try:
        release = asyncio.Event()
        commit = store._commit

        async def slow_commit(*args: object, **kw: object) -> None:
            await release.wait()
            await commit(*args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "_commit", slow_commit)
        core = Event.core_map(topic="#a@x", seq=1, sender="a@x", time=1, body="hi")
        enc = EncodedEvent.build(core)
        store.append(StoredEvent("#a@x", 1, 1, enc.stored), "#a@x", 1)
        for _ in range(5):  # the writer takes the batch and starts committing it
            await asyncio.sleep(0)
        found = asyncio.create_task(store.event_by_id("#a@x", enc.id))
        await asyncio.sleep(0.05)
        assert not found.done()
        release.set()
        assert await asyncio.wait_for(found, 5) == enc.stored
    finally:
        await store.close()
