"""What an IRC link had not sent when bridgehost stopped is sent after the next start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.ircd import InspIRCd, RawIRC

from .irc_helpers import bridge_config, irc_account, statuses, wait_joined, wait_until

pytestmark = pytest.mark.ircd


async def test_messages_queued_for_a_down_network_survive_a_restart(
    tmp_path: Path, ircd: InspIRCd
) -> None:
    overrides = bridge_config(
        {"net": irc_account(ircd)}, [("room", [{"account": "net", "target": "#room"}])]
    )
    async with running(tmp_path, overrides) as srv:
        await wait_joined(srv)
        await srv.add_user("alice", "pw")
        alice = await srv.client("alice", password="pw")
        room = srv.channel("room")
        await alice.sub(room)
        await alice.publish(room, "seen before")
        await asyncio.to_thread(ircd.stop)
        await wait_until(lambda: statuses(srv)[0].state != "joined", 10, "link down")
        for i in range(5):
            await alice.publish(room, f"queued {i}")
        await wait_until(lambda: statuses(srv)[0].queued == 5, 5, "5 queued")
    # bridgehost is stopped with 5 messages unsent; IRC comes back first
    await asyncio.to_thread(ircd.start)
    watcher = RawIRC(ircd.host, ircd.port, "watcher")
    await watcher.connect()
    await watcher.join("#room")
    try:
        async with running(tmp_path, overrides) as srv:
            await wait_joined(srv, 15)
            await wait_until(lambda: len(watcher.messages("#room")) >= 5, 10, "queued lines")
            alice = await srv.client("alice", password="pw")
            await alice.sub(srv.channel("room"))
            await alice.publish(srv.channel("room"), "after")
            await watcher.wait_for(lambda m: m.trailing == "<alice> after")
            assert [m.trailing for m in watcher.messages("#room")] == [
                *(f"<alice> queued {i}" for i in range(5)),
                "<alice> after",
            ]
        # a third start has nothing left to send
        async with running(tmp_path, overrides) as srv:
            await wait_joined(srv, 15)
            await asyncio.sleep(1)
            assert len(watcher.messages("#room")) == 6
    finally:
        await watcher.close()
