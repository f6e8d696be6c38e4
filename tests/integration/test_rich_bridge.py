"""IRC and Matrix bridged together (real InspIRCd and Synapse): bursts reach
Matrix fast, long messages reach IRC whole under strict flood limits, and every
kind of event sent from every side arrives once everywhere, without loops."""

from __future__ import annotations

import asyncio
import html
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nio import RoomPreset

from bridgehost.scalar.client import Client
from bridgehost.scalar.events import Event
from bridgehost.testing import running
from tests.servers.fixtures import IRCdFactory
from tests.servers.ircd import InspIRCd, RawIRC
from tests.servers.synapse_fixtures import MatrixUsers
from tests.web.helpers import get

from .irc_helpers import OPER_CONFIG, PLAIN_NICKS, irc_account, make_op, wait_until
from .matrix_helpers import (
    overrides,
    private_room,
    raise_power,
    register_bot,
    room_events,
    room_messages,
    send,
    wait_events,
    wait_room_messages,
)

pytestmark = [pytest.mark.synapse, pytest.mark.ircd]

TAGS = '<module name="ircv3_ctctags">'


def with_irc(config: dict[str, Any], server: InspIRCd, **account: Any) -> dict[str, Any]:
    """`config` (one Matrix link in #room) plus an IRC link to #irc."""
    config["accounts"]["irc"] = irc_account(server, **account)
    config["bridges"][0]["links"].append({"account": "irc", "target": "#irc"})
    return config


def count(history: list[Event], kind: str) -> int:
    return sum(e.kind == kind for e in history)


def tally(history: list[Event]) -> dict[str | None, dict[str, int]]:
    """Events per side (origin network: None for Scalar itself) and kind."""
    out: dict[str | None, Counter[str]] = {}
    for e in history:
        side = e.origin.split(":", 1)[0] if e.origin else None
        out.setdefault(side, Counter())[e.kind] += 1
    return {side: dict(kinds) for side, kinds in out.items()}


def bot_messages(events: list[dict[str, Any]], bot: str) -> list[dict[str, Any]]:
    return [e for e in events if e["sender"] == bot and e["type"] == "m.room.message"]


def tally_matrix(events: list[dict[str, Any]], bot: str) -> dict[str, int]:
    """The bridge's events in the room by type (its join and power level aside)."""
    kinds = ("m.room.message", "m.reaction", "m.room.redaction", "m.room.topic")
    return dict(Counter(e["type"] for e in events if e["sender"] == bot and e["type"] in kinds))


async def wait_history(
    client: Client, room: str, check: Callable[[list[Event]], bool], within: float = 60
) -> list[Event]:
    deadline = time.monotonic() + within
    while True:
        history = [e async for e in client.history_after(room, 0)]
        if check(history):
            return history
        if time.monotonic() > deadline:
            raise AssertionError(f"history not as expected: {tally(history)}")
        await asyncio.sleep(0.2)


async def send_all(user: Any, room_id: str, bodies: list[str]) -> list[str]:
    return [await send(user, room_id, {"msgtype": "m.text", "body": b}) for b in bodies]


async def all_joined(srv: Any) -> None:
    await wait_until(
        lambda: all(st.state == "joined" for st in srv.app.link_statuses()),
        20,
        "every link joined",
    )


