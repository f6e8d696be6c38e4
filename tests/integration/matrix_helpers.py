"""Shared pieces of the Matrix adapter's integration tests (real Synapse)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nio import AsyncClient, MessageDirection, RoomMessagesResponse, SyncResponse

from bridgehost.adapters.matrix.adapter import MatrixAdapter
from bridgehost.scalar.client import Client
from bridgehost.scalar.events import Event
from bridgehost.testing import Running
from tests.servers.synapse import Synapse
from tests.servers.synapse_fixtures import MatrixUser, unique_localpart

BOT_PASSWORD = "bridge-secret-pw"
FAST_LIMITS = {"rate": 100000, "burst": 100000}


async def register_bot(server: Synapse) -> str:
    """A fresh Matrix user for the bridge; its user id."""
    localpart = unique_localpart("bridge")
    await server.register_user_async(localpart, BOT_PASSWORD)
    return server.user_id(localpart)


def overrides(
    server: Synapse,
    bot_id: str,
    target: str,
    *,
    account: dict[str, Any] | None = None,
    link: dict[str, Any] | None = None,
    channel: str = "#room@test.example",
) -> dict[str, Any]:
    """Config overrides for `running()`: one Matrix account, one bridge."""
    acc: dict[str, Any] = {
        "type": "matrix",
        "homeserver": server.url,
        "user_id": bot_id,
        "password": BOT_PASSWORD,
        "reconnect_initial": 0.1,
        "reconnect_max": 1.0,
    }
    acc.update(account or {})
    return {
        "server": {"limits": FAST_LIMITS},
        "accounts": {"mx": acc},
        "bridges": [
            {"channel": channel, "links": [{"account": "mx", "target": target, **(link or {})}]}
        ],
    }


async def private_room(owner: MatrixUser, *invite: str, name: str | None = None) -> str:
    """A private room created by `owner` with `invite` user ids invited (not joined)."""
    resp = await owner.client.room_create(name=name, invite=list(invite))
    room_id: str = resp.room_id
    return room_id


async def wait_for(
    check: Callable[[], bool | Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


def adapter(srv: Running) -> MatrixAdapter:
    found = [a for a in srv.app.adapters if isinstance(a, MatrixAdapter)]
    assert len(found) == 1
    return found[0]


async def wait_up(srv: Running, within: float = 15.0) -> MatrixAdapter:
    """Wait until every link of the Matrix adapter is `up`."""
    mx = adapter(srv)
    await wait_for(
        lambda: all(st.state == "joined" for st in mx.status()),
        within,
        f"links up (now {[(s.state, s.last_error) for s in mx.status()]})",
    )
    return mx


async def room_messages(client: AsyncClient, room_id: str) -> list[dict[str, Any]]:
    """Every `m.room.message` of a room as Synapse stores it, oldest first."""
    sync = await client.sync(timeout=0, sync_filter={"room": {"timeline": {"limit": 1}}})
    assert isinstance(sync, SyncResponse), sync
    token = sync.next_batch
    out: list[dict[str, Any]] = []
    while True:
        resp = await client.room_messages(
            room_id, start=token, direction=MessageDirection.back, limit=1000
        )
        assert isinstance(resp, RoomMessagesResponse), resp
        out.extend(e.source for e in resp.chunk if e.source.get("type") == "m.room.message")
        if not resp.chunk or not resp.end:
            break
        token = resp.end
    out.reverse()
    return out


async def wait_room_messages(
    client: AsyncClient,
    room_id: str,
    check: Callable[[list[dict[str, Any]]], bool],
    within: float = 10.0,
) -> list[dict[str, Any]]:
    """Poll a room's stored messages until `check` accepts them."""
    deadline = time.monotonic() + within
    while True:
        msgs = await room_messages(client, room_id)
        if check(msgs):
            return msgs
        if time.monotonic() > deadline:
            bodies = [m["content"].get("body") for m in msgs]
            raise AssertionError(f"room {room_id}: condition not met; messages {bodies!r}")
        await asyncio.sleep(0.05)


async def scalar_events(client: Client, count: int, within: float = 10.0) -> list[Event]:
    """The next `count` events a Scalar client receives."""
    got: list[Event] = []
    deadline = time.monotonic() + within
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(got)} of {count} events: {[e.body for e in got]!r}")
        try:
            got.append(await client.next_event(left))
        except TimeoutError:
            continue
    return got


async def send(
    user: MatrixUser, room_id: str, content: dict[str, Any], txn: str | None = None
) -> str:
    resp = await user.client.room_send(room_id, "m.room.message", content, tx_id=txn)
    event_id: str = resp.event_id
    return event_id


async def room_events(client: AsyncClient, room_id: str) -> list[dict[str, Any]]:
    """Every event of a room as Synapse stores it (state included), oldest first."""
    sync = await client.sync(timeout=0, sync_filter={"room": {"timeline": {"limit": 1}}})
    assert isinstance(sync, SyncResponse), sync
    token, out = sync.next_batch, []
    while True:
        resp = await client.room_messages(
            room_id, start=token, direction=MessageDirection.back, limit=1000
        )
        assert isinstance(resp, RoomMessagesResponse), resp
        out.extend(e.source for e in resp.chunk)
        if not resp.chunk or not resp.end:
            break
        token = resp.end
    out.reverse()
    return out


async def wait_events(
    client: AsyncClient,
    room_id: str,
    check: Callable[[list[dict[str, Any]]], bool],
    within: float = 15.0,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        events = await room_events(client, room_id)
        if check(events):
            return events
        if time.monotonic() > deadline:
            shown = [(e.get("type"), e.get("content")) for e in events[-12:]]
            raise AssertionError(f"room {room_id}: condition not met; last events {shown!r}")
        await asyncio.sleep(0.1)


async def raise_power(owner: MatrixUser, room_id: str, user_id: str) -> None:
    """Let the bridge set the topic (Synapse refuses a creator override in createRoom)."""
    levels = await owner.client.room_get_state_event(room_id, "m.room.power_levels")
    content = dict(levels.content)
    content["users"] = {**content.get("users", {}), user_id: 100}
    await owner.client.room_put_state(room_id, "m.room.power_levels", content)
