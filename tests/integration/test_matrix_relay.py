"""Matrix adapter: relay both ways against a real Synapse."""

from __future__ import annotations

import asyncio
import io
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.synapse_fixtures import MatrixUser, MatrixUsers, SynapseFactory

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


async def displayname(user: MatrixUser, room_id: str) -> bool:
    state = await user.client.room_get_state_event(room_id, "m.room.member", user.user_id)
    return bool(state.content.get("displayname") == "Renamed")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def tags_of(fragment: str) -> _Tags:
    parser = _Tags()
    parser.feed(fragment)
    parser.close()
    return parser


async def test_html_in_scalar_bodies_reaches_matrix_as_text(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(owner.server, bot, room_id)) as srv:
        await wait_up(srv)
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)
        evil = "<script>alert(1)</script> <img src=x onerror=alert(1)>"
        await alice.publish(channel, evil)
        await alice.publish(channel, "**bold** " + evil, ctype="text/markdown")
        await alice.publish(channel, "[click](javascript:alert(1)) _em_", ctype="text/markdown")
        msgs = await wait_room_messages(
            owner.client, room_id, lambda m: sum(x["sender"] == bot for x in m) >= 3
        )
        plain, md, link = (m["content"] for m in msgs if m["sender"] == bot)
        assert plain["body"] == "<alice> " + evil
        assert md["body"] == "<alice> **bold** " + evil
        for content in (plain, md, link):
            found = tags_of(content["formatted_body"])
            assert set(found.tags) <= {"strong", "em"}, found.tags
            assert found.attrs == []
        assert "&lt;script&gt;" in plain["formatted_body"]
        assert md["formatted_body"].startswith("<strong>alice</strong>: <strong>bold</strong> ")
        assert "&lt;img src=x onerror=alert(1)&gt;" in md["formatted_body"]
        assert "<em>em</em>" in link["formatted_body"]


async def test_markdown_link_gets_markdown_and_display_names(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    config = overrides(owner.server, bot, room_id, link={"markdown": True})
    async with running(tmp_path, config) as srv:
        await wait_up(srv)
        alice = await srv.client("alice")
        await alice.sub(srv.channel("room"))
        html = "<b>bold</b> and <code>x*y</code>"
        await send(
            owner,
            room_id,
            {
                "msgtype": "m.text",
                "body": "bold",
                "format": "org.matrix.custom.html",
                "formatted_body": html,
            },
        )
        await owner.client.set_displayname("Renamed")
        await wait_for(lambda: displayname(owner, room_id), what="the new name in the room")
        await send(owner, room_id, {"msgtype": "m.text", "body": "plain *text*"})
        first, second = await scalar_events(alice, 2)
        assert (first.body, first.ctype) == ("**bold** and `x*y`", "text/markdown")
        assert (second.body, second.ctype) == ("plain *text*", None)
        assert first.nick == owner.localpart
        assert second.nick == "Renamed"


async def test_replies_both_ways(tmp_path: Path, matrix_users: MatrixUsers) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(owner.server, bot, room_id)) as srv:
        await wait_up(srv)
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)

        question_id = await send(owner, room_id, {"msgtype": "m.text", "body": "question"})
        (question,) = await scalar_events(alice, 1)

        # Scalar reply -> Matrix reply to the original Matrix event.
        await alice.publish(channel, "answer", reply_to=question.id)
        statement = await alice.publish(channel, "statement")
        msgs = await wait_room_messages(
            owner.client, room_id, lambda m: sum(x["sender"] == bot for x in m) >= 2
        )
        answer, relayed_statement = (m for m in msgs if m["sender"] == bot)
        assert answer["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": question_id}}
        assert "m.relates_to" not in relayed_statement["content"]

        # Matrix reply to the bridge's message -> Scalar reply to the Scalar original.
        await send(
            owner,
            room_id,
            {
                "msgtype": "m.text",
                "body": "> <bridge> statement\n\nagreed",
                "m.relates_to": {"m.in_reply_to": {"event_id": relayed_statement["event_id"]}},
            },
        )
        (agreed,) = await scalar_events(alice, 1)
        assert (agreed.body, agreed.reply_to) == ("agreed", statement.id)

        # Edits, redactions and reactions: tests/integration/test_matrix_rich.py.


async def test_a_retried_send_is_not_doubled(tmp_path: Path, matrix_users: MatrixUsers) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(owner.server, bot, room_id)) as srv:
        mx = await wait_up(srv)
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)
        event = await alice.publish(channel, "only once")
        await wait_for(lambda: mx.status()[0].relayed_out == 1, what="relayed")
        # The same event sent again, as a retry after a lost answer would be.
        assert mx._client is not None
        assert await mx.sender._send(mx._client, mx.rooms[0], [event])
        await alice.publish(channel, "next")
        msgs = await wait_room_messages(
            owner.client, room_id, lambda m: any(x["content"]["body"] == "<alice> next" for x in m)
        )
        bodies = [m["content"]["body"] for m in msgs if m["sender"] == bot]
        assert bodies == ["<alice> only once", "<alice> next"]


async def test_media_is_relayed_as_a_download_link(
    tmp_path: Path, matrix_users: MatrixUsers, synapse_factory: SynapseFactory
) -> None:
    hs = synapse_factory(extra_config={"enable_authenticated_media": False})
    owner = await matrix_users.new("owner", server=hs)
    bot = await register_bot(hs)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(hs, bot, room_id)) as srv:
        await wait_up(srv)
        alice = await srv.client("alice")
        await alice.sub(srv.channel("room"))
        data = b"file content for IRC users\n"
        upload, _ = await owner.client.upload(
            io.BytesIO(data),
            content_type="text/plain",
            filename="notes v1.txt",
            filesize=len(data),
        )
        await send(
            owner,
            room_id,
            {
                "msgtype": "m.file",
                "body": "notes v1.txt",
                "url": upload.content_uri,
                "info": {"size": len(data), "mimetype": "text/plain"},
            },
        )
        (event,) = await scalar_events(alice, 1)
        name, url = event.body.rsplit(" ", 1)
        assert name == "notes v1.txt"
        assert url.startswith(f"{hs.url}/_matrix/media/v3/download/localhost/")
        assert url.endswith("/notes%20v1.txt")
        fetched = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        assert fetched == data
