"""IRC <-> Scalar relay against a real InspIRCd: text, /me, NOTICE, no echoes."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.ircd import InspIRCd, RawIRC

from .irc_helpers import bridge_config, irc_account, irc_adapter, wait_joined

pytestmark = pytest.mark.ircd


async def test_relay_both_ways_with_action_and_notice(tmp_path: Path, ircd: InspIRCd) -> None:
    overrides = bridge_config(
        {"net": irc_account(ircd)}, [("room", [{"account": "net", "target": "#room"}])]
    )
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "alice") as irc:
        await irc.connect()
        await irc.join("#room")
        await wait_joined(srv)
        scalar = await srv.client("bob")
        room = srv.channel("room")
        await scalar.sub(room)

        await irc.privmsg("#room", "hello from irc")
        event = await scalar.next_event(5)
        assert (event.body, event.kind, event.nick) == ("hello from irc", "text", "alice")
        assert event.sender == "!irc-net@test.example"
        assert event.origin == "irc:net/#room"

        await irc.send("PRIVMSG #room :\x01ACTION waves\x01")
        event = await scalar.next_event(5)
        assert (event.body, event.kind, event.nick) == ("waves", "action", "alice")

        await irc.notice("#room", "a notice")
        event = await scalar.next_event(5)
        assert (event.body, event.kind) == ("a notice", "notice")

        mark = irc.mark()
        await scalar.publish(room, "hello from scalar")
        line = await irc.wait_for(lambda m: m.command == "PRIVMSG", since=mark)
        assert line.nick == "bridge"
        assert line.params == ("#room", "<bob> hello from scalar")

        mark = irc.mark()
        await scalar.publish(room, "jumps", kind="action")
        line = await irc.wait_for(lambda m: m.command == "PRIVMSG", since=mark)
        assert line.trailing == "\x01ACTION bob jumps\x01"

        mark = irc.mark()
        await scalar.publish(room, "fyi", kind="notice")
        line = await irc.wait_for(lambda m: m.command == "NOTICE", since=mark)
        assert line.params == ("#room", "<bob> fyi")
        await irc.quit()


async def test_own_lines_and_echo_message_never_come_back(tmp_path: Path, ircd: InspIRCd) -> None:
    overrides = bridge_config(
        {"net": irc_account(ircd)}, [("room", [{"account": "net", "target": "#room"}])]
    )
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "alice") as irc:
        await irc.connect()
        await irc.join("#room")
        await wait_joined(srv)
        adapter = irc_adapter(srv, "net")
        assert adapter.conn is not None and "echo-message" in adapter.conn.caps
        scalar = await srv.client("bob")
        room = srv.channel("room")
        await scalar.sub(room)
        for i in range(5):
            await scalar.publish(room, f"scalar {i}")
        await irc.wait_for(lambda m: m.trailing == "<bob> scalar 4")
        await irc.privmsg("#room", "sentinel")
        event = await scalar.next_event(5)
        # The server echoed the bridge's five lines back to it: none was relayed.
        assert (event.nick, event.body) == ("alice", "sentinel")
        with pytest.raises(TimeoutError):
            await scalar.next_event(0.3)
        assert [m.trailing for m in irc.messages("#room")] == [
            f"<bob> scalar {i}" for i in range(5)
        ]
        assert adapter.status()[0].relayed_in == 1


async def test_long_and_multiline_bodies_fit_512_bytes(tmp_path: Path, ircd: InspIRCd) -> None:
    account = irc_account(ircd, max_lines=20)
    overrides = bridge_config({"net": account}, [("room", [{"account": "net", "target": "#room"}])])
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "alice") as irc:
        await irc.connect()
        await irc.join("#room")
        await wait_joined(srv)
        scalar = await srv.client("bob")
        room = srv.channel("room")
        await scalar.sub(room)
        long = "".join(chr(0x4E00 + i % 500) for i in range(1000)) + "😀" * 100  # 3400 bytes
        mark = irc.mark()
        await scalar.publish(room, f"first line\n{long}\nlast line")
        await irc.wait_for(lambda m: m.trailing == "<bob> last line", since=mark)
        got = irc.messages("#room", since=mark)
        assert all(len(m.raw.encode()) + 2 <= 512 for m in got)
        texts = [m.trailing.removeprefix("<bob> ") for m in got]
        assert texts[0] == "first line" and texts[-1] == "last line"
        assert "".join(texts[1:-1]) == long  # cut at character boundaries only
        assert len(got) >= 10

        # Past max_lines with no public URL to link to, every line is still sent.
        mark = irc.mark()
        await scalar.publish(room, "\n".join(f"row {i}" for i in range(30)))
        await irc.wait_for(lambda m: m.trailing == "<bob> row 29", since=mark)
        got = [m.trailing for m in irc.messages("#room", since=mark)]
        assert got == [f"<bob> row {i}" for i in range(30)]


async def test_crlf_and_nul_never_inject_commands(tmp_path: Path, ircd: InspIRCd) -> None:
    overrides = bridge_config(
        {"net": irc_account(ircd)}, [("room", [{"account": "net", "target": "#room"}])]
    )
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "alice") as irc:
        await irc.connect()
        await irc.join("#room")
        await wait_joined(srv)
        adapter = irc_adapter(srv, "net")
        conn = adapter.conn
        scalar = await srv.client("bob")
        room = srv.channel("room")
        await scalar.sub(room)
        mark = irc.mark()
        await scalar.publish(room, "hi\r\nQUIT :pwned")
        await scalar.publish(room, "a\x00JOIN #evil\rPART #room")
        await scalar.publish(room, "still here", nick=None)
        await irc.wait_for(lambda m: m.trailing == "<bob> still here", since=mark)
        texts = [m.trailing for m in irc.messages("#room", since=mark)]
        assert texts == [
            "<bob> hi",
            "<bob> QUIT :pwned",
            "<bob> aJOIN #evil",
            "<bob> PART #room",
            "<bob> still here",
        ]
        assert not irc.received(lambda m: m.command in ("QUIT", "PART"), since=mark)
        assert adapter.conn is conn and conn is not None and conn.alive
        assert adapter.connects == 1
        assert [s.state for s in adapter.status()] == ["joined"]


async def test_formatting_stripped_or_markdown_and_bad_utf8_replaced(
    tmp_path: Path, ircd: InspIRCd
) -> None:
    overrides = bridge_config(
        {"net": irc_account(ircd)},
        [
            ("plain", [{"account": "net", "target": "#plain"}]),
            ("md", [{"account": "net", "target": "#md", "markdown": True}]),
        ],
    )
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "alice") as irc:
        await irc.connect()
        await irc.join("#plain")
        await irc.join("#md")
        await wait_joined(srv)
        scalar = await srv.client("bob")
        await scalar.sub(srv.channel("plain"))
        await scalar.sub(srv.channel("md"))
        styled = b"\x02bold\x02 \x0304,01red\x03 \x1ditalic\x1d \x1funder\x1f\x0f end"
        await irc.send_raw(b"PRIVMSG #plain :" + styled + b"\r\n")
        event = await scalar.next_event(5)
        assert (event.body, event.ctype) == ("bold red italic under end", None)
        await irc.send_raw(b"PRIVMSG #md :" + styled + b"\r\n")
        event = await scalar.next_event(5)
        assert (event.body, event.ctype) == ("**bold** red *italic* under end", "text/markdown")
        await irc.send_raw(b"PRIVMSG #plain :caf\xe9 \xff\xfe ok \xc3\xa9\r\n")
        event = await scalar.next_event(5)
        assert event.body == "caf\ufffd \ufffd\ufffd ok \u00e9"
        await irc.privmsg("#plain", "after")
        assert (await scalar.next_event(5)).body == "after"


async def test_latency_stays_low_after_the_bridge_spoke(tmp_path: Path, ircd: InspIRCd) -> None:
    """InspIRCd sends with Nagle: without immediate ACKs from the bridge, a line
    to it right after an echo of its own waits for a delayed ACK (~40 ms)."""
    overrides = bridge_config(
        {"net": irc_account(ircd)}, [("room", [{"account": "net", "target": "#room"}])]
    )
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "alice") as irc:
        await irc.connect()
        await irc.join("#room")
        await wait_joined(srv)
        scalar = await srv.client("bob")
        room = srv.channel("room")
        await scalar.sub(room)
        loop = asyncio.get_running_loop()
        delays = []
        for i in range(15):
            mark = irc.mark()
            await scalar.publish(room, f"out {i}")
            await irc.wait_for(lambda m: m.command == "PRIVMSG", since=mark)
            await asyncio.sleep(0.002)
            start = loop.time()
            await irc.privmsg("#room", f"in {i}")
            assert (await scalar.next_event(5)).body == f"in {i}"
            delays.append(loop.time() - start)
        assert statistics.median(delays) < 0.02, delays
