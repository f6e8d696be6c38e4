"""IRC <-> Scalar relay against a real InspIRCd: text, /me, NOTICE, no echoes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.ircd import InspIRCd, RawIRC

from .irc_helpers import bridge_config, irc_account, wait_joined

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
