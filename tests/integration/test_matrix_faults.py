"""Matrix adapter faults: homeserver restart, M_LIMIT_EXCEEDED (real Synapse)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridgehost.testing import running
from tests.servers.synapse import RateLimit
from tests.servers.synapse_fixtures import MatrixUsers, SynapseFactory

from .matrix_helpers import (
    overrides,
    private_room,
    register_bot,
    scalar_events,
    send,
    wait_for,
    wait_room_messages,
    wait_up,
)

pytestmark = pytest.mark.synapse


def bridged(bot: str, count: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda msgs: sum(m["sender"] == bot for m in msgs) >= count


async def test_homeserver_restart_backs_off_then_delivers_in_order(
    tmp_path: Path, matrix_users: MatrixUsers, synapse_factory: SynapseFactory
) -> None:
    hs = synapse_factory()
    owner = await matrix_users.new("owner", server=hs)
    bot = await register_bot(hs)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(hs, bot, room_id)) as srv:
        mx = await wait_up(srv)
        st = mx.status()[0]
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)
        await alice.publish(channel, "before")
        await wait_for(lambda: st.relayed_out == 1, what="first relay")

        await hs.stop_async()
        await wait_for(lambda: st.state == "disconnected", what="link disconnected")
        assert "homeserver unreachable" in (st.last_error or "")
        failures = mx.sync_failures
        for i in range(10):
            await alice.publish(channel, f"while down {i}")
        await wait_for(lambda: mx.sync_failures >= failures + 3, what="reconnect attempts")
        await wait_for(lambda: st.queued == 10, what="queued")
        await asyncio.sleep(1.0)  # down for a while: attempts must back off
        # Backoff, not a tight loop: a handful of attempts (0.1 s doubling, 1 s cap).
        assert mx.sync_failures - failures < 15, mx.sync_failures - failures
        await hs.start_async()

        await wait_for(lambda: st.state == "joined", within=15, what="link joined again")
        msgs = await wait_room_messages(owner.client, room_id, bridged(bot, 11), within=15)
        bodies = [m["content"]["body"] for m in msgs if m["sender"] == bot]
        assert bodies == ["<alice> before"] + [f"<alice> while down {i}" for i in range(10)]
        assert st.queued == 0

        await send(owner, room_id, {"msgtype": "m.text", "body": "back"})
        (event,) = await scalar_events(alice, 1)
        assert event.body == "back"


@pytest.mark.alone
async def test_limit_exceeded_waits_and_resends(
    tmp_path: Path, matrix_users: MatrixUsers, synapse_factory: SynapseFactory
) -> None:
    hs = synapse_factory(rc_message=RateLimit(per_second=5, burst_count=3))
    owner = await matrix_users.new("owner", server=hs)
    bot = await register_bot(hs)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(hs, bot, room_id)) as srv:
        mx = await wait_up(srv)
        st = mx.status()[0]
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)
        for i in range(12):
            await alice.publish(channel, f"burst {i}")
        msgs = await wait_room_messages(owner.client, room_id, bridged(bot, 12), within=20)
        bodies = [m["content"]["body"] for m in msgs if m["sender"] == bot]
        assert bodies == [f"<alice> burst {i}" for i in range(12)]
        assert mx.rate_limited > 0
        assert "M_LIMIT_EXCEEDED" in (st.last_error or "")
        assert st.relayed_out == 12
