"""The real-IRC-server fixtures work: clients talk, SASL works, floods die."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest

from .fixtures import IRCdFactory
from .ircd import InspIRCd, IRCLine, RawIRC, ServerStartError

pytestmark = pytest.mark.ircd


def _unique(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:8]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reaped child is gone; a zombie would still answer kill(0).
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.asyncio
async def test_two_clients_exchange_privmsg(ircd: InspIRCd) -> None:
    async with (
        RawIRC(ircd.host, ircd.port, "alice") as alice,
        RawIRC(ircd.host, ircd.port, "bob") as bob,
    ):
        await asyncio.gather(alice.connect(), bob.connect())  # ~1 s each, so in parallel
        await alice.join("#room")
        await bob.join("#room")
        await alice.wait_for(lambda m: m.command == "JOIN" and m.nick == "bob")

        await alice.privmsg("#room", "hello bob")
        got = await bob.wait_for(lambda m: m.command == "PRIVMSG")
        assert got.nick == "alice"
        assert got.params == ("#room", "hello bob")

        await bob.privmsg("alice", "hi in private")
        private = await alice.wait_for(lambda m: m.command == "PRIVMSG")
        assert (private.nick, private.params) == ("bob", ("alice", "hi in private"))
        # Without echo-message a sender does not get its own line back.
        assert bob.messages("#room") == [got] and not alice.messages("#room")
        await alice.quit()
        await bob.quit()


@pytest.mark.asyncio
async def test_echo_message_cap_is_offered_and_works(ircd: InspIRCd) -> None:
    async with RawIRC(ircd.host, ircd.port, "echoer") as client:
        await client.connect(caps=["echo-message", "server-time"])
        assert "echo-message" in client.caps
        assert {"echo-message", "server-time"} <= client.enabled_caps
        await client.join("#echo")
        mark = client.mark()
        await client.privmsg("#echo", "do I see myself?")
        echoed = await client.wait_for(lambda m: m.command == "PRIVMSG", since=mark)
        assert echoed.nick == "echoer" and echoed.trailing == "do I see myself?"
        assert "time" in echoed.tags
        await client.quit()


@pytest.mark.asyncio
async def test_restart_keeps_port_and_clients_reconnect(ircd: InspIRCd) -> None:
    port, first_pid = ircd.port, ircd.pid
    assert first_pid is not None
    client = RawIRC(ircd.host, port, "stayer")
    await client.connect()
    await client.join("#keep")

    ircd.stop()
    assert not ircd.running and ircd.pid is None
    assert not _pid_alive(first_pid)
    await client.wait_closed(5.0)
    await client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ircd.host, port), timeout=2.0).close()

    ircd.start()
    assert ircd.port == port and ircd.pid != first_pid
    async with RawIRC(ircd.host, port, "stayer") as again:
        welcome = await again.connect()
        assert welcome.params[0] == "stayer"
        await again.join("#keep")
        await again.quit()

    ircd.restart()
    assert ircd.port == port
    async with RawIRC(ircd.host, port, "third") as third:
        await third.connect()
        await third.quit()
    assert f"Client connecting on port {port} (class main): third!" in ircd.read_log()


@pytest.mark.asyncio
async def test_sasl_plain_with_registered_account(ircd_services: InspIRCd) -> None:
    account, password = _unique("acct"), "s3cret-" + uuid.uuid4().hex[:6]
    await ircd_services.register_nick_async(account, password)

    async with RawIRC(ircd_services.host, ircd_services.port, account + "_") as good:
        await good.connect(sasl=(account, password))
        assert good.caps.get("sasl") is not None and "PLAIN" in (good.caps["sasl"] or "")
        assert good.sasl_result is not None and good.sasl_result.command == "903"
        logged_in = good.received(lambda m: m.command == "900")
        assert logged_in and logged_in[0].params[2] == account
        mark = good.mark()
        await good.send(f"WHOIS {good.nick}")
        whois = await good.wait_for(lambda m: m.command in ("330", "318"), since=mark)
        assert whois.command == "330" and whois.params[2] == account
        await good.quit()

    async with RawIRC(ircd_services.host, ircd_services.port, _unique("bad")) as bad:
        welcome = await bad.connect(sasl=(account, "wrong-password"), require_sasl=False)
        assert bad.sasl_result is not None and bad.sasl_result.command == "904"
        assert welcome.command == "001"  # CAP END still completes registration
        assert not bad.received(lambda m: m.command == "900")
        await bad.quit()


@pytest.mark.asyncio
async def test_excess_flood_kills_a_flooding_client(ircd_factory: IRCdFactory) -> None:
    server = ircd_factory(fakelag="no", threshold=10, commandrate=1000)
    async with (
        RawIRC(server.host, server.port, "watcher") as watcher,
        RawIRC(server.host, server.port, "flooder") as flooder,
    ):
        await asyncio.gather(watcher.connect(), flooder.connect())
        await watcher.join("#flood")
        await flooder.join("#flood")
        mark = watcher.mark()

        burst = b"".join(b"PRIVMSG #flood :flood line %03d\r\n" % i for i in range(100))
        await flooder.send_raw(burst)

        def is_flood_error(m: IRCLine) -> bool:
            return m.command == "ERROR" and "Excess Flood" in m.trailing

        error = await flooder.wait_for(is_flood_error, 15.0)
        assert "Closing link" in error.trailing
        await flooder.wait_closed(5.0)
        quit_line = await watcher.wait_for(
            lambda m: m.command == "QUIT" and m.nick == "flooder", 10.0, since=mark
        )
        assert "Excess Flood" in quit_line.trailing
        seen = watcher.messages("#flood", since=mark)
        assert 0 < len(seen) < 100, f"watcher saw {len(seen)} of 100 lines"
        await watcher.quit()


def test_busy_port_is_reported_and_nothing_is_left_running(ircd_factory: IRCdFactory) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = ircd_factory(port=squatter.getsockname()[1], start=False)
        with pytest.raises(ServerStartError, match="could not bind"):
            server.start()
    assert not server.running and server.pid is None