@pytest.mark.alone
async def test_a_thousand_line_irc_burst_is_in_matrix_within_two_seconds(
    tmp_path: Path, matrix_users: MatrixUsers, ircd_factory: IRCdFactory
) -> None:
    server = ircd_factory(threshold=100000, commandrate=10000000)
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    config = with_irc(overrides(owner.server, bot, room_id), server)
    lines = [f"line {i} of the paste" for i in range(1000)]
    async with running(tmp_path, config) as srv, RawIRC(server.host, server.port, "u1") as u1:
        await u1.connect()
        await u1.join("#irc")
        await all_joined(srv)
        # An IRC line addressing a room member by name pings them in Matrix.
        await u1.privmsg("#irc", f"{owner.localpart}: a paste is coming")
        msgs = await wait_room_messages(
            owner.client, room_id, lambda m: any(x["sender"] == bot for x in m)
        )
        (hello,) = [m["content"] for m in msgs if m["sender"] == bot]
        assert hello["m.mentions"] == {"user_ids": [owner.user_id]}
        assert f"https://matrix.to/#/{owner.user_id}" in hello["formatted_body"]
        # Written in chunks, as a client pastes: one 30 KB write is read by InspIRCd
        # in part at once and the rest ~2 s later (its own quirk; a plain client sees
        # the same), which would measure the server, not the bridge.
        started = time.monotonic()
        for first in range(0, len(lines), 50):
            chunk = lines[first : first + 50]
            await u1.send_raw(b"".join(f"PRIVMSG #irc :{t}\r\n".encode() for t in chunk))
            await asyncio.sleep(0.002)

        # In the room = the homeserver accepted the sends carrying every line.
        st = next(s for s in srv.app.link_statuses() if s.account == "mx")
        await wait_until(lambda: st.relayed_out == 1 + len(lines), 15, "1,000 lines in Matrix")
        elapsed = time.monotonic() - started
        msgs = await room_messages(owner.client, room_id)
        bodies = [m["content"]["body"] for m in msgs if m["sender"] == bot][1:]
        got = "\n".join(b.removeprefix("<u1> ") for b in bodies).split("\n")
        assert got == lines  # every line, in order, once
        print(f"\n1,000 IRC lines in Matrix after {elapsed:.2f} s as {len(bodies)} messages")
        assert elapsed <= 2.0, f"the burst took {elapsed:.2f} s to reach Matrix"
        assert len(bodies) < 100
        await u1.quit()


@pytest.mark.slow
@pytest.mark.parametrize("public", [False, True], ids=["no-public-url", "public-url"])
async def test_a_3000_byte_matrix_message_reaches_irc_whole_under_strict_flood_limits(
    tmp_path: Path, matrix_users: MatrixUsers, ircd_factory: IRCdFactory, public: bool
) -> None:
    # The acceptance profile: no fakelag, 10 lines of credit, 1.6 lines/s back.
    server = ircd_factory(fakelag="no", threshold=10, commandrate=1600)
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    config = with_irc(overrides(owner.server, bot, room_id), server, relay=dict(PLAIN_NICKS))
    del config["accounts"]["irc"]["flood"]  # the default pacing
    if public:
        config["http"] = {"listen": "127.0.0.1:0", "public_url": "https://chat.example"}
    paragraph = "Grüße aus Köln, naïve café owners say: " + "ünïcödé wörds and more " * 16 + "🎉"
    body = "\n".join([*(f"{i}: {paragraph}" for i in range(6)), "the end"])
    assert 2900 <= len(body.encode()) <= 3300
    async with (
        running(tmp_path, config) as srv,
        RawIRC(server.host, server.port, "watcher") as irc,
    ):
        await irc.connect()
        await irc.join("#irc")
        await all_joined(srv)
        await send(owner, room_id, {"msgtype": "m.text", "body": body})
        name = owner.localpart
        if public:
            link = await irc.wait_for(lambda m: "https://chat.example/m/" in m.trailing, 30)
            got = [m.trailing for m in irc.messages("#irc")]
            assert len(got) == 10  # max_lines, the last one the link
            event_hex = link.trailing.rsplit("/m/", 1)[1].rstrip("]")
            assert srv.app.web is not None
            status, page, _ = await get(f"{srv.app.web.url}/m/{event_hex}")
            assert status == 200 and html.escape(body, quote=False) in page
            shown = "".join(t.removeprefix(f"<{name}> ") for t in got[:9])
            assert body.replace("\n", "").startswith(shown)
        else:
            await irc.wait_for(lambda m: m.trailing.endswith("the end"), 60)
            got = [m.trailing.removeprefix(f"<{name}> ") for m in irc.messages("#irc")]
            assert "".join(got) == body.replace("\n", "")  # not a character lost
            assert len(got) >= 12  # long lines were split, paced, none dropped
        assert all(len(m.raw.encode()) + 2 <= 512 for m in irc.messages("#irc"))
        st = next(s for s in srv.app.link_statuses() if s.account == "irc")
        assert st.state == "joined"  # never killed for flooding
        await irc.quit()


