"""Bots through the bridges: `!ping` typed in IRC or in Matrix gets `pong`
back in both, against a real InspIRCd and a real Synapse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridgehost.testing import running
from tests.servers.ircd import InspIRCd, IRCLine, RawIRC
from tests.servers.synapse_fixtures import MatrixUsers

from .irc_helpers import irc_account, wait_until
from .matrix_helpers import BOT_PASSWORD, private_room, register_bot, send, wait_room_messages

pytestmark = [pytest.mark.ircd, pytest.mark.synapse]

CHANNEL = "#room@test.example"


def config(ircd: InspIRCd, homeserver: str, matrix_bot: str, room_id: str) -> dict[str, Any]:
    return {
        "server": {"limits": {"rate": 100000, "burst": 100000}},
        "accounts": {
            "net": irc_account(ircd),
            "mx": {
                "type": "matrix",
                "homeserver": homeserver,
                "user_id": matrix_bot,
                "password": BOT_PASSWORD,
                "reconnect_initial": 0.1,
                "reconnect_max": 1.0,
            },
        },
        "bridges": [
            {
                "channel": CHANNEL,
                "links": [
                    {"account": "net", "target": "#room"},
                    {"account": "mx", "target": room_id},
                ],
            }
        ],
        "bots": [{"plugin": "ping", "id": "!ping@test.example", "topics": [CHANNEL]}],
    }


def is_pong(line: IRCLine) -> bool:
    return line.command == "NOTICE" and line.trailing.endswith("pong")


def pongs(messages: list[dict[str, Any]], bot: str) -> list[dict[str, Any]]:
    return [
        m["content"]
        for m in messages
        if m["sender"] == bot and m["content"].get("body", "").endswith("pong")
    ]


async def test_ping_from_irc_and_from_matrix_is_answered_in_both(
    tmp_path: Path, ircd: InspIRCd, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    matrix_bot = await register_bot(owner.server)
    room_id = await private_room(owner, matrix_bot)
    overrides = config(ircd, owner.server.url, matrix_bot, room_id)
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "alice") as irc:
        await irc.connect()
        await irc.join("#room")
        await wait_until(
            lambda: (
                len(srv.app.link_statuses()) == 2
                and all(st.state in ("joined", "up") for st in srv.app.link_statuses())
            ),
            30,
            "IRC link joined and Matrix link up",
        )
        scalar = await srv.client("bob")
        await scalar.sub(CHANNEL)

        mark = irc.mark()
        await irc.privmsg("#room", "!ping")
        line = await irc.wait_for(is_pong, since=mark, timeout=15)
        assert line.params[0] == "#room"
        msgs = await wait_room_messages(
            owner.client, room_id, lambda m: len(pongs(m, matrix_bot)) >= 1, within=15
        )
        (first,) = pongs(msgs, matrix_bot)
        assert first["msgtype"] == "m.notice"

        mark = irc.mark()
        asked = await send(owner, room_id, {"msgtype": "m.text", "body": "!ping"})
        line = await irc.wait_for(is_pong, since=mark, timeout=15)
        assert line.params[0] == "#room"
        msgs = await wait_room_messages(
            owner.client, room_id, lambda m: len(pongs(m, matrix_bot)) >= 2, within=15
        )
        second = pongs(msgs, matrix_bot)[1]
        assert second["msgtype"] == "m.notice"
        # the Matrix side sees the answer as a reply to the user's message
        assert second["m.relates_to"]["m.in_reply_to"]["event_id"] == asked

        # the Scalar side saw both questions and both answers, nothing more
        seen = []
        while len(seen) < 4:
            event = await scalar.next_event(10)
            seen.append((event.sender, event.kind, event.body))
        assert seen == [
            ("!irc-net@test.example", "text", "!ping"),
            ("!ping@test.example", "notice", "pong"),
            ("!matrix-mx@test.example", "text", "!ping"),
            ("!ping@test.example", "notice", "pong"),
        ]
        await irc.quit()
