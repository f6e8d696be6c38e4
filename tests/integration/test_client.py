"""The client library against a real server: the end of a connection is never
missed, replies never wait behind events, and a reconnecting client publishes
each message exactly once."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridgehost.runtime import Backoff
from bridgehost.scalar import errors
from bridgehost.scalar.client import Client, connect
from bridgehost.scalar.events import Event
from bridgehost.testing import Running, running

from .proc import BridgehostProcess
from .tcp_proxy import CuttableProxy

FAST = {"server": {"limits": {"rate": 100000, "burst": 100000}}}


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.001)


async def _flood(srv: Running, topic: str, n: int) -> None:
    pub = await srv.client("!flood")
    await asyncio.gather(*(pub.publish(topic, f"f{i}") for i in range(n)))


async def test_iteration_ends_after_close_when_the_queue_was_full(tmp_path: Path) -> None:
    """Finding 8: the end marker was dropped when the event queue was full."""
    async with running(tmp_path, FAST) as srv:
        lobby = srv.channel("lobby")
        await srv.add_user("alice", "pw")
        alice = await connect(srv.url, id=srv.user("alice"), secret="pw", queue_size=2)
        await alice.sub(lobby)
        await _flood(srv, lobby, 20)
        await asyncio.sleep(0.3)  # the queue is full; the client stopped reading
        await alice.close()
        got = await asyncio.wait_for(_drain(alice), 5)
        assert 1 <= len(got) <= 20
        with pytest.raises(errors.ConnectionClosed):
            await alice.next_event(1)


async def _drain(client: Client) -> list[Event]:
    return [event async for event in client]


async def test_a_full_queue_never_holds_back_a_reply(tmp_path: Path) -> None:
    """Finding 8: a handler awaiting an echo while the queue was full deadlocked."""
    async with running(tmp_path, FAST) as srv:
        lobby = srv.channel("lobby")
        await srv.add_user("alice", "pw")
        alice = await connect(srv.url, id=srv.user("alice"), secret="pw", queue_size=5)
        await alice.sub(lobby)
        await _flood(srv, lobby, 200)
        await asyncio.sleep(0.3)
        echo = await asyncio.wait_for(alice.publish(lobby, "still here"), 5)
        assert echo.body == "still here"
        assert (await asyncio.wait_for(alice.ping(), 5)) < 5
        first = await alice.next_event(5)
        assert first.body == "f0"
        await alice.close()


async def test_without_reconnect_a_lost_connection_fails_what_waits(tmp_path: Path) -> None:
    async with running(tmp_path, FAST) as srv:
        host, port = srv.url.removeprefix("tcp://").rsplit(":", 1)
        proxy = CuttableProxy(host, int(port))
        url = await proxy.start()
        client = await connect(url)
        await client.sub(srv.channel("lobby"))
        proxy.cut()
        with pytest.raises(errors.ConnectionClosed):
            await asyncio.wait_for(client.publish(srv.channel("lobby"), "lost"), 5)
        assert client.closed
        assert [e async for e in client] == []
        await client.close()
        await proxy.close()


@contextlib.asynccontextmanager
async def _through_proxy(srv: Running) -> AsyncIterator[tuple[CuttableProxy, str]]:
    host, port = srv.url.removeprefix("tcp://").rsplit(":", 1)
    proxy = CuttableProxy(host, int(port))
    url = await proxy.start()
    try:
        yield proxy, url
    finally:
        await proxy.close()


async def test_publishes_in_flight_across_cuts_arrive_exactly_once(tmp_path: Path) -> None:
    async with running(tmp_path, FAST) as srv, _through_proxy(srv) as (proxy, url):
        lobby = srv.channel("lobby")
        await srv.add_user("alice", "pw")
        alice = await connect(
            url, id=srv.user("alice"), secret="pw", reconnect=Backoff(0.05, 0.2, healthy_after=0.1)
        )
        await alice.sub(lobby)
        total, window = 1500, asyncio.Semaphore(50)

        async def send(i: int) -> Event:
            async with window:
                return await alice.publish(lobby, f"m{i:04d}")

        publishing = asyncio.gather(*(send(i) for i in range(total)))
        for _ in range(3):  # cut while publishes and echoes are streaming
            await _until(lambda: proxy.to_client >= 20000 or publishing.done())
            proxy.cut()
        echoes = await asyncio.wait_for(publishing, 30)
        assert alice.reconnects >= 3 and proxy.connections >= 4
        assert [e.body for e in echoes] == [f"m{i:04d}" for i in range(total)]
        reader = await srv.client()
        stored = [e async for e in reader.history_after(lobby, 0)]
        assert [e.body for e in stored] == [f"m{i:04d}" for i in range(total)]
        assert [e.id for e in stored] == [e.id for e in echoes]
        await alice.close()


async def test_a_reconnected_subscriber_goes_on_receiving(tmp_path: Path) -> None:
    async with running(tmp_path, FAST) as srv, _through_proxy(srv) as (proxy, url):
        lobby = srv.channel("lobby")
        bob = await connect(url, reconnect=Backoff(0.05, 0.2))
        await bob.sub(lobby)
        pub = await srv.client("!pub")
        await pub.publish(lobby, "before")
        assert (await bob.next_event(5)).body == "before"
        proxy.cut()
        await _until(lambda: bob.connected and bob.reconnects > 0)
        await bob.ping()  # the re-subscription was sent before this
        await pub.publish(lobby, "after")
        assert (await bob.next_event(5)).body == "after"
        await bob.close()
        assert [e async for e in bob] == []


async def test_a_reconnected_subscriber_gets_what_it_missed_once_in_order(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, FAST) as srv, _through_proxy(srv) as (proxy, url):
        lobby = srv.channel("lobby")
        bob = await connect(url, reconnect=Backoff(0.5, 1.0, jitter=False))
        await bob.sub(lobby)
        pub = await srv.client("!pub")
        sent = [await pub.publish(lobby, f"m{i:02d}") for i in range(5)]
        for _ in range(5):
            await bob.next_event(5)
        proxy.cut()
        await _until(lambda: not bob.connected)
        sent += [await pub.publish(lobby, f"m{i:02d}") for i in range(5, 25)]  # while away
        await _until(lambda: bob.connected, timeout=10)
        sent += [await pub.publish(lobby, f"m{i:02d}") for i in range(25, 30)]  # live
        got = [await bob.next_event(5) for _ in range(25)]
        assert [e.body for e in got] == [e.body for e in sent[5:]]
        assert [e.seq for e in got] == list(range(6, 31))
        with pytest.raises(TimeoutError):
            await bob.next_event(0.3)  # nothing twice
        await bob.close()


async def test_a_client_rides_out_a_server_crash(tmp_path: Path) -> None:
    """kill -9 mid-stream: the publishes the old server committed but never answered
    are found again by nonce after its restart, the rest are published once."""
    proc = BridgehostProcess(tmp_path, FAST)
    proc.start()
    try:
        proc.cli("user", "add", "alice", "--password-stdin", stdin="pw\n")
        alice = await connect(
            proc.url, id="alice@test.example", secret="pw", reconnect=Backoff(0.1, 0.5)
        )
        lobby = "#crash@test.example"
        await alice.sub(lobby)
        total, window, answered = 1000, asyncio.Semaphore(50), 0

        async def send(i: int) -> Event:
            nonlocal answered
            async with window:
                event = await alice.publish(lobby, f"m{i:04d}")
            answered += 1
            return event

        publishing = asyncio.gather(*(send(i) for i in range(total)))
        await _until(lambda: answered >= 100)
        proc.kill9()
        proc.wait()
        at_the_crash = answered
        proc.start()
        echoes = await asyncio.wait_for(publishing, 60)
        assert at_the_crash < total and alice.reconnects >= 1
        assert [e.body for e in echoes] == [f"m{i:04d}" for i in range(total)]
        stored = [e async for e in alice.history_after(lobby, 0)]
        assert sorted(e.body for e in stored) == [f"m{i:04d}" for i in range(total)]
        assert {e.id for e in stored} == {e.id for e in echoes}
        await alice.close()
    finally:
        proc.stop()