N = int(os.environ.get("BRIDGEHOST_TEST_N", "100"))
"""Of every kind, from every side, as the issue asks: the suite's longest test
(Synapse takes ~25 ms a send and the bridge sends ~14 N events to Matrix, in
order); BRIDGEHOST_TEST_N=20 makes it quick while working on it."""


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_every_kind_from_every_side_arrives_once_everywhere_without_loops(
    tmp_path: Path, matrix_users: MatrixUsers, ircd_factory: IRCdFactory
) -> None:
    server = ircd_factory(threshold=100000, commandrate=10000000, extra_config=(*OPER_CONFIG, TAGS))
    owner = await matrix_users.new("owner")
    guest = await matrix_users.new("guest")
    bot = await register_bot(owner.server)
    created = await owner.client.room_create(preset=RoomPreset.public_chat, invite=[bot])
    room_id = created.room_id
    every = {"membership": True}
    config = overrides(owner.server, bot, room_id, account={"relay": {**every, "merge_window": 0}})
    irc_relay = {**PLAIN_NICKS, **every, "deletes": True, "sed_edits": True}
    config = with_irc(config, server, relay={**irc_relay, "reaction_interval": 0})
    async with (
        running(tmp_path, config) as srv,
        RawIRC(server.host, server.port, "u1") as u1,
        RawIRC(server.host, server.port, "u2") as u2,
    ):
        await u1.connect(caps=("message-tags", "echo-message"))
        await u1.join("#irc")
        await all_joined(srv)
        await make_op(u1, "#irc")
        await u1.send("SAMODE #irc +o bridge")
        await raise_power(owner, room_id, bot)
        await u2.connect()
        room = srv.channel("room")
        alice = await srv.client("alice")
        other = await srv.client("!other")
        await alice.sub(room)
        start = time.monotonic()

        # --- 1: N texts from each side -----------------------------------------------
        async def irc_texts() -> list[str]:
            msgids = []
            for i in range(N):
                mark = u1.mark()
                text = f"i-text-{i}"
                await u1.privmsg("#irc", text)
                echo = await u1.wait_for(lambda m, t=text: m.trailing == t, since=mark)
                msgids.append(echo.tags["msgid"])
                await u1.privmsg("#irc", "s/text/TEXT/")  # right after: an edit
            return msgids

        a_texts = [await alice.publish(room, f"a-text-{i}") for i in range(N)]
        m_ids, irc_msgids = await asyncio.gather(
            send_all(owner, room_id, [f"m-text-{i}" for i in range(N)]), irc_texts()
        )
        history = await wait_history(
            alice, room, lambda h: count(h, "text") == 3 * N and count(h, "edit") == N
        )
        by_body = {e.body: e for e in history}
        bot_events = await wait_events(
            owner.client, room_id, lambda e: len(bot_messages(e, bot)) >= 3 * N, within=300
        )
        relayed = {m["content"]["body"]: m["event_id"] for m in bot_messages(bot_events, bot)}

        # --- 2: replies, edits, reactions, topics, membership from each side ----------
        async def scalar_side() -> None:
            for i in range(N):
                await alice.publish(room, f"a-reply-{i}", reply_to=by_body[f"m-text-{i}"].id)
                await alice.edit(a_texts[i], f"a-text-{i} edited")
                await alice.react(by_body[f"m-text-{i}"], "👍")
                await alice.set_topic(room, f"a-topic-{i}")
                await other.publish(room, "", kind="join", nick=f"s-user-{i}")
                await other.publish(room, "bye", kind="part", nick=f"s-user-{i}")

        async def matrix_side() -> None:
            for i in range(N):
                await send(
                    owner,
                    room_id,
                    {
                        "msgtype": "m.text",
                        "body": f"m-reply-{i}",
                        "m.relates_to": {"m.in_reply_to": {"event_id": m_ids[i]}},
                    },
                )
                await send(
                    owner,
                    room_id,
                    {
                        "msgtype": "m.text",
                        "body": f" * m-text-{i} edited",
                        "m.new_content": {"msgtype": "m.text", "body": f"m-text-{i} edited"},
                        "m.relates_to": {"rel_type": "m.replace", "event_id": m_ids[i]},
                    },
                )
                relates = {
                    "rel_type": "m.annotation",
                    "event_id": relayed[f"<alice> a-text-{i}"],
                    "key": "🎉",
                }
                await owner.client.room_send(room_id, "m.reaction", {"m.relates_to": relates})
                await owner.client.room_put_state(
                    room_id, "m.room.topic", {"topic": f"m-topic-{i}"}
                )
                await guest.client.join(room_id)
                await guest.client.room_leave(room_id)

        async def irc_side() -> None:
            for i in range(N):
                await u1.send(f"@+draft/reply={irc_msgids[i]} PRIVMSG #irc :i-reply-{i}")
                await u1.send(f"TOPIC #irc :i-topic-{i}")
                await u2.send("JOIN #irc")
                await u2.send("PART #irc :later")

        await asyncio.gather(scalar_side(), matrix_side(), irc_side())

        # --- 3: deletions (IRC has none to send) ------------------------------------
        history = await wait_history(alice, room, lambda h: count(h, "text") == 6 * N)
        replies = {e.body: e for e in history if "-reply-" in e.body}
        for i in range(N):
            await alice.delete(replies[f"a-reply-{i}"])
        m_replies = await room_events(owner.client, room_id)
        m_reply_ids = {
            e["content"]["body"]: e["event_id"]
            for e in m_replies
            if e["sender"] == owner.user_id and e["type"] == "m.room.message"
        }
        for i in range(N):
            await owner.client.room_redact(room_id, m_reply_ids[f"m-reply-{i}"])

        # --- everything arrived once, everywhere ----------------------------------------
        expected = {
            None: {
                "text": 2 * N,
                "edit": N,
                "react": N,
                "topic": N,
                "delete": N,
                "join": N,
                "part": N,
            },
            "irc": {"text": 2 * N, "edit": N, "topic": N, "join": N, "part": N},
            "matrix": {
                "text": 2 * N,
                "edit": N,
                "react": N,
                "topic": N,
                "delete": N,
                "join": N,
                "part": N,
            },
        }
        history = await wait_history(alice, room, lambda h: tally(h) == expected, within=120)
        bot_kinds = {
            "m.room.message": 2 * (2 * N + N + 2 * N),  # texts, edits, joins/parts
            "m.reaction": N,
            "m.room.redaction": N,
            "m.room.topic": 2 * N,
        }
        events = await wait_events(
            owner.client,
            room_id,
            lambda e: tally_matrix(e, bot) == bot_kinds,
            within=600,
        )
        lines = [m for m in u1.messages("#irc") if m.nick == "bridge"]
        want_lines = 2 * (2 * N + N + N + N + 2 * N)  # texts, edits, deletes, reactions, joins
        await wait_until(
            lambda: len([m for m in u1.messages("#irc") if m.nick == "bridge"]) >= want_lines,
            60,
            "every line on IRC",
        )
        await asyncio.sleep(1.0)  # a loop or a duplicate would show up now
        assert tally([e async for e in alice.history_after(room, 0)]) == expected
        events = await room_events(owner.client, room_id)
        assert tally_matrix(events, bot) == bot_kinds
        lines = [
            m.trailing for m in u1.messages("#irc") if m.command == "PRIVMSG" and m.nick == "bridge"
        ]
        assert len(lines) == want_lines
        for i in range(N):
            for text in (f"a-text-{i}", f"m-text-{i}", f"a-reply-{i}", f"m-reply-{i}"):
                assert sum(line.endswith(text) for line in lines) == 1, text
        assert not any("i-text-" in line or "i-reply-" in line for line in lines)
        bodies = [e["content"].get("body", "") for e in bot_messages(events, bot)]
        assert not any("m-text-" in b or "m-reply-" in b for b in bodies)
        topics = [m for m in u1.lines if m.command == "TOPIC" and m.nick == "bridge"]
        assert len(topics) == 2 * N
        print(f"\n{N} of each kind from each side in {time.monotonic() - start:.1f} s")
        await u1.quit()
