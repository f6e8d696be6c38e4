"""Flood control against InspIRCd configured to punish floods for real.

Each test runs a control client that floods unpaced through the same server
and gets killed, so the server demonstrably bites; the bridge, pushing more
than the server's rate through the same server, survives and loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bridgehost.testing import Running, running
from tests.servers.fixtures import IRCdFactory
from tests.servers.ircd import InspIRCd, RawIRC

from .irc_helpers import bridge_config, irc_account, irc_adapter, wait_joined, wait_until

pytestmark = pytest.mark.ircd


async def _control_flood(server: InspIRCd, lines: int, size: int = 40) -> str:
    """An unpaced client sends `lines` lines at once; return how the server closed it."""
    async with RawIRC(server.host, server.port, "flooder") as flooder:
        await flooder.connect()
        await flooder.join("#control")
        payload = "x" * size
        data = b"".join(f"PRIVMSG #control :{i} {payload}\r\n".encode() for i in range(lines))
        await flooder.send_raw(data)
        error = await flooder.wait_for(lambda m: m.command == "ERROR", 20)
        return error.trailing


async def _publish_all(srv: Running, texts: list[str]) -> None:
    alice = await srv.client("alice")
    room = srv.channel("room")
    await alice.sub(room)
    for text in texts:
        await alice.publish(room, text)


async def _watch(server: InspIRCd, channel: str) -> RawIRC:
    watcher = RawIRC(server.host, server.port, "watcher")
    await watcher.connect()
    await watcher.join(channel)
    return watcher


async def test_default_pacing_survives_a_strict_server(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    # No fakelag: 10 lines of credit, 1.6 lines/s back; more and the client is killed.
    server = ircd_factory(fakelag="no", threshold=10, commandrate=1600)
    account = irc_account(server)
    del account["flood"]  # the defaults: burst 4, then one line per 0.7 s
    overrides = bridge_config({"net": account}, [("room", [{"account": "net", "target": "#room"}])])
    async with running(tmp_path, overrides) as srv:
        watcher = await _watch(server, "#room")
        await wait_joined(srv)
        start = time.monotonic()
        _, control = await asyncio.gather(
            _publish_all(srv, [f"m{i}" for i in range(10)]),
            _control_flood(server, 14),
        )
        assert "Excess Flood" in control
        await wait_until(lambda: len(watcher.messages("#room")) >= 10, 20, "10 lines")
        elapsed = time.monotonic() - start
        assert [m.trailing for m in watcher.messages("#room")] == [
            f"<alice> m{i}" for i in range(10)
        ]
        assert elapsed >= 4.0  # paced: at most 4 at once, then 0.7 s apart
        adapter = irc_adapter(srv, "net")
        assert adapter.connects == 1 and [s.state for s in adapter.status()] == ["joined"]
        await watcher.quit()


async def test_burst_of_100_arrives_complete_and_in_order(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    # The same kind of server, faster so that 100 lines take seconds: 40 lines of
    # credit, 25 back per 1-second tick; the bridge is set to 20 lines/s.
    server = ircd_factory(fakelag="no", threshold=40, commandrate=25000)
    account = irc_account(server, flood={"burst": 4, "interval": 0.05})
    overrides = bridge_config({"net": account}, [("room", [{"account": "net", "target": "#room"}])])
    async with running(tmp_path, overrides) as srv:
        watcher = await _watch(server, "#room")
        await wait_joined(srv)
        _, control = await asyncio.gather(
            _publish_all(srv, [f"burst {i}" for i in range(100)]),
            _control_flood(server, 100),
        )
        assert "Excess Flood" in control
        await wait_until(lambda: len(watcher.messages("#room")) >= 100, 20, "100 lines")
        assert [m.trailing for m in watcher.messages("#room")] == [
            f"<alice> burst {i}" for i in range(100)
        ]
        adapter = irc_adapter(srv, "net")
        assert adapter.connects == 1 and [s.state for s in adapter.status()] == ["joined"]
        await watcher.quit()


async def test_fakelag_and_small_recvq_never_disconnect_the_bridge(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    # Fakelag: lines wait in the server's 8 KB receive queue, 10 processed per second.
    # The bridge's bucket is set 5x too fast on purpose: only its in-flight window
    # (PING/PONG) keeps the backlog below the recvq.
    server = ircd_factory(fakelag="yes", threshold=10, commandrate=10000, recvq=8192)
    account = irc_account(server, flood={"burst": 4, "interval": 0.02})
    overrides = bridge_config({"net": account}, [("room", [{"account": "net", "target": "#room"}])])
    async with running(tmp_path, overrides) as srv:
        watcher = await _watch(server, "#room")
        await wait_joined(srv)
        filler = "y" * 200
        _, control = await asyncio.gather(
            _publish_all(srv, [f"{i} {filler}" for i in range(60)]),
            _control_flood(server, 60, size=200),
        )
        assert "RecvQ exceeded" in control
        await wait_until(lambda: len(watcher.messages("#room")) >= 60, 30, "60 lines")
        assert [m.trailing for m in watcher.messages("#room")] == [
            f"<alice> {i} {filler}" for i in range(60)
        ]
        adapter = irc_adapter(srv, "net")
        assert adapter.connects == 1 and [s.state for s in adapter.status()] == ["joined"]
        await watcher.quit()
