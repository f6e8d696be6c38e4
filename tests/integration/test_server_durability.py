"""Durability and lifecycle of a real `bridgehost run` process (§10: commit, then
deliver; a (topic, seq) names one event forever, across kill -9)."""

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgehost.scalar.client import Client, connect
from bridgehost.scalar.errors import ConnectionClosed
from bridgehost.scalar.events import Event

from .proc import BridgehostProcess


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[BridgehostProcess]:
    p = BridgehostProcess(tmp_path, {"server": {"limits": {"rate": 100000, "burst": 100000}}})
    yield p
    p.stop()


async def test_acknowledged_events_survive_kill_9(proc: BridgehostProcess) -> None:
    proc.start()
    client = await connect(proc.url)
    topic = "#durable@test.example"
    await client.sub(topic)
    acked = await asyncio.gather(*(client.publish(topic, f"m{i}") for i in range(300)))
    proc.kill9()
    await client.close()
    proc.start()
    reader = await connect(proc.url)
    try:
        stored = [e async for e in reader.history_after(topic, 0)]
        assert [(e.seq, e.body, e.id) for e in stored] == [(e.seq, e.body, e.id) for e in acked]
        meta = await reader.sub(topic)
        after = await reader.publish(topic, "after the crash")
        # nothing was delivered before its commit, so nothing needs skipping
        assert meta.seq == acked[-1].seq and after.seq == meta.seq + 1
    finally:
        await reader.close()


async def test_sigterm_says_bye_to_everyone_and_exits_0(proc: BridgehostProcess) -> None:
    proc.start()
    clients = [await connect(proc.url) for _ in range(3)]
    topic = "#bye@test.example"
    await clients[0].sub(topic)
    last = await clients[0].publish(topic, "before shutdown")
    proc.signal(signal.SIGTERM)
    for c in clients:
        with pytest.raises(ConnectionClosed):
            await c.next_event(10)
        assert c.close_reason == "shutdown"
        await c.close()
    assert proc.wait() == 0
    proc.start()
    reader = await connect(proc.url)
    try:
        meta = await reader.sub(topic)
        assert meta.seq == last.seq  # clean stop: no skip
    finally:
        await reader.close()
    log = proc.log()
    assert "SIGTERM received" in log and "store flushed" in log


async def test_sigint_is_a_clean_stop_too(proc: BridgehostProcess) -> None:
    proc.start()
    proc.signal(signal.SIGINT)
    assert proc.wait() == 0


async def test_seq_continues_across_restarts(proc: BridgehostProcess) -> None:
    proc.start()
    topic = "#seq@test.example"
    for round_ in range(3):
        c = await connect(proc.url)
        await c.sub(topic)
        event = await c.publish(topic, f"round {round_}")
        assert event.seq == round_ + 1
        await c.close()
        assert proc.stop() == 0
        proc.start()


def test_secrets_never_reach_the_log(proc: BridgehostProcess) -> None:
    result = proc.cli("user", "add", "alice", "--password-stdin", stdin="s3cret-pass\n")
    assert result.returncode == 0, result.stderr
    token = proc.cli("token", "create", "!bot@test.example").stdout.strip()
    assert token.startswith("bht_")
    proc.start()

    async def sessions() -> None:
        good = await connect(proc.url, id="alice@test.example", secret="s3cret-pass")
        bot = await connect(proc.url, id="!bot@test.example", secret=token)
        await good.close()
        await bot.close()
        with pytest.raises(Exception, match="authentication failed"):
            await connect(proc.url, id="alice@test.example", secret="wrong-s3cret")

    asyncio.run(sessions())
    proc.stop()
    log = proc.log()
    assert "alice@test.example opened" in log and "ident refused" in log
    for secret in ("s3cret-pass", "wrong-s3cret", token):
        assert secret not in log
    db = (proc.dir / "data" / "bridgehost.sqlite3").read_bytes()
    assert b"s3cret-pass" not in db and token.encode() not in db


@contextlib.contextmanager
def disk_write_lock(proc: BridgehostProcess) -> Iterator[None]:
    """Hold SQLite's write lock on the server's database: its commits wait (a stalled
    disk, as the server sees it) while reads go on."""
    db = sqlite3.connect(proc.dir / "data" / "bridgehost.sqlite3", timeout=10)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
        db.rollback()
    finally:
        db.close()


