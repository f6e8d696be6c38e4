"""Rich events (protocol §11) across IRC, against a real InspIRCd with the IRCv3
modules (message-tags through ircv3_ctctags, msgid, echo-message): every row of
the table in docs/bridging.md, read back from an IRC client's lines."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridgehost.scalar.client import Client
from bridgehost.scalar.events import Event
from bridgehost.testing import running
from tests.servers.fixtures import IRCdFactory
from tests.servers.irc_lines import IRCLine
from tests.servers.ircd import InspIRCd, RawIRC

from .irc_helpers import (
    OPER_CONFIG,
    PLAIN_NICKS,
    bridge_config,
    irc_account,
    make_op,
    wait_joined,
    wait_until,
)

pytestmark = pytest.mark.ircd

TAGS = '<module name="ircv3_ctctags">'
CAPS = ("message-tags", "echo-message")


def rich_server(factory: IRCdFactory) -> InspIRCd:
    return factory(extra_config=(*OPER_CONFIG, TAGS))


def config(server: InspIRCd, **relay: Any) -> dict[str, Any]:
    account = irc_account(server, relay={**PLAIN_NICKS, **relay})
    return bridge_config({"net": account}, [("room", [{"account": "net", "target": "#room"}])])


async def next_event(client: Client, kind: str | None = None, within: float = 10.0) -> Event:
    """The next event (of `kind`) the client receives; others are skipped."""
    while True:
        event = await client.next_event(within)
        if kind is None or event.kind == kind:
            return event


async def said(irc: RawIRC, text: str, mark: int, within: float = 10.0) -> IRCLine:
    return await irc.wait_for(
        lambda m: m.command == "PRIVMSG" and m.trailing == text, since=mark, timeout=within
    )


async def test_scalar_rich_events_read_naturally_on_irc(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    server = rich_server(ircd_factory)
    overrides = config(server, deletes=True, membership=True, reaction_interval=1.0)
    async with (
        running(tmp_path, overrides) as srv,
        RawIRC(server.host, server.port, "alice") as irc,
    ):
        await irc.connect(caps=CAPS)
        await irc.join("#room")
        await wait_joined(srv)
        await make_op(irc, "#room")
        await irc.send("SAMODE #room +o bridge")
        room = srv.channel("room")
        bob, carol, dave, erin = [await srv.client(n) for n in ("bob", "carol", "dave", "erin")]
        for client in (bob, carol, dave, erin):
            await client.sub(room)

        # A reply names the one it answers and carries +draft/reply with the msgid.
        mark = irc.mark()
        await irc.privmsg("#room", "what time is it?")
        own = await irc.wait_for(lambda m: m.command == "PRIVMSG" and m.nick == "alice")
        question = await next_event(bob, "text")
        await bob.publish(room, "noon", reply_to=question.id)
        line = await said(irc, "<bob> alice: noon", mark)
        assert line.tags.get("+draft/reply") == own.tags["msgid"]

        # Edits: a compact correction when the change is small, else the new text.
        typo = await bob.publish(room, "I think this is teh answer to the question")
        await said(irc, "<bob> I think this is teh answer to the question", mark)
        await bob.edit(typo, "I think this is the answer to the question")
        await said(irc, "<bob> s/teh/the/", mark)
        await bob.edit(typo, "never mind, it is a completely different answer")
        await said(irc, "<bob> * never mind, it is a completely different answer", mark)

        # Reactions: one line at once, the next ones within the interval summed up.
        await carol.react(question, "👍")
        await said(irc, '* carol reacted 👍 to alice: "what time is it?"', mark)
        await dave.react(question, "❤")
        await erin.react(question, "👍")
        await said(irc, '* dave, erin reacted ❤ 👍 to alice: "what time is it?"', mark, 5)

        # Deletions (switched on here), topic, membership (switched on here).
        await bob.delete(typo)
        await said(irc, "* bob deleted a message", mark)
        await bob.set_topic(room, "lunch plans\nat noon")
        topic = await irc.wait_for(lambda m: m.command == "TOPIC", since=mark)
        assert (topic.nick, topic.params) == ("bridge", ("#room", "lunch plans at noon"))
        other = await srv.client("!other")
        await other.publish(room, "", kind="join", nick="frank")
        await said(irc, "* frank joined", mark)
        await other.publish(room, "gone fishing", kind="part", nick="frank")
        await said(irc, "* frank left (gone fishing)", mark)

        lines = [m.trailing for m in irc.messages("#room", since=mark) if m.nick == "bridge"]
        assert len(lines) == len(set(lines)) == 9  # each once, nothing else
        await irc.quit()


async def test_default_nicks_are_coloured_and_never_ping(tmp_path: Path, ircd: InspIRCd) -> None:
    account = irc_account(ircd)
    del account["relay"]  # the defaults: colours and anti-highlight on
    overrides = bridge_config({"net": account}, [("room", [{"account": "net", "target": "#room"}])])
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "bob") as irc:
        await irc.connect()
        await irc.join("#room")
        await wait_joined(srv)
        room = srv.channel("room")
        scalar = await srv.client("bob")
        await scalar.sub(room)
        await scalar.publish(room, "bob here")
        line = await irc.wait_for(lambda m: m.command == "PRIVMSG")
        assert line.trailing.startswith("<\x03") and line.trailing.endswith("\x03> bob here")
        assert "b\u200dob" in line.trailing and "bob>" not in line.trailing
        await irc.quit()


async def test_irc_replies_corrections_topic_and_membership_reach_scalar(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    server = rich_server(ircd_factory)
    overrides = config(server, sed_edits=True, membership=True)
    async with (
        running(tmp_path, overrides) as srv,
        RawIRC(server.host, server.port, "alice") as irc,
        RawIRC(server.host, server.port, "carol") as carol,
    ):
        await irc.connect(caps=CAPS)
        await irc.join("#room")
        await wait_joined(srv)
        room = srv.channel("room")
        bob = await srv.client("bob")
        await bob.sub(room)

        # An IRC reply (+draft/reply to the msgid of the bridge's line) is a Scalar reply.
        mark = irc.mark()
        hello = await bob.publish(room, "hello from scalar")
        relayed = await said(irc, "<bob> hello from scalar", mark)
        await irc.send(f"@+draft/reply={relayed.tags['msgid']} PRIVMSG #room :hi bob")
        reply = await next_event(bob, "text")
        assert (reply.body, reply.reply_to) == ("hi bob", hello.id)

        # `s/a/b/` right after one's own line edits it.
        await irc.privmsg("#room", "helo world")
        typo = await next_event(bob, "text")
        await irc.privmsg("#room", "s/helo/hello/")
        fix = await next_event(bob)
        assert (fix.kind, fix.body, fix.target, fix.nick) == (
            "edit",
            "hello world",
            typo.id,
            "alice",
        )
        await irc.privmsg("#room", "s/nothing/here/")  # changes nothing: an ordinary line
        plain = await next_event(bob)
        assert (plain.kind, plain.body) == ("text", "s/nothing/here/")

        # TOPIC by an operator: a `topic` event, which sets the channel's title.
        await make_op(irc, "#room")
        await irc.send("TOPIC #room :the IRC topic")
        topic = await next_event(bob, "topic")
        assert (topic.body, topic.nick) == ("the IRC topic", "alice")
        assert (await bob.sub(room)).title == "the IRC topic"

        # Joins, parts, kicks and quits of others.
        await carol.connect()
        await carol.join("#room")
        joined = await next_event(bob, "join")
        assert joined.nick == "carol"
        await carol.part("#room", "lunch")
        left = await next_event(bob, "part")
        assert (left.nick, left.body) == ("carol", "lunch")
        await carol.join("#room")
        await next_event(bob, "join")
        await irc.send("KICK #room carol :behave")
        kicked = await next_event(bob, "part")
        assert (kicked.nick, kicked.body) == ("carol", "kicked by alice: behave")
        await carol.join("#room")
        await next_event(bob, "join")
        await carol.quit("see you")
        quit_ = await next_event(bob, "part")
        assert (quit_.nick, quit_.body) == ("carol", "see you")

        # Quits with a netsplit's reason (`server server`; this InspIRCd adds no
        # "Quit:" prefix, so clients can give one) within the window: one summary.
        split = [RawIRC(server.host, server.port, f"user{i}") for i in range(6)]
        for user in split:
            await user.connect()
            await user.join("#room")
            await next_event(bob, "join")
        for user in split:
            await user.quit("hub.test leaf.test")
        summary = await next_event(bob, "part")
        assert summary.nick == "user0, user1, user2, user3, user4, user5"
        assert summary.body == "netsplit hub.test leaf.test"
        await irc.privmsg("#room", "after the split")
        after = await next_event(bob)
        assert (after.kind, after.body) == ("text", "after the split")  # one part, not six
        for user in split:
            await user.close()
        await irc.quit()


async def test_membership_is_not_relayed_by_default(tmp_path: Path, ircd: InspIRCd) -> None:
    overrides = config(ircd)
    async with (
        running(tmp_path, overrides) as srv,
        RawIRC(ircd.host, ircd.port, "alice") as irc,
        RawIRC(ircd.host, ircd.port, "carol") as carol,
    ):
        await irc.connect()
        await irc.join("#room")
        await wait_joined(srv)
        bob = await srv.client("bob")
        await bob.sub(srv.channel("room"))
        await carol.connect()
        await carol.join("#room")
        await carol.quit("bye")
        await irc.privmsg("#room", "after")
        event = await next_event(bob)
        assert (event.kind, event.body) == ("text", "after")
        await irc.quit()


async def test_memory_of_relayed_messages_survives_a_restart(
    tmp_path: Path, ircd: InspIRCd
) -> None:
    overrides = config(ircd)
    async with RawIRC(ircd.host, ircd.port, "alice") as irc:
        await irc.connect()
        await irc.join("#room")
        async with running(tmp_path, overrides) as srv:
            await wait_joined(srv)
            bob = await srv.client("bob")
            room = srv.channel("room")
            await bob.sub(room)
            await irc.privmsg("#room", "the first message of the day")
            first = await next_event(bob, "text")
            typo = await bob.publish(room, "so I wrote teh report and sent it off")
            await said(irc, "<bob> so I wrote teh report and sent it off", 0)
        mark = irc.mark()
        async with running(tmp_path, overrides) as srv:
            await wait_joined(srv)
            bob = await srv.client("bob")
            carol = await srv.client("carol")
            room = srv.channel("room")
            await bob.sub(room)
            await carol.sub(room)
            await carol.react(first, "🎉")
            await said(irc, '* carol reacted 🎉 to alice: "the first message of the day"', mark)
            await bob.edit(typo, "so I wrote the report and sent it off")
            await said(irc, "<bob> s/teh/the/", mark)
            await wait_until(lambda: len(irc.messages("#room", since=mark)) == 2, 2)
        await asyncio.sleep(0)
        await irc.quit()
