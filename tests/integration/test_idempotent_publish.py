"""§10 idempotent publish: a repeated (sender, nonce) is answered with the first
event and publishes nothing, on any connection, while the first is still being
committed, and after a restart."""

import asyncio
from pathlib import Path

import pytest

from bridgehost.testing import running
from bridgehost.testing.journal import install

FAST = {"server": {"limits": {"rate": 100000, "burst": 100000}}}


async def test_a_repeated_nonce_returns_the_first_event(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        alice, watcher = await srv.client("alice"), await srv.client("bob")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        await watcher.sub(lobby)
        first = await alice.publish(lobby, "once", nonce="n-1")
        again = await alice.publish(lobby, "whatever the body", nonce="n-1")
        assert again == first
        other_conn = await srv.client("alice")
        await other_conn.sub(lobby)
        assert await other_conn.publish(lobby, "once", nonce="n-1") == first
        # The same nonce from someone else is someone else's message.
        theirs = await watcher.publish(lobby, "once", nonce="n-1")
        assert theirs.seq == first.seq + 1 and theirs.sender == srv.user("bob")
        assert [e.seq for e in (await watcher.catchup(lobby)).events] == [1, 2]
        delivered = [await watcher.next_event(5)]
        with pytest.raises(TimeoutError):
            delivered.append(await watcher.next_event(0.3))
        assert delivered == [first]


async def test_a_repeat_while_the_first_is_committing_waits_for_it(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        one, two = await srv.client("alice"), await srv.client("alice")
        lobby = srv.channel("lobby")
        await one.sub(lobby)
        await two.sub(lobby)
        assert srv.app.server is not None
        journal = install(srv.app.server.hub)
        journal.hold()
        first = asyncio.ensure_future(one.publish(lobby, "hi", nonce="same"))
        await asyncio.sleep(0.1)
        second = asyncio.ensure_future(two.publish(lobby, "hi", nonce="same"))
        await asyncio.sleep(0.1)
        assert not first.done() and not second.done()
        journal.release()
        assert await asyncio.wait_for(first, 5) == await asyncio.wait_for(second, 5)
        assert (await one.sub(lobby)).seq == 1


async def test_a_nonce_is_remembered_across_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path, FAST) as srv:
        await srv.add_user("alice", "pw")
        alice = await srv.client("alice", password="pw")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        sent = [await alice.publish(lobby, f"m{i}", nonce=f"n{i}") for i in range(20)]
    async with running(tmp_path, FAST) as srv:
        alice = await srv.client("alice", password="pw")
        await alice.sub(lobby)
        again = [await alice.publish(lobby, f"m{i}", nonce=f"n{i}") for i in range(20)]
        assert again == sent
        assert (await alice.publish(lobby, "new", nonce="n20")).seq == 21


async def test_without_history_nonces_hold_within_one_run(tmp_path: Path) -> None:
    async with running(tmp_path, {"server": {"history": {"keep": 0}}}) as srv:
        alice = await srv.client("alice")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        first = await alice.publish(lobby, "hi", nonce="k")
        assert await alice.publish(lobby, "hi", nonce="k") == first
