"""Matrix adapter rooms: join by alias, no history on first start, invites, kicks, bans."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nio import JoinedMembersResponse, RoomCreateResponse, RoomVisibility

from bridgehost.testing import running
from tests.servers.synapse_fixtures import MatrixUser, MatrixUsers, unique_localpart

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


async def members(user: MatrixUser, room_id: str) -> set[str]:
    resp = await user.client.joined_members(room_id)
    assert isinstance(resp, JoinedMembersResponse), resp
    return {m.user_id for m in resp.members}


async def test_first_start_joins_by_alias_and_replays_no_history(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    alias = unique_localpart("public")
    created = await owner.client.room_create(visibility=RoomVisibility.public, alias=alias)
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    for i in range(3):
        await send(owner, room_id, {"msgtype": "m.text", "body": f"old {i}"})
    config = overrides(owner.server, bot, f"#{alias}:{owner.server.server_name}")
    async with running(tmp_path, config) as srv:
        await wait_up(srv)
        assert bot in await members(owner, room_id)
        alice = await srv.client("alice")
        await alice.sub(srv.channel("room"))
        await send(owner, room_id, {"msgtype": "m.text", "body": "new 1"})
        await send(owner, room_id, {"msgtype": "m.text", "body": "new 2"})
        got = await scalar_events(alice, 2)
        assert [e.body for e in got] == ["new 1", "new 2"]
        assert adapter(srv).rooms[0].room_id == room_id


async def test_invites_are_accepted_only_for_configured_rooms(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner)
    async with running(tmp_path, overrides(owner.server, bot, room_id)) as srv:
        mx = adapter(srv)
        await wait_for(lambda: mx.status()[0].state == "join failed", what="join refused")
        assert "M_FORBIDDEN" in (mx.status()[0].last_error or "")
        other = await private_room(owner, bot)
        await owner.client.room_invite(room_id, bot)
        await wait_up(srv)
        assert bot in await members(owner, room_id)
        assert bot not in await members(owner, other)
        alice = await srv.client("alice")
        await alice.sub(srv.channel("room"))
        await send(owner, room_id, {"msgtype": "m.text", "body": "welcome"})
        (event,) = await scalar_events(alice, 1)
        assert event.body == "welcome"


async def test_kick_and_ban_are_reported_not_retried(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(owner.server, bot, room_id)) as srv:
        mx = await wait_up(srv)
        st = mx.status()[0]
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)

        await owner.client.room_kick(room_id, bot, reason="testing kicks")
        await wait_for(lambda: st.state == "removed", what="removed")
        assert st.last_error == f"kicked from the room by {owner.user_id}: testing kicks"
        attempts = mx.join_attempts
        await alice.publish(channel, "while kicked")
        await wait_for(lambda: st.queued == 1, what="queued")
        await asyncio.sleep(1.0)  # a tight retry loop would show here
        assert (mx.join_attempts, st.state, st.queued) == (attempts, "removed", 1)

        # Invited back: the bridge rejoins and delivers what waited.
        await owner.client.room_invite(room_id, bot)
        await wait_for(lambda: st.state == "joined", what="rejoined")
        await wait_room_messages(
            owner.client,
            room_id,
            lambda m: (
                [x["content"]["body"] for x in m if x["sender"] == bot] == ["<alice> while kicked"]
            ),
        )
        assert st.queued == 0

        await owner.client.room_ban(room_id, bot, reason="for good")
        await wait_for(lambda: st.state == "removed", what="removed")
        assert st.last_error == f"banned from the room by {owner.user_id}: for good"
        attempts = mx.join_attempts
        await asyncio.sleep(0.5)
        assert (mx.join_attempts, st.state) == (attempts, "removed")


async def test_a_message_the_room_refuses_is_dropped_and_reported(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(owner.server, bot, room_id)) as srv:
        mx = await wait_up(srv)
        st = mx.status()[0]
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)
        levels = await owner.client.room_get_state_event(room_id, "m.room.power_levels")
        muted = {**levels.content, "events_default": 50}
        await owner.client.room_put_state(room_id, "m.room.power_levels", muted)
        await alice.publish(channel, "muted")
        await wait_for(lambda: "refused" in (st.last_error or ""), what="the refusal reported")
        assert "M_FORBIDDEN" in (st.last_error or "")
        assert (st.state, st.queued) == ("joined", 0)
        await owner.client.room_put_state(room_id, "m.room.power_levels", levels.content)
        await alice.publish(channel, "heard")
        msgs = await wait_room_messages(
            owner.client, room_id, lambda m: any(x["sender"] == bot for x in m)
        )
        assert [m["content"]["body"] for m in msgs if m["sender"] == bot] == ["<alice> heard"]
