"""Faults against a real InspIRCd: restarts, nick clashes, kicks, bans, bad keys, hangs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from bridgehost.adapters.irc.adapter import HEALTHY_AFTER
from bridgehost.scalar.client import Client
from bridgehost.testing import Running, running
from tests.servers.fixtures import IRCdFactory
from tests.servers.ircd import InspIRCd, RawIRC

from .irc_helpers import (
    OPER_CONFIG,
    Gate,
    bridge_config,
    irc_account,
    irc_adapter,
    make_op,
    statuses,
    wait_joined,
    wait_until,
)

pytestmark = pytest.mark.ircd


async def _publisher(srv: Running, channel: str = "room") -> Client:
    alice = await srv.client("alice")
    await alice.sub(srv.channel(channel))
    return alice


async def test_restart_reconnects_rejoins_and_delivers_the_queue_in_order(
    tmp_path: Path, ircd: InspIRCd
) -> None:
    gate = await Gate(ircd.host, ircd.port).start()
    gate.open = True
    overrides = bridge_config(
        {"net": irc_account(ircd, port=gate.port)},
        [("room", [{"account": "net", "target": "#room"}])],
    )
    async with running(tmp_path, overrides) as srv:
        watcher = RawIRC(ircd.host, ircd.port, "watcher")
        await watcher.connect()
        await watcher.join("#room")
        await wait_joined(srv)
        alice = await _publisher(srv)
        room = srv.channel("room")
        await alice.publish(room, "before")
        await watcher.wait_for(lambda m: m.trailing == "<alice> before")

        gate.open = False  # nobody reaches the server until the watcher is back
        await asyncio.to_thread(ircd.stop)
        await wait_until(lambda: statuses(srv)[0].state != "joined", 10, "link down")
        status = statuses(srv)[0]
        for i in range(30):
            await alice.publish(room, f"while down {i}")
        await wait_until(lambda: status.queued == 30, 5, "30 queued")
        assert status.last_error

        await asyncio.to_thread(ircd.start)
        await watcher.close()
        watcher = RawIRC(ircd.host, ircd.port, "watcher")
        await watcher.connect()
        await watcher.join("#room")
        gate.open = True
        await wait_joined(srv, 15)
        await wait_until(lambda: len(watcher.messages("#room")) >= 30, 10, "queued lines")
        await alice.publish(room, "after")
        await watcher.wait_for(lambda m: m.trailing == "<alice> after")
        assert [m.trailing for m in watcher.messages("#room")] == [
            *(f"<alice> while down {i}" for i in range(30)),
            "<alice> after",
        ]
        assert status.queued == 0 and status.dropped == 0
        adapter = irc_adapter(srv, "net")
        assert adapter.connects >= 2

        # and IRC -> Scalar works on the new connection
        await watcher.privmsg("#room", "back")
        event = await alice.next_event(5)
        while event.body != "back":
            event = await alice.next_event(5)
        assert event.nick == "watcher"
        await watcher.quit()
    await gate.close()


async def test_nick_in_use_takes_the_next_alternate(tmp_path: Path, ircd: InspIRCd) -> None:
    async with RawIRC(ircd.host, ircd.port, "bridge") as squatter:
        await squatter.connect()
        account = irc_account(ircd, alt_nicks=["bridgealt"])
        overrides = bridge_config(
            {"net": account}, [("room", [{"account": "net", "target": "#room"}])]
        )
        async with running(tmp_path, overrides) as srv:
            await squatter.join("#room")
            await wait_joined(srv)
            adapter = irc_adapter(srv, "net")
            assert adapter.conn is not None and adapter.conn.nick == "bridgealt"
            alice = await _publisher(srv)
            await alice.publish(srv.channel("room"), "hi")
            line = await squatter.wait_for(lambda m: m.command == "PRIVMSG")
            assert (line.nick, line.trailing) == ("bridgealt", "<alice> hi")
            # our own echo under the alternate nick is still ignored
            await squatter.privmsg("#room", "ping")
            event = await alice.next_event(5)
            assert (event.nick, event.body) == ("bridge", "ping")


async def test_kicked_rejoins_after_the_delay_and_delivers_what_waited(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    ircd = ircd_factory(extra_config=OPER_CONFIG)
    async with RawIRC(ircd.host, ircd.port, "op") as op:
        await op.connect()
        await op.join("#room")
        await make_op(op, "#room")
        account = irc_account(ircd, rejoin_delay=1.0)
        overrides = bridge_config(
            {"net": account}, [("room", [{"account": "net", "target": "#room"}])]
        )
        async with running(tmp_path, overrides) as srv:
            await wait_joined(srv)
            alice = await _publisher(srv)
            mark = op.mark()
            await op.send("KICK #room bridge :out you go")
            status = statuses(srv)[0]
            await wait_until(lambda: status.state == "removed", 5, "kicked")
            assert status.last_error is not None and "kicked from #room by op" in status.last_error
            await alice.publish(srv.channel("room"), "missed you")
            rejoin = await op.wait_for(
                lambda m: m.command == "JOIN" and m.nick == "bridge", 5, since=mark
            )
            line = await op.wait_for(lambda m: m.command == "PRIVMSG", 5, since=mark)
            assert line.trailing == "<alice> missed you"
            assert op.lines.index(rejoin) < op.lines.index(line)
            await wait_joined(srv)


async def test_ban_and_bad_key_are_reported_and_retried_with_backoff(
    tmp_path: Path, ircd_factory: IRCdFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ircd = ircd_factory(extra_config=OPER_CONFIG)
    async with RawIRC(ircd.host, ircd.port, "op") as op:
        await op.connect()
        for channel in ("#banned", "#keyed", "#fine"):
            await op.join(channel)
        await make_op(op, "#banned", "#keyed")
        await op.send("MODE #banned +b bridge!*@*")
        await op.send("MODE #keyed +k sesame")
        account = irc_account(ircd, queue=5, reconnect_max=2.0)
        overrides = bridge_config(
            {"net": account},
            [
                ("banned", [{"account": "net", "target": "#banned"}]),
                ("keyed", [{"account": "net", "target": "#keyed", "key": "wrong"}]),
                ("fine", [{"account": "net", "target": "#fine"}]),
            ],
        )
        async with running(tmp_path, overrides) as srv:
            by_target = {s.target: s for s in statuses(srv)}
            await wait_until(
                lambda: (
                    by_target["#banned"].state == "join failed"
                    and by_target["#keyed"].state == "join failed"
                    and by_target["#fine"].state == "joined"
                ),
                10,
                "join outcomes",
            )
            assert "banned from channel" in (by_target["#banned"].last_error or "")
            assert "bad channel key" in (by_target["#keyed"].last_error or "")
            assert "sesame" not in caplog.text and "wrong" not in caplog.text
            adapter = irc_adapter(srv, "net")

            # Messages for the banned link wait in its bounded queue; overflow is counted.
            alice = await _publisher(srv, "banned")
            for i in range(8):
                await alice.publish(srv.channel("banned"), f"queued {i}")
            status = by_target["#banned"]
            await wait_until(lambda: status.dropped == 3, 5, "3 dropped")
            assert status.queued == 5
            assert "queue for net/#banned full (5): dropped" in caplog.text

            # No tight loop: a few JOIN attempts over 3 s, not hundreds.
            before = caplog.text.count("cannot join #banned")
            await asyncio.sleep(3)
            attempts = caplog.text.count("cannot join #banned") - before
            assert 1 <= attempts <= 4
            assert adapter.connects == 1

            await op.send("MODE #banned -b bridge!*@*")
            await wait_until(lambda: status.state == "joined", 10, "join after unban")
            await wait_until(lambda: len(op.messages("#banned")) >= 5, 5, "queued lines")
            assert [m.trailing for m in op.messages("#banned")] == [
                f"<alice> queued {i}" for i in range(3, 8)
            ]


async def test_a_hung_server_is_detected_by_the_keepalive(tmp_path: Path, ircd: InspIRCd) -> None:
    account = irc_account(ircd, ping_interval=0.5, ping_timeout=1.0)
    overrides = bridge_config({"net": account}, [("room", [{"account": "net", "target": "#room"}])])
    async with running(tmp_path, overrides) as srv:
        await wait_joined(srv)
        assert ircd.pid is not None
        os.kill(ircd.pid, signal.SIGSTOP)
        try:
            status = statuses(srv)[0]
            await wait_until(lambda: status.state != "joined", 5, "ping timeout")
            assert "ping timeout" in (status.last_error or "")
        finally:
            os.kill(ircd.pid, signal.SIGCONT)
        await wait_joined(srv, 20)


async def test_a_line_the_server_refuses_is_reported(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    ircd = ircd_factory(extra_config=OPER_CONFIG)
    async with RawIRC(ircd.host, ircd.port, "op") as op:
        await op.connect()
        await op.join("#room")
        await make_op(op, "#room")
        account = irc_account(ircd)
        overrides = bridge_config(
            {"net": account}, [("room", [{"account": "net", "target": "#room"}])]
        )
        async with running(tmp_path, overrides) as srv:
            await wait_joined(srv)
            mark = op.mark()
            await op.send("MODE #room +m")
            await op.wait_for(lambda m: m.command == "MODE", since=mark)
            alice = await _publisher(srv)
            await alice.publish(srv.channel("room"), "am I muted?")
            status = statuses(srv)[0]
            await wait_until(lambda: status.last_error is not None, 5, "refusal reported")
            assert "cannot send to #room" in (status.last_error or "")
            assert status.state == "joined" and status.queued == 0


@pytest.mark.alone
async def test_a_server_back_after_5_s_down_relays_again_within_2_s(
    tmp_path: Path, ircd: InspIRCd
) -> None:
    """Issue #12: after a healthy connection, the first retry comes within a
    second and retries stay that quick for a while, so a restarted server is
    relaying again at most 2 s after it accepts connections (measured on the
    relay workload before: 6.95 s). Default reconnect settings, a real
    InspIRCd restart; the gate decides when the bridge may reach the server
    again (after the watcher is back in the channel to see the relay)."""
    gate = await Gate(ircd.host, ircd.port).start()
    gate.open = True
    account = irc_account(ircd, port=gate.port, reconnect_initial=2.0, reconnect_max=300.0)
    overrides = bridge_config({"net": account}, [("room", [{"account": "net", "target": "#room"}])])
    async with running(tmp_path, overrides) as srv:
        watcher = RawIRC(ircd.host, ircd.port, "watcher")
        await watcher.connect()
        await watcher.join("#room")
        await wait_joined(srv)
        up = time.monotonic()
        alice = await _publisher(srv)
        room = srv.channel("room")
        await alice.publish(room, "before")
        await watcher.wait_for(lambda m: m.trailing == "<alice> before")
        await asyncio.sleep(max(0.0, HEALTHY_AFTER + 0.5 - (time.monotonic() - up)))

        gate.open = False
        await watcher.close()
        down = time.monotonic()
        await asyncio.to_thread(ircd.stop)
        status = statuses(srv)[0]
        await wait_until(lambda: status.state != "joined", 10, "link down")
        await alice.publish(room, "while down")
        await wait_until(lambda: status.queued == 1, 5, "queued")
        await asyncio.sleep(max(0.0, down + 5.0 - time.monotonic()))

        await asyncio.to_thread(ircd.start)
        watcher = RawIRC(ircd.host, ircd.port, "watcher")
        await watcher.connect()
        await watcher.join("#room")
        accepting = time.monotonic()
        gate.open = True
        line = await watcher.wait_for(lambda m: m.trailing == "<alice> while down", 10)
        back = time.monotonic() - accepting
        assert back <= 2.0, f"relaying again {back:.2f} s after the server accepted connections"
        assert line.nick == "bridge" and status.dropped == 0
        await watcher.quit()
    await gate.close()
