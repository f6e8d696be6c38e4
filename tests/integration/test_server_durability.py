"""Durability and lifecycle of a real `bridgehost run` process."""

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgehost.scalar.client import connect
from bridgehost.scalar.errors import ConnectionClosed

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
        # an unclean stop makes seqs skip past anything fanned out but not committed
        assert after.seq > meta.seq >= acked[-1].seq
        assert after.seq > acked[-1].seq + 1
    finally:
        await reader.close()
    assert "did not stop cleanly" in proc.log()


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
