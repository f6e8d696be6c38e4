"""Crash test (§10): SIGKILL a real server at random points of a publish stream, again
and again. No (topic, seq) may ever name two different events, and every event that
anyone was shown (an echo or a delivery) is in `catchup` after the restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgehost.scalar.client import Client, connect
from bridgehost.scalar.errors import ScalarError
from bridgehost.scalar.events import Event

from .proc import BridgehostProcess

ROUNDS = 8
WINDOW = 40
"""Publishes each publisher keeps in flight."""
BOB = "bob@test.example"


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[BridgehostProcess]:
    limits = {"rate": 100000, "burst": 100000}
    p = BridgehostProcess(tmp_path, {"server": {"limits": limits, "history": {"keep": 10**6}}})
    yield p
    p.stop()


class Ledger:
    """Every (topic, seq) -> event id anyone was shown, and any clash."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, int], bytes] = {}
        self.clashes: list[str] = []
        self.acked = 0
        self.delivered = 0

    def saw(self, event: Event) -> None:
        known = self.ids.setdefault((event.topic, event.seq), event.id)
        if known != event.id:
            self.clashes.append(f"{event.topic} seq {event.seq}: {known.hex()}, {event.id.hex()}")


async def stored(client: Client, topic: str) -> dict[int, bytes]:
    return {e.seq: e.id async for e in client.history_after(topic, 0)}


async def check_history(proc: BridgehostProcess, ledger: Ledger, topics: list[str]) -> None:
    """Everything anyone was shown is in catchup, under the same seq."""
    reader = await connect(proc.url)
    bob = await connect(proc.url, id=BOB, secret="bob-pass")
    try:
        kept = {t: await stored(reader, t) for t in topics}
        kept[BOB] = await stored(bob, BOB)
    finally:
        await reader.close()
        await bob.close()
    missing = [
        f"{topic} seq {seq}"
        for (topic, seq), eid in ledger.ids.items()
        if kept.get(topic, {}).get(seq) != eid
    ]
    assert missing == [], f"shown but not in catchup (or different): {missing[:10]}"


async def publish_stream(client: Client, topic: str, tag: str, ledger: Ledger) -> None:
    window = asyncio.Semaphore(WINDOW)
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        try:
            ledger.saw(await client.publish(topic, f"{tag} {i}"))
            ledger.acked += 1
        except (ScalarError, OSError, asyncio.CancelledError):
            pass
        finally:
            window.release()

    try:
        for i in range(100_000):
            await window.acquire()
            task = asyncio.ensure_future(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def watch(client: Client, ledger: Ledger) -> None:
    with contextlib.suppress(ScalarError, OSError):
        while True:
            event = await client.next_event()
            if event.kind != "presence":
                ledger.saw(event)
                ledger.delivered += 1


@pytest.mark.slow
async def test_sigkill_at_random_points_never_names_two_events_with_one_seq(
    proc: BridgehostProcess,
) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    assert proc.cli("user", "add", "bob", "--password-stdin", stdin="bob-pass\n").returncode == 0
    ledger = Ledger()
    topics: list[str] = ["#steady@test.example"]
    for round_ in range(ROUNDS):
        proc.start()
        await check_history(proc, ledger, topics)
        fresh = f"#fresh{round_ // 2}@test.example"  # new every other round: committed seq 0
        if fresh not in topics:
            topics.append(fresh)
        pubs = [await connect(proc.url) for _ in range(2)]
        watchers = [await connect(proc.url) for _ in range(2)]
        bob = await connect(proc.url, id=BOB, secret="bob-pass")
        for c in (*pubs, *watchers):
            await c.sub(topics[0])
            await c.sub(fresh)
        await bob.sub(BOB)
        work = [
            asyncio.ensure_future(publish_stream(pubs[0], topics[0], f"r{round_}a", ledger)),
            asyncio.ensure_future(publish_stream(pubs[1], fresh, f"r{round_}b", ledger)),
            asyncio.ensure_future(publish_stream(pubs[0], BOB, f"r{round_}dm", ledger)),
            *(asyncio.ensure_future(watch(w, ledger)) for w in (*watchers, bob)),
        ]
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        proc.kill9()
        await asyncio.sleep(0.2)  # let the last bytes the kernel had reach the clients
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        for c in (*pubs, *watchers, bob):
            await c.close()
        assert ledger.clashes == [], f"seed {seed}: {ledger.clashes[:5]}"
    proc.start()
    await check_history(proc, ledger, topics)
    assert ledger.acked > 0 and ledger.delivered > 0, f"seed {seed}: nothing happened"
    print(f"seed {seed}: {ledger.acked} acknowledged, {ledger.delivered} deliveries seen")
