"""The Synapse fixtures work against a real homeserver."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from nio import AsyncClientConfig, JoinedRoomsResponse, RoomMessagesResponse, RoomSendError

from .synapse import RateLimit, Synapse
from .synapse_fixtures import (
    MatrixUsers,
    SynapseFactory,
    create_room,
    login,
    send_text,
    wait_for_text,
)

pytestmark = pytest.mark.synapse


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_matrix/client/versions", timeout=1) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def test_session_server_is_local_and_up(synapse: Synapse) -> None:
    assert synapse.server_name == "localhost"
    assert synapse.url == f"http://127.0.0.1:{synapse.port}"
    assert synapse.is_running()
    assert _answers(synapse.url)
    config = synapse.config
    assert config["listeners"][0]["bind_addresses"] == ["127.0.0.1"]
    assert config["rc_message"] == {"per_second": 1000, "burst_count": 1000}
    # Everything it writes stays in its own directory.
    assert config["database"]["args"]["database"].startswith(str(synapse.directory))
    assert config["signing_key_path"].startswith(str(synapse.directory))


@pytest.mark.asyncio
async def test_invite_join_and_message_seen_by_other_user(matrix_users: MatrixUsers) -> None:
    alice = await matrix_users.new("alice")
    bob = await matrix_users.new("bob")
    assert alice.user_id != bob.user_id
    assert alice.user_id.endswith(":localhost")

    room_id = await create_room(alice, bob, name="fixture test")
    joined = await bob.client.joined_rooms()
    assert isinstance(joined, JoinedRoomsResponse)
    assert room_id in joined.rooms

    # Bob syncs once so that what follows is new to him.
    await bob.client.sync(timeout=0)
    event_id = await send_text(alice, room_id, "hello bob")
    event = await wait_for_text(bob, room_id, "hello bob", within=10)
    assert event.event_id == event_id
    assert event.sender == alice.user_id

    # And the other way round.
    await send_text(bob, room_id, "hi alice")
    reply = await wait_for_text(alice, room_id, "hi alice", within=10)
    assert reply.sender == bob.user_id


@pytest.mark.asyncio
async def test_low_rc_message_answers_limit_exceeded(
    synapse_factory: SynapseFactory, matrix_users: MatrixUsers
) -> None:
    limited = synapse_factory(rc_message=RateLimit(per_second=0.1, burst_count=5))
    assert limited.config["rc_message"] == {"per_second": 0.1, "burst_count": 5}
    # nio retries 429s forever by default; 0 makes it hand the error back.
    no_retry = AsyncClientConfig(max_limit_exceeded=0)
    alice = await matrix_users.new("alice", server=limited, config=no_retry)
    bob = await matrix_users.new("bob", server=limited, config=no_retry)
    room_id = await create_room(alice, bob)

    # Synapse holds each rate-limited answer back for 0.5 s: stop after 3 of them.
    results = []
    for i in range(15):
        results.append(
            await alice.client.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": f"burst {i}"}
            )
        )
        if sum(isinstance(r, RoomSendError) for r in results) == 3:
            break
    errors = [r for r in results if isinstance(r, RoomSendError)]
    assert errors, "15 quick sends with burst_count=5 were never rate-limited"
    assert len(errors) < len(results), "not even the burst went through"
    assert not isinstance(results[0], RoomSendError)
    for err in errors:
        assert err.status_code == "M_LIMIT_EXCEEDED", err
        assert err.retry_after_ms is not None and err.retry_after_ms > 0, err


@pytest.mark.asyncio
async def test_stop_and_start_keep_data_and_port(
    synapse_factory: SynapseFactory, matrix_users: MatrixUsers
) -> None:
    server = synapse_factory()
    alice = await matrix_users.new("alice", server=server)
    bob = await matrix_users.new("bob", server=server)
    room_id = await create_room(alice, bob)
    await send_text(alice, room_id, "before restart")
    port, url, pid = server.port, server.url, server.pid

    server.stop()
    assert not server.is_running()
    assert not _answers(url)

    server.start()
    assert server.is_running()
    assert (server.port, server.url) == (port, url)
    assert server.pid != pid

    # A fresh login works; the room and its history survived.
    client = await matrix_users.login_again(alice)
    joined = await client.joined_rooms()
    assert isinstance(joined, JoinedRoomsResponse)
    assert room_id in joined.rooms
    history = await client.room_messages(room_id, start="", limit=20)
    assert isinstance(history, RoomMessagesResponse)
    assert "before restart" in [getattr(e, "body", None) for e in history.chunk]

    # The old session of bob still works too (access tokens are in the DB).
    await send_text(bob, room_id, "after restart")
    await wait_for_text(alice, room_id, "after restart", within=10)

    # restart() is stop-then-start on the same port.
    await server.restart_async()
    assert server.port == port
    assert _answers(url)
    client2 = await login(server, alice.localpart, alice.password)
    try:
        joined2 = await client2.joined_rooms()
        assert isinstance(joined2, JoinedRoomsResponse)
        assert joined2.rooms == joined.rooms
    finally:
        await client2.close()
