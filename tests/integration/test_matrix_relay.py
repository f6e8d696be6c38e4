"""Matrix adapter: relay both ways against a real Synapse."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.synapse_fixtures import MatrixUsers

from .matrix_helpers import (
    adapter,
    overrides,
    private_room,
    register_bot,
    scalar_events,
    send,
    wait_for,
    wait_room_messages,
    wait_up,
)

pytestmark = pytest.mark.synapse


async def test_text_emote_notice_and_html_both_ways(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    await owner.client.set_displayname("Owner Person")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(owner.server, bot, room_id)) as srv:
        await wait_up(srv)
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)

        await send(owner, room_id, {"msgtype": "m.text", "body": "hello"})
        await send(owner, room_id, {"msgtype": "m.emote", "body": "waves"})
        await send(owner, room_id, {"msgtype": "m.notice", "body": "a notice"})
        await send(
            owner,
            room_id,
            {
                "msgtype": "m.text",
                "body": "**bold** link",
                "format": "org.matrix.custom.html",
                "formatted_body": '<b>bold</b> <a href="https://example.org/x">link</a>',
            },
        )
        got = await scalar_events(alice, 4)
        assert [(e.kind, e.body) for e in got] == [
            ("text", "hello"),
            ("action", "waves"),
            ("notice", "a notice"),
            ("text", "bold link (https://example.org/x)"),
        ]
        assert {e.nick for e in got} == {"Owner Person"}
        assert {e.sender for e in got} == {"!matrix-mx@test.example"}
        assert {e.origin for e in got} == {f"matrix:mx/{room_id}"}
        assert all(e.ctype is None for e in got)

        await alice.publish(channel, "hi from scalar")
        await alice.publish(channel, "dances", kind="action")
        await alice.publish(channel, "automated", kind="notice")
        msgs = await wait_room_messages(
            owner.client, room_id, lambda m: sum(x["sender"] == bot for x in m) >= 3
        )
        mine = [m["content"] for m in msgs if m["sender"] == bot]
        assert [(c["msgtype"], c["body"]) for c in mine] == [
            ("m.text", "<alice> hi from scalar"),
            ("m.emote", "alice dances"),
            ("m.notice", "<alice> automated"),
        ]
        assert mine[0]["formatted_body"] == "<strong>alice</strong>: hi from scalar"

        # Nothing the bridge sent to Matrix comes back to Scalar: the next event
        # Scalar sees is the next Matrix message, not an echo.
        await send(owner, room_id, {"msgtype": "m.text", "body": "after"})
        (nxt,) = await scalar_events(alice, 1)
        assert (nxt.body, nxt.origin) == ("after", f"matrix:mx/{room_id}")
        st = adapter(srv).status()[0]
        await wait_for(lambda: st.relayed_in == 5, what="5 relayed in")
        assert st.relayed_out == 3