class Seen:
    """Every (topic, seq) -> event id anyone was shown, by echo or delivery."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, int], bytes] = {}
        self.clashes: list[str] = []

    def add(self, event: Event) -> None:
        known = self.ids.setdefault((event.topic, event.seq), event.id)
        if known != event.id:
            self.clashes.append(f"{event.topic} seq {event.seq} named two events")

    async def drain(self, client: Client, seconds: float) -> None:
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while True:
                self.add(await client.next_event(seconds))


async def test_kill_9_while_a_commit_waits_never_reuses_a_seq(proc: BridgehostProcess) -> None:
    """A channel whose committed seq is 0 and a user's DM topic that is not on disk yet:
    after kill -9 neither gives a seq again that someone has seen."""
    assert proc.cli("user", "add", "bob", "--password-stdin", stdin="bob-pass\n").returncode == 0
    proc.start()
    room = "#fresh@test.example"
    seen = Seen()
    alice = await connect(proc.url)
    watcher = await connect(proc.url)
    bob = await connect(proc.url, id="bob@test.example", secret="bob-pass")
    await watcher.sub(room)
    await alice.sub(room)
    await bob.sub("bob@test.example")
    with disk_write_lock(proc):
        pending = [
            asyncio.ensure_future(alice.publish(room, "never committed")),
            asyncio.ensure_future(alice.publish("bob@test.example", "never committed")),
        ]
        await asyncio.gather(seen.drain(watcher, 0.5), seen.drain(bob, 0.1))
        assert not any(p.done() for p in pending)  # no echo before the commit
        proc.kill9()
    for c in (alice, watcher, bob):
        await c.close()
    for p in pending:
        with contextlib.suppress(Exception):
            await p
    proc.start()
    alice = await connect(proc.url)
    watcher = await connect(proc.url)
    bob = await connect(proc.url, id="bob@test.example", secret="bob-pass")
    try:
        await watcher.sub(room)
        await alice.sub(room)
        await bob.sub("bob@test.example")
        seen.add(await alice.publish(room, "after the crash"))
        seen.add(await alice.publish("bob@test.example", "after the crash"))
        await asyncio.gather(seen.drain(watcher, 0.5), seen.drain(bob, 0.5))
    finally:
        for c in (alice, watcher, bob):
            await c.close()
    assert seen.clashes == []
    assert (room, 1) in seen.ids and ("bob@test.example", 1) in seen.ids


async def test_admin_commands_while_running_change_nothing_the_server_relies_on(
    proc: BridgehostProcess,
) -> None:
    """`user add` and `token create` beside a running server work at once, and a crash
    after them still never reuses a seq (they used to mark the store "clean")."""
    proc.start()
    room = "#admin@test.example"
    seen = Seen()
    alice, watcher = await connect(proc.url), await connect(proc.url)
    await watcher.sub(room)
    await alice.sub(room)
    seen.add(await alice.publish(room, "one"))
    added = proc.cli("user", "add", "carol", "--password-stdin", stdin="carol-pass\n")
    assert added.returncode == 0, added.stderr
    token = proc.cli("token", "create", "!bot@test.example")
    assert token.returncode == 0, token.stderr
    carol = await connect(proc.url, id="carol@test.example", secret="carol-pass")  # at once
    bot = await connect(proc.url, id="!bot@test.example", secret=token.stdout.strip())
    await carol.close()
    await bot.close()
    with disk_write_lock(proc):
        pending = asyncio.ensure_future(alice.publish(room, "two, never committed"))
        await seen.drain(watcher, 0.5)
        proc.kill9()
    await alice.close()
    await watcher.close()
    with contextlib.suppress(Exception):
        await pending
    proc.start()
    alice, watcher = await connect(proc.url), await connect(proc.url)
    try:
        await watcher.sub(room)
        await alice.sub(room)
        seen.add(await alice.publish(room, "three"))
        await seen.drain(watcher, 0.5)
        carol = await connect(proc.url, id="carol@test.example", secret="carol-pass")
        await carol.close()
    finally:
        await alice.close()
        await watcher.close()
    assert seen.clashes == []
    assert sorted(seq for _, seq in seen.ids) == [1, 2]
