"""Matrix adapter across a crash: a real `bridgehost run` process killed with SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest

from bridgehost.scalar.client import Client, connect
from bridgehost.scalar.events import Event
from bridgehost.testing import running
from tests.servers.synapse_fixtures import MatrixUsers

from .matrix_helpers import (
    BOT_PASSWORD,
    FAST_LIMITS,
    overrides,
    private_room,
    register_bot,
    send,
    wait_for,
    wait_room_messages,
    wait_up,
)
from .proc import BridgehostProcess

pytestmark = pytest.mark.synapse

CHANNEL = "#room@test.example"
LIVE = 20
WHILE_DOWN = 120
"""More than the sync timeline limit (100): the restart must fill the gap."""


async def observer(url: str) -> Client:
    """A guest client of the bridge's Scalar server, once it listens."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return await connect(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def relayed(url: str, origin: str) -> list[Event]:
    """Every event of the channel that came from the Matrix link, from stored history."""
    client = await observer(url)
    try:
        return [e async for e in client.history_after(CHANNEL, 0) if e.origin == origin]
    finally:
        await client.close()


async def test_sigkill_during_traffic_neither_loses_nor_replays(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    for i in range(3):
        await send(owner, room_id, {"msgtype": "m.text", "body": f"old {i}"})
    origin = f"matrix:mx/{room_id}"
    bridge = BridgehostProcess(
        tmp_path,
        {
            "server": {"limits": FAST_LIMITS},
            "accounts": {
                "mx": {
                    "type": "matrix",
                    "homeserver": owner.server.url,
                    "user_id": bot,
                    "password": BOT_PASSWORD,
                    "reconnect_initial": 0.1,
                    "reconnect_max": 1.0,
                }
            },
            "bridges": [{"channel": CHANNEL, "links": [{"account": "mx", "target": room_id}]}],
        },
    )
    url = bridge.url
    try:
        bridge.start()
        watch = await observer(url)
        await watch.sub(CHANNEL)

        async def joined() -> bool:
            resp = await owner.client.joined_members(room_id)
            return bot in {m.user_id for m in resp.members}

        await wait_for(joined, within=20, what="the bridge in the room")

        async def traffic() -> None:
            for i in range(LIVE):
                await send(owner, room_id, {"msgtype": "m.text", "body": f"live {i}"})
                await asyncio.sleep(0.02)

        sender = asyncio.create_task(traffic())
        seen = 0
        while seen < 6:
            event = await watch.next_event(20)
            assert not event.body.startswith("old"), event.body
            seen += 1
        bridge.kill9()
        assert not sender.done(), "the kill should land during traffic"
        await sender
        with contextlib.suppress(Exception):
            await watch.close()
        for i in range(WHILE_DOWN):
            await send(owner, room_id, {"msgtype": "m.text", "body": f"down {i}"})

        bridge.start()

        async def caught_up() -> bool:
            bodies = [e.body for e in await relayed(url, origin)]
            return f"down {WHILE_DOWN - 1}" in bodies

        await wait_for(caught_up, within=30, what="the messages sent while down")
        await send(owner, room_id, {"msgtype": "m.text", "body": "final"})

        async def final() -> bool:
            return any(e.body == "final" for e in await relayed(url, origin))

        await wait_for(final, within=15, what="the final message")
        bodies = [e.body for e in await relayed(url, origin)]
        expected = [f"live {i}" for i in range(LIVE)] + [f"down {i}" for i in range(WHILE_DOWN)]
        assert bodies == [*expected, "final"]
        assert "filled a gap of" in bridge.log()
    finally:
        bridge.stop()


async def test_events_published_before_a_lost_checkpoint_are_not_published_again(
    tmp_path: Path, matrix_users: MatrixUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash window SIGKILL rarely hits: published, but the batch not checkpointed."""
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    config = overrides(owner.server, bot, room_id)
    origin = f"matrix:mx/{room_id}"
    async with running(tmp_path, config) as srv:
        mx = await wait_up(srv)

        async def lost(next_batch: str) -> None:
            """Kept in memory only: as if the process died before writing it."""
            mx.checkpoint.since = next_batch

        monkeypatch.setattr(mx, "_checkpoint", lost)
        for i in range(5):
            await send(owner, room_id, {"msgtype": "m.text", "body": f"m{i}"})
        await wait_for(lambda: mx.status()[0].relayed_in == 5, what="5 relayed")
        watch = await srv.client("alice")
        before = [e async for e in watch.history_after(CHANNEL, 0)]
        first = before[0]
        saved = json.loads(await mx.ctx.kv.get("sync") or b"{}")
        assert saved["seqs"][CHANNEL] < first.seq  # the batch of m0..m4 is not checkpointed
    monkeypatch.undo()

    async with running(tmp_path, config) as srv:
        mx = await wait_up(srv)
        await send(owner, room_id, {"msgtype": "m.text", "body": "m5"})
        await wait_for(lambda: mx.status()[0].relayed_in == 1, what="m5 relayed")
        watch = await srv.client("alice")
        history = [e async for e in watch.history_after(CHANNEL, 0) if e.origin == origin]
        assert [e.body for e in history] == [f"m{i}" for i in range(6)]
        # The skipped ones are mapped again: a Scalar reply to m0 reaches Matrix as a reply.
        await watch.sub(CHANNEL)
        await watch.publish(CHANNEL, "re m0", reply_to=history[0].id)
        msgs = await wait_room_messages(
            owner.client, room_id, lambda m: any(x["sender"] == bot for x in m)
        )
        (reply,) = (m for m in msgs if m["sender"] == bot)
        m0 = next(m for m in msgs if m["content"]["body"] == "m0")
        assert reply["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": m0["event_id"]}}
