"""The chat page with a channel bridged to real InspIRCd and real Synapse.

An IRC user and a Matrix user speak; the page shows their nicks and the
network each came through; the page's user answers and both read it on
their own network. Screenshot: .cache/artifacts/web/chat/11-bridged-*.png
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.integration.irc_helpers import irc_account
from tests.integration.matrix_helpers import (
    overrides,
    private_room,
    register_bot,
    room_messages,
    send,
    wait_for,
)
from tests.servers.ircd import InspIRCd, RawIRC
from tests.servers.synapse_fixtures import MatrixUsers
from tests.web.browser import chromium, watched_page
from tests.web.chat_page import ChatPage
from tests.web.helpers import with_http

pytestmark = [pytest.mark.ircd, pytest.mark.synapse, pytest.mark.slow]


async def test_irc_and_matrix_people_appear_with_their_nicks_and_hear_back(
    tmp_path: Path, ircd: InspIRCd, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("mona")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    config = overrides(owner.server, bot, room_id, channel="#bridged@test.example")
    config["accounts"]["irc"] = irc_account(ircd, relay={})  # nicks coloured, as deployed
    config["bridges"][0]["links"].append({"account": "irc", "target": "#bridged"})
    async with (
        running(tmp_path, with_http(config)) as srv,
        RawIRC(ircd.host, ircd.port, "ivan") as ivan,
        chromium() as browser,
    ):
        await ivan.connect()
        await ivan.join("#bridged")
        await wait_for(
            lambda: all(st.state == "joined" for st in srv.app.link_statuses()),
            within=20,
            what="the IRC and Matrix links joined",
        )
        _, password = await srv.add_user("alice", "alice-password")
        base = srv.app.web.url
        page = ChatPage(await watched_page(browser), base, "alice")
        await page.login("alice", password)
        await page.join("bridged")

        await ivan.privmsg("#bridged", "hello from IRC")
        from_irc = await page.sees("hello from IRC")
        assert await from_irc.locator(".who").inner_text() == "ivan"
        via = from_irc.locator(".via")
        assert await via.inner_text() == "irc:irc"
        assert (await via.get_attribute("title") or "").startswith("irc:irc/#bridged")
        await send(owner, room_id, {"msgtype": "m.text", "body": "hello from Matrix"})
        from_matrix = await page.sees("hello from Matrix")
        mona = owner.localpart
        assert mona in await from_matrix.locator(".who").inner_text()
        via = from_matrix.locator(".via")
        assert await via.inner_text() == "matrix:mx"
        assert (await via.get_attribute("title") or "").startswith(f"matrix:mx/{room_id}")

        await page.say("hello IRC and Matrix, from the browser")
        mark = "hello IRC and Matrix, from the browser"
        line = await ivan.wait_for(
            lambda m: m.command == "PRIVMSG" and mark in m.trailing, timeout=15
        )
        assert "alice" in line.trailing.replace("\u200d", "")

        async def matrix_has_it() -> bool:
            msgs = await room_messages(owner.client, room_id)
            return any(mark in m["content"].get("body", "") for m in msgs)

        await wait_for(matrix_has_it, within=15, what="the reply in the Matrix room")
        await page.shot("11-bridged")
        assert page.errors() == [], page.errors()
