"""Rich events (protocol §11) across Matrix, against a real Synapse: edits as
`m.replace`, deletions as redactions, reactions as `m.reaction`, topics as
`m.room.topic`, membership, mentions as pills; both ways, read back from the
homeserver; and the event map surviving a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridgehost.scalar.client import Client
from bridgehost.scalar.events import Event
from bridgehost.testing import running
from tests.servers.synapse_fixtures import MatrixUsers

from .matrix_helpers import (
    overrides,
    private_room,
    raise_power,
    register_bot,
    send,
    wait_events,
    wait_up,
)

pytestmark = pytest.mark.synapse


def by(events: list[dict[str, Any]], sender: str, etype: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("sender") == sender and e.get("type") == etype]


async def next_event(client: Client, kind: str | None = None, within: float = 10.0) -> Event:
    while True:
        event = await client.next_event(within)
        if kind is None or event.kind == kind:
            return event


async def test_scalar_edits_deletions_reactions_topic_and_mentions_in_matrix(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    await owner.client.set_displayname("Owner Person")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    config = overrides(owner.server, bot, room_id, account={"relay": {"membership": True}})
    async with running(tmp_path, config) as srv:
        await wait_up(srv)
        await raise_power(owner, room_id, bot)
        alice = await srv.client("alice")
        room = srv.channel("room")
        await alice.sub(room)

        question = await alice.publish(room, "what is teh plan?")
        hello_id = await send(owner, room_id, {"msgtype": "m.text", "body": "hello"})
        hello = await next_event(alice, "text")
        events = await wait_events(owner.client, room_id, lambda e: by(e, bot, "m.room.message"))
        (relayed,) = by(events, bot, "m.room.message")
        assert relayed["content"]["body"] == "<alice> what is teh plan?"

        await alice.edit(question, "what is the plan?")
        await alice.react(hello, "👍")
        wave = await alice.react(hello, "👋")
        await alice.delete(wave)
        await alice.delete(question)
        await alice.set_topic(room, "plans for lunch")
        other = await srv.client("!other")
        await other.publish(room, "", kind="join", nick="frank")
        await alice.publish(room, "Owner Person: are you in?")

        def done(events: list[dict[str, Any]]) -> bool:
            return len(by(events, bot, "m.room.message")) >= 4 and any(
                e["type"] == "m.room.topic" and e["sender"] == bot for e in events
            )

        events = await wait_events(owner.client, room_id, done)
        messages = by(events, bot, "m.room.message")
        edit = messages[1]["content"]
        assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": relayed["event_id"]}
        assert edit["m.new_content"]["body"] == "<alice> what is the plan?"
        thumbs, waved = by(events, bot, "m.reaction")
        assert thumbs["content"]["m.relates_to"] == {
            "rel_type": "m.annotation",
            "event_id": hello_id,
            "key": "👍",
        }
        assert waved["content"] == {}  # withdrawn: the redaction stripped it
        redacted = [
            e.get("redacts") or e["content"].get("redacts")
            for e in events
            if e["type"] == "m.room.redaction"
        ]
        assert redacted == [waved["event_id"], relayed["event_id"]]
        (topic,) = [e for e in events if e["type"] == "m.room.topic" and e["sender"] == bot]
        assert topic["content"]["topic"] == "plans for lunch"
        joined = messages[2]["content"]
        assert (joined["msgtype"], joined["body"]) == ("m.notice", "frank joined")
        mention = messages[3]["content"]
        assert mention["m.mentions"] == {"user_ids": [owner.user_id]}
        assert f'href="https://matrix.to/#/{owner.user_id}"' in mention["formatted_body"]
        assert len(messages) == 4


async def test_matrix_edits_redactions_reactions_topic_and_membership_reach_scalar(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    await owner.client.set_displayname("Owner Person")
    guest = await matrix_users.new("guest")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot, guest.user_id)
    config = overrides(owner.server, bot, room_id, account={"relay": {"membership": True}})
    async with running(tmp_path, config) as srv:
        await wait_up(srv)
        alice = await srv.client("alice")
        room = srv.channel("room")
        await alice.sub(room)

        first_id = await send(owner, room_id, {"msgtype": "m.text", "body": "frist"})
        first = await next_event(alice, "text")
        await send(
            owner,
            room_id,
            {
                "msgtype": "m.text",
                "body": " * first",
                "m.new_content": {"msgtype": "m.text", "body": "first"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": first_id},
            },
        )
        edit = await next_event(alice)
        assert (edit.kind, edit.body, edit.target, edit.nick) == (
            "edit",
            "first",
            first.id,
            "Owner Person",
        )

        mine = await alice.publish(room, "from scalar")
        events = await wait_events(owner.client, room_id, lambda e: by(e, bot, "m.room.message"))
        (relayed,) = by(events, bot, "m.room.message")
        relates = {"rel_type": "m.annotation", "event_id": relayed["event_id"], "key": "🎉"}
        resp = await owner.client.room_send(room_id, "m.reaction", {"m.relates_to": relates})
        react = await next_event(alice)
        assert (react.kind, react.body, react.target) == ("react", "🎉", mine.id)
        await owner.client.room_redact(room_id, resp.event_id)
        unreact = await next_event(alice)
        assert (unreact.kind, unreact.target) == ("delete", react.id)

        # A redaction of a message the bridge sent (alice's) cannot withdraw it on
        # Scalar; one of the owner's own message does.
        await owner.client.room_redact(room_id, relayed["event_id"])
        await owner.client.room_redact(room_id, first_id, reason="typo")
        gone = await next_event(alice)
        assert (gone.kind, gone.body, gone.target) == ("delete", "typo", first.id)

        await owner.client.room_put_state(room_id, "m.room.topic", {"topic": "from matrix"})
        topic = await next_event(alice)
        assert (topic.kind, topic.body) == ("topic", "from matrix")
        assert (await alice.sub(room)).title == "from matrix"

        await guest.client.join(room_id)
        joined = await next_event(alice)
        assert (joined.kind, joined.nick) == ("join", guest.localpart)
        await guest.client.room_leave(room_id)
        left = await next_event(alice)
        assert (left.kind, left.nick) == ("part", guest.localpart)

        pill = {
            "msgtype": "m.text",
            "body": "guest: see above",
            "format": "org.matrix.custom.html",
            "formatted_body": f'<a href="https://matrix.to/#/{guest.user_id}">guest</a>: see above',
        }
        await send(owner, room_id, pill)
        mention = await next_event(alice)
        assert (mention.kind, mention.body) == ("text", "guest: see above")


async def test_edits_deletions_and_reactions_find_their_target_after_a_restart(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    config = overrides(owner.server, bot, room_id)
    async with running(tmp_path, config) as srv:
        await wait_up(srv)
        alice = await srv.client("alice")
        room = srv.channel("room")
        await alice.sub(room)
        mine = await alice.publish(room, "before teh restart")
        theirs_id = await send(owner, room_id, {"msgtype": "m.text", "body": "theirs"})
        theirs = await next_event(alice, "text")
        await wait_events(owner.client, room_id, lambda e: by(e, bot, "m.room.message"))
    async with running(tmp_path, config) as srv:
        await wait_up(srv)
        alice = await srv.client("alice")
        room = srv.channel("room")
        await alice.sub(room)
        await alice.edit(mine, "before the restart")
        await alice.react(theirs, "👍")
        await send(
            owner,
            room_id,
            {
                "msgtype": "m.text",
                "body": " * theirs, edited",
                "m.new_content": {"msgtype": "m.text", "body": "theirs, edited"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": theirs_id},
            },
        )
        edited = await next_event(alice, "edit")
        assert edited.target == theirs.id

        def done(events: list[dict[str, Any]]) -> bool:
            return len(by(events, bot, "m.room.message")) == 2 and bool(
                by(events, bot, "m.reaction")
            )

        events = await wait_events(owner.client, room_id, done)
        original, edit = by(events, bot, "m.room.message")
        assert edit["content"]["m.relates_to"]["event_id"] == original["event_id"]
        (reaction,) = by(events, bot, "m.reaction")
        assert reaction["content"]["m.relates_to"]["event_id"] == theirs_id
