"""Server behaviour that needs a live hub: group commit, flow control, limits,
liveness, paging. (The black-box suite checks the wire rules; commit-then-deliver
is in test_commit_then_deliver.py.)"""

import asyncio
import socket
import time
from pathlib import Path

import cbor2
import pytest

from bridgehost.scalar import driver as driver_module
from bridgehost.scalar import errors
from bridgehost.scalar.client import connect
from bridgehost.scalar.wire import FrameDecoder, encode_frame
from bridgehost.testing import running

FAST = {"server": {"limits": {"rate": 100000, "burst": 100000}}}


async def test_group_commit_batches_concurrent_events(tmp_path: Path) -> None:
    async with running(tmp_path, FAST) as srv:
        clients = [await srv.client(f"u{i}") for i in range(10)]
        lobby = srv.channel("lobby")
        for c in clients:
            await c.sub(lobby)
        store = srv.app.store
        assert store is not None
        before = store.batches
        await asyncio.gather(*(c.publish(lobby, f"{i}") for c in clients for i in range(50)))
        commits = store.batches - before
        assert 1 <= commits < 100, f"{commits} commits for 500 events"


async def test_slow_consumer_is_cut_off_and_others_keep_up(tmp_path: Path) -> None:
    overrides = {"server": {"limits": {"rate": 100000, "burst": 100000, "send_buffer": 65536}}}
    async with running(tmp_path, overrides) as srv:
        lobby = srv.channel("lobby")
        host, port = srv.url.removeprefix("tcp://").rsplit(":", 1)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((host, int(port)))
        for frame in ({"t": "ident", "v": 1}, {"t": "sub", "topic": lobby}):
            body = cbor2.dumps(frame)
            slow.sendall(len(body).to_bytes(2, "little") + body)
        fast = await srv.client("fast")
        await fast.sub(lobby)
        pub = await srv.client("!pub")
        await asyncio.sleep(0.2)
        server = srv.app.server
        assert server is not None
        sent = 0
        # Loopback socket buffers absorb a few MB before the server's own buffer grows.
        while server.slow_consumers == 0 and sent < 20000:
            await asyncio.gather(
                *(pub.publish(lobby, f"{sent + i:05d} " + "x" * 1000) for i in range(100))
            )
            sent += 100
            for i in range(sent - 100, sent):
                event = await fast.next_event(5)
                assert event.body.startswith(f"{i:05d}")
        assert server.slow_consumers == 1
        # Nothing more is queued for it; if it reads now it gets its backlog and the bye.
        reader, writer = await asyncio.open_connection(sock=slow)
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        frames = FrameDecoder().feed(data)
        assert frames[-1] == {"t": "bye", "reason": "slow-consumer"}
        events = [f for f in frames[:-1] if isinstance(f, dict) and f.get("t") == "event"]
        assert events and all(f["body"][:5].isdigit() for f in events)
        assert [int(f["body"][:5]) for f in events] == list(range(len(events)))


async def test_slow_consumer_that_never_reads_is_aborted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_module, "SLOW_CONSUMER_GRACE", 0.2)
    overrides = {"server": {"limits": {"rate": 100000, "burst": 100000, "send_buffer": 65536}}}
    async with running(tmp_path, overrides) as srv:
        lobby = srv.channel("lobby")
        _, writer = await asyncio.open_connection(*srv.url.removeprefix("tcp://").rsplit(":", 1))
        writer.write(
            encode_frame({"t": "ident", "v": 1}) + encode_frame({"t": "sub", "topic": lobby})
        )
        await writer.drain()
        await asyncio.sleep(0.1)
        pub = await srv.client("!pub")
        server = srv.app.server
        assert server is not None
        while server.slow_consumers == 0:
            await asyncio.gather(*(pub.publish(lobby, "x" * 4000) for _ in range(100)))
        await asyncio.sleep(0.5)  # the grace is over: the connection is gone
        assert len(server.connections) == 1  # only the publisher is left
        writer.close()


