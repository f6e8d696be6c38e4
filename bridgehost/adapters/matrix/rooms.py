"""The linked Matrix rooms: joining, invites, and each link's health.

A link's room is joined on start (by alias or ID). A room that cannot be
joined, or that we were kicked or banned from, is reported in the link's
status and left alone: no retry loop against a moderator's decision. An
invite to that room (and only to a room some link names) joins it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nio import AsyncClient, JoinedRoomsResponse, JoinResponse, RoomResolveAliasResponse

from ...config import Bridge, Link
from ..state import LinkState, State
from .events import Membership
from .responses import classify
from .session import TokenRejected

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Room:
    """One link's Matrix room and what we know of our membership in it."""

    bridge: Bridge
    link: Link
    status: LinkState
    room_id: str | None = None
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    warned_encrypted: bool = False
    out: tuple[State, str] | None = None
    """Why we are not in the room (state, error), shown again after an outage."""

    def left(self, state: State, error: str) -> None:
        self.joined.clear()
        self.out = (state, error)
        self.status.set(state, error)


class Rooms:
    """Every linked room of one account, by link and by room ID."""

    def __init__(self, name: str, user_id: str, rooms: list[Room]) -> None:
        self.name = name
        self.user_id = user_id
        self.all = rooms
        self.by_id: dict[str, Room] = {}
        self.joined: set[str] = set()
        """Every room the account is in (linked or not), as the syncs tell."""
        self.online = asyncio.Event()
        """Set while the homeserver answers."""
        self.join_attempts = 0

    def __iter__(self) -> Iterator[Room]:
        return iter(self.all)

    def __getitem__(self, index: int) -> Room:
        return self.all[index]

    def __len__(self) -> int:
        return len(self.all)

    async def join_all(self, client: AsyncClient) -> None:
        for room in self.all:
            await self.join(client, room)

    async def join(self, client: AsyncClient, room: Room) -> None:
        target = room.link.target
        self.join_attempts += 1
        room.status.set("joining")
        while True:
            resp = await client.join(room.room_id or target)
            answer = classify(resp, JoinResponse)
            if answer.ok:
                self.bind(room, resp.room_id)
                self.mark_joined(room)
                return
            if answer.outcome != "rate limited":
                break
            await asyncio.sleep(answer.retry_after or 1.0)
        if answer.outcome == "token rejected":
            raise TokenRejected(f"{self.user_id}: access token rejected")
        if answer.outcome == "transient":
            raise ConnectionError(f"joining {target} failed: {answer.describe()}")
        if room.room_id is None:
            if target.startswith("!"):
                self.bind(room, target)
            else:
                resolved = await client.room_resolve_alias(target)
                if isinstance(resolved, RoomResolveAliasResponse):
                    self.bind(room, resolved.room_id)
        room.left("join failed", f"cannot join {target}: {answer.code}: {answer.message}")

    def bind(self, room: Room, room_id: str) -> None:
        if room.room_id and room.room_id != room_id:
            self.by_id.pop(room.room_id, None)
        room.room_id = room_id
        self.by_id[room_id] = room

    def mark_joined(self, room: Room) -> None:
        room.joined.set()
        room.out = None
        if self.online.is_set():
            room.status.set("joined")

    def mark_left(self, room: Room, change: Membership | None) -> None:
        """We are out of the room: say why (kicked, banned, left)."""
        state, error = change.describe(self.user_id) if change else ("removed", "left the room")
        room.left(state, error)

    async def on_invite(self, client: AsyncClient, room_id: str, info: Any) -> None:
        """Join a room we are invited to, if (and only if) a link names it."""
        room = self.by_id.get(room_id)
        if room is None:
            aliases = set()
            for event in info.invite_state:
                source = getattr(event, "source", {})
                if source.get("type") == "m.room.canonical_alias":
                    content = source.get("content") or {}
                    aliases.add(content.get("alias"))
                    aliases.update(content.get("alt_aliases") or [])
            room = next(
                (r for r in self.all if r.room_id is None and r.link.target in aliases), None
            )
        if room is None:
            log.info("matrix %s: ignoring an invite to %s (no link names it)", self.name, room_id)
            return
        if room.joined.is_set() and room.room_id == room_id:
            return
        log.info("matrix %s: invited to %s; joining", self.name, room.link.target)
        self.bind(room, room_id)
        await self.join(client, room)

    async def still_joined(self, client: AsyncClient, room_id: str) -> bool:
        resp = await client.joined_rooms()
        answer = classify(resp, JoinedRoomsResponse)
        if not answer.ok:
            raise ConnectionError(f"joined_rooms failed: {answer.describe()}")
        return room_id in resp.rooms

    def set_online(self) -> None:
        if self.online.is_set():
            return
        self.online.set()
        for room in self.all:
            if room.joined.is_set():
                room.status.set("joined")
            elif room.out is not None:
                room.status.set(*room.out)

    def set_down(self, error: str) -> None:
        self.online.clear()
        for room in self.all:
            room.status.set("disconnected", error)
