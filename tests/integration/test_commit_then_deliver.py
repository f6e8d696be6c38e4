"""Commit, then deliver (§10), in a running server with a journal that can be slowed
down or made to fail (`bridgehost.testing.journal`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import cbor2
import pytest

from bridgehost.scalar import errors
from bridgehost.scalar.client import Client
from bridgehost.scalar.hub import Hub
from bridgehost.scalar.store import Store
from bridgehost.scalar.wire import FrameDecoder, frame
from bridgehost.testing import Running, running
from bridgehost.testing.journal import FaultyJournal, install

from .irc_helpers import wait_until

FAST = {"server": {"limits": {"rate": 100000, "burst": 100000}}}


def hub_of(srv: Running) -> Hub:
    assert srv.app.server is not None
    return srv.app.server.hub


@asynccontextmanager
async def server(tmp_path: Path) -> AsyncIterator[tuple[Running, FaultyJournal]]:
    async with running(tmp_path, FAST) as srv:
        yield srv, install(hub_of(srv))


async def quiet(client: Client, seconds: float = 0.3) -> None:
    """Nothing arrives for `seconds`."""
    with pytest.raises(TimeoutError):
        event = await client.next_event(seconds)
        pytest.fail(f"unexpected event {event}")


async def test_nothing_is_delivered_or_echoed_before_its_commit(tmp_path: Path) -> None:
    async with server(tmp_path) as (srv, journal):
        alice, bob = await srv.client("alice"), await srv.client("bob")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        await bob.sub(lobby)
        journal.hold()
        publishing = asyncio.ensure_future(alice.publish(lobby, "hi"))
        await asyncio.wait_for(journal.held.wait(), 5)
        await quiet(bob)
        assert not publishing.done()
        assert (await bob.sub(lobby)).seq == 0  # meta tells what is committed
        journal.release()
        delivered = await bob.next_event(5)
        assert await asyncio.wait_for(publishing, 5) == delivered
        assert delivered.seq == 1


async def test_a_failed_commit_is_internal_never_delivered_and_its_seq_given_again(
    tmp_path: Path,
) -> None:
    async with server(tmp_path) as (srv, journal):
        alice, bob = await srv.client("alice"), await srv.client("bob")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        await bob.sub(lobby)
        journal.fail(1)
        with pytest.raises(errors.Internal):
            await alice.publish(lobby, "lost")
        await quiet(bob)
        retry = await alice.publish(lobby, "again")
        assert retry.seq == 1 and retry.body == "again"
        assert await bob.next_event(5) == retry
        page = await bob.catchup(lobby, after=0)
        assert [e.body for e in page.events] == ["again"]
        assert hub_of(srv).commits.failed == 1


async def test_events_queued_behind_a_failed_commit_fail_with_it_other_topics_do_not(
    tmp_path: Path,
) -> None:
    async with server(tmp_path) as (srv, journal):
        alice, bob = await srv.client("alice"), await srv.client("bob")
        lobby, other = srv.channel("lobby"), srv.channel("other")
        for c in (alice, bob):
            await c.sub(lobby)
            await c.sub(other)
        first = await alice.publish(lobby, "committed")
        assert (await bob.next_event(5)).seq == first.seq == 1
        journal.hold()
        in_flight = asyncio.ensure_future(alice.publish(lobby, "in flight"))
        await asyncio.wait_for(journal.held.wait(), 5)
        behind = [asyncio.ensure_future(alice.publish(lobby, f"behind {i}")) for i in range(3)]
        elsewhere = asyncio.ensure_future(alice.publish(other, "elsewhere"))
        await wait_until(lambda: hub_of(srv).commits.backlog == 5)  # all queued behind the held one
        journal.fail(1)
        journal.release()
        for fut in (in_flight, *behind):
            with pytest.raises(errors.Internal):
                await asyncio.wait_for(fut, 5)
        kept = await asyncio.wait_for(elsewhere, 5)
        assert (kept.topic, kept.seq) == (other, 1)
        assert await bob.next_event(5) == kept  # the only delivery since the failure
        assert (await bob.sub(lobby)).seq == 1
        after = await alice.publish(lobby, "after")
        assert after.seq == 2  # the failed seqs are given out again; nobody saw them
        assert await bob.next_event(5) == after
        assert [e.body async for e in bob.history_after(lobby, 0)] == ["committed", "after"]


async def test_whoever_has_an_event_can_point_at_it_at_once(tmp_path: Path) -> None:
    """A bot reacting to a command the moment it arrives finds its target: nothing is
    delivered before it is in the store. (Store.flush used to be needed for this.)"""
    async with server(tmp_path) as (srv, journal):
        alice, bot = await srv.client("alice"), await srv.client("!bot")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        await bot.sub(lobby)
        journal.hold()
        asking = asyncio.ensure_future(alice.publish(lobby, "!ping"))
        await asyncio.wait_for(journal.held.wait(), 5)
        journal.release()
        command = await bot.next_event(5)
        reaction = await bot.react(command, "+1")
        assert reaction.target == command.id == (await asking).id


async def test_flush_waits_for_the_batch_in_flight(tmp_path: Path) -> None:
    async with server(tmp_path) as (srv, journal):
        alice = await srv.client("alice")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        journal.hold()
        publishing = asyncio.ensure_future(alice.publish(lobby, "slow"))
        await asyncio.wait_for(journal.held.wait(), 5)
        flushing = asyncio.ensure_future(hub_of(srv).flush())
        await asyncio.sleep(0.2)
        assert not flushing.done()
        journal.release()
        await asyncio.wait_for(flushing, 5)
        assert (await asyncio.wait_for(publishing, 5)).seq == 1


async def test_stopping_waits_for_the_batch_in_flight_and_echoes_it(tmp_path: Path) -> None:
    async with running(tmp_path, FAST) as srv:
        journal = install(hub_of(srv))
        alice = await srv.client("alice")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        journal.hold()
        publishing = asyncio.ensure_future(alice.publish(lobby, "last words"))
        await asyncio.wait_for(journal.held.wait(), 5)
        stopping = asyncio.ensure_future(srv.app.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done()
        journal.release()
        await asyncio.wait_for(stopping, 10)
        echo = await asyncio.wait_for(publishing, 5)  # acknowledged before the bye
        assert echo.seq == 1
    store = await Store.open(tmp_path / "data")
    try:
        [data], _ = await store.history(lobby, after=0)
        assert cbor2.loads(data)["body"] == "last words"
    finally:
        await store.close()


class RawPublisher:
    """A subscriber that pipelines `msg`s and records every event frame in arrival order
    (its echoes and everyone else's events alike)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, srv: Running, topic: str) -> RawPublisher:
        host, port = srv.url.removeprefix("tcp://").rsplit(":", 1)
        raw = cls(*await asyncio.open_connection(host, int(port)))
        await raw.send({"t": "ident", "v": 1})
        await raw.send({"t": "sub", "topic": topic})
        await raw.until(lambda f: f.get("t") == "meta")
        return raw

    async def send(self, body: dict[str, Any]) -> None:
        self.writer.write(frame(cbor2.dumps(body)))
        await self.writer.drain()

    async def until(self, done: Any, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not any(done(f) for f in self.frames):
                data = await self.reader.read(65536)
                assert data, "closed"
                for item in self.decoder.feed(data):
                    assert isinstance(item, dict), item
                    self.frames.append(item)

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("t") == "event"]


async def test_order_holds_with_a_slow_commit_and_a_full_backlog(tmp_path: Path) -> None:
    async with server(tmp_path) as (srv, journal):
        hub = hub_of(srv)
        hub.commits.max_backlog = 5
        lobby = srv.channel("lobby")
        watcher = await srv.client("watcher")
        await watcher.sub(lobby)
        mixed = await RawPublisher.open(srv, lobby)
        publishers = [await srv.client(f"p{i}") for i in range(3)]
        for p in publishers:
            await p.sub(lobby)
        warm_up = await publishers[0].publish(lobby, "warm-up")
        assert await watcher.next_event(5) == warm_up
        journal.hold()
        n = 20
        for i in range(n):  # pipelined: a big first batch, then this connection waits
            await mixed.send({"t": "msg", "topic": lobby, "body": f"raw {i}", "rid": i})
        await asyncio.wait_for(journal.held.wait(), 5)
        sends = [
            asyncio.ensure_future(
                asyncio.gather(*(p.publish(lobby, f"p{k} {i}") for i in range(n)))
            )
            for k, p in enumerate(publishers)
        ]
        # everyone is blocked on the full backlog now (each connection got one more in)
        await wait_until(lambda: hub.commits.backlog >= hub.commits.max_backlog)
        await asyncio.sleep(0.3)
        assert hub.commits.backlog <= hub.commits.max_backlog + 4
        journal.release()
        echoes = [await asyncio.wait_for(s, 20) for s in sends]
        total = 4 * n + 1
        seen = [warm_up, *[await watcher.next_event(10) for _ in range(total - 1)]]
        assert [e.seq for e in seen] == list(range(1, total + 1))
        for k, mine in enumerate(echoes):
            assert [e.body for e in mine] == [f"p{k} {i}" for i in range(n)]
            assert [e.seq for e in mine] == sorted(e.seq for e in mine)
        await mixed.until(lambda _: len(mixed.events()) >= total)
        arrived = mixed.events()
        assert [f["seq"] for f in arrived] == list(range(1, total + 1))  # echoes in seq order too
        assert [f["body"] for f in arrived if "rid" in f] == [f"raw {i}" for i in range(n)]
        assert len(journal.attempts) >= 2  # still group commit: no batch per event needed
        assert sum(len(b) for b in journal.attempts) == total