async def test_rate_limit_answers_every_request_and_consumes_nothing(tmp_path: Path) -> None:
    async with running(tmp_path, {"server": {"limits": {"rate": 1, "burst": 3}}}) as srv:
        alice = await srv.client("alice")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        results = await asyncio.gather(
            *(alice.publish(lobby, f"{i}") for i in range(10)), return_exceptions=True
        )
        ok = [r for r in results if not isinstance(r, BaseException)]
        limited = [r for r in results if isinstance(r, errors.RateLimited)]
        # The sub that made the channel spent one of the 3 tokens (§10).
        assert len(ok) == 2 and len(limited) == 8
        assert all(0 < r.retry_after <= 1000 for r in limited)
        assert [e.seq for e in ok] == [1, 2]  # refused requests consumed no seq
        await asyncio.sleep(limited[0].retry_after / 1000 + 0.05)
        assert (await alice.publish(lobby, "later")).seq == 3
        bot = await srv.client("!bot")
        await asyncio.gather(*(bot.publish(lobby, "exempt") for _ in range(50)))


async def test_failed_idents_are_rate_limited_per_address(tmp_path: Path) -> None:
    async with running(tmp_path, {"server": {"limits": {"auth_failures": 3}}}) as srv:
        await srv.add_user("alice", "right")
        codes = []
        for _ in range(5):
            try:
                await connect(srv.url, id="alice@test.example", secret="wrong")
            except errors.ScalarError as exc:
                codes.append(exc.code)
        assert codes == ["auth-failed"] * 3 + ["rate-limited"] * 2
        with pytest.raises(errors.RateLimited) as info:
            await connect(srv.url, id="alice@test.example", secret="right")
        assert info.value.retry_after > 0


async def test_connection_limit(tmp_path: Path) -> None:
    async with running(tmp_path, {"server": {"limits": {"connections": 2}}}) as srv:
        await srv.client()
        await srv.client()
        with pytest.raises(errors.ConnectionClosed, match="server-full"):
            await connect(srv.url)


async def test_ident_deadline_and_ping_liveness(tmp_path: Path) -> None:
    overrides = {"server": {"timeouts": {"ident": 0.3, "ping": 0.3, "pong": 0.3}}}
    async with running(tmp_path, overrides) as srv:
        host, port = srv.url.removeprefix("tcp://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        start = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 5)
        assert 0.25 < time.monotonic() - start < 3
        assert cbor2.loads(data[2:]) == {"t": "bye", "reason": "timeout"}
        writer.close()
        # A client that answers pings stays; the client library answers them itself.
        alive = await srv.client()
        await asyncio.sleep(1.5)
        assert not alive.closed
        assert (await alive.sub(srv.channel("x"))).topic == "#x@test.example"


async def test_catchup_pages_fill_one_frame(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        bot = await srv.client("!bot")
        topic = srv.channel("big")
        sent = [await bot.publish(topic, f"{i:03d}" + "y" * 3000) for i in range(20)]
        reader = await srv.client("reader")
        page = await reader.catchup(topic, after=0, limit=20)
        assert page.more and 0 < len(page.events) < 20
        assert [e.seq for e in page.events] == [e.seq for e in sent[: len(page.events)]]
        latest = await reader.catchup(topic, limit=20)
        assert latest.more and [e.seq for e in latest.events] == [
            e.seq for e in sent[-len(latest.events) :]
        ]
        pages = [e async for e in reader.history_after(topic)]
        assert [e.id for e in pages] == [e.id for e in sent]


async def test_history_keep_trims_old_events(tmp_path: Path) -> None:
    async with running(tmp_path, {"server": {"history": {"keep": 100}}}) as srv:
        bot = await srv.client("!bot")
        topic = srv.channel("trim")
        for i in range(350):
            await bot.publish(topic, str(i))
        kept = [e async for e in bot.history_after(topic)]
        assert kept[-1].body == "349"
        assert 100 <= len(kept) < 210  # trimmed in slack-sized steps, never below keep
        assert [e.seq for e in kept] == list(range(351 - len(kept), 351))


async def test_direct_messages_and_presence(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        alice = await srv.client("alice")
        watcher = await srv.client("watcher")
        await alice.sub(alice.id)
        await watcher.sub(srv.user("bob"))
        bob = await srv.client("bob")
        online = await watcher.next_event(5)
        assert (online.kind, online.body, online.seq, online.topic) == (
            "presence",
            "online",
            0,
            "bob@test.example",
        )
        dm = await bob.publish(alice.id, "psst")
        assert (await alice.next_event(5)) == dm
        with pytest.raises(errors.Forbidden):
            await bob.catchup(alice.id)
        assert [e.body for e in (await alice.catchup(alice.id)).events] == ["psst"]
        await bob.close()
        offline = await watcher.next_event(5)
        assert (offline.kind, offline.body) == ("presence", "offline")
