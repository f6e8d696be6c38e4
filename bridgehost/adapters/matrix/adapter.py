"""The Matrix adapter: mirror Scalar channels to Matrix rooms (design.md §3).

One logged-in matrix-nio client per account, one `/sync` loop, and one sender
per link that drains the link's OutQueue in order.

Nothing lost, nothing replayed:
- The sync token is checkpointed (adapter kv `sync`) only after every event
  of its batch has been published to the hub, which acknowledges only what
  is on disk. A crash re-reads at most that one batch; the events of it that
  were already published are found in the channel's history (by `origin`,
  after the seq recorded with the checkpoint) and skipped once.
- A first start (no checkpoint) never relays room history, and in a room
  joined since the last sync everything up to our own join is history.
- A timeline cut short by the homeserver (`limited`) is filled from
  `/messages` between the checkpoint and the timeline's start.
- Every send carries a transaction id derived from the Scalar event id, so a
  retried send is never doubled; `M_LIMIT_EXCEEDED` waits `retry_after_ms`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    MessageDirection,
    RoomMessagesResponse,
    SyncResponse,
)

from ...runtime import Backoff
from ..base import AdapterContext, ScalarSide
from ..state import LinkState
from .checkpoint import Checkpoint
from .config import MatrixAccount
from .eventmap import Bridged, EventMap
from .events import (
    Inbound,
    inbound,
    localpart,
    own_join_index,
    own_membership,
)
from .responses import classify
from .rooms import Room, Rooms
from .sender import Sender
from .session import MatrixAuthError, MatrixSession, TokenRejected

log = logging.getLogger(__name__)

LONG_POLL_MS = 30_000
MAP_SAVE_EVERY = 1.0
"""Seconds between saves of the event map (a crash loses at most this much of it)."""
TIMELINE_LIMIT = 100
GAP_PAGES = 50
TRANSIENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
    json.JSONDecodeError,
)
_NOTHING = {"not_types": ["*"]}
SYNC_FILTER: dict[str, Any] = {
    "presence": _NOTHING,
    "account_data": _NOTHING,
    "room": {
        "timeline": {"limit": TIMELINE_LIMIT},
        "state": {"lazy_load_members": False},
        "ephemeral": _NOTHING,
        "account_data": _NOTHING,
    },
}
INITIAL_FILTER: dict[str, Any] = {
    **SYNC_FILTER,
    "room": {**SYNC_FILTER["room"], "timeline": {"limit": 1}},
}


class MatrixAdapter:
    """Bridges the links of one Matrix account (see the module docstring)."""

    def __init__(self, ctx: AdapterContext) -> None:
        if not isinstance(ctx.account, MatrixAccount):
            raise TypeError(f"not a Matrix account: {ctx.account!r}")
        self.ctx = ctx
        self.account: MatrixAccount = ctx.account
        self.name = self.account.name
        self.user_id = self.account.user_id
        self.scalar = ScalarSide(ctx, self.account.queue)
        self.map = EventMap(ctx.kv)
        self.session = MatrixSession(self.account, ctx.config.server.data_dir)
        self.rooms = Rooms(
            self.name,
            self.user_id,
            [Room(bridge, link, self.scalar.status_of(link)) for bridge, link in ctx.links],
        )
        self.checkpoint = Checkpoint(ctx.kv, ctx.connect)
        self.relayed = self.account.relay
        self._client: AsyncClient | None = None
        self._publishing = asyncio.Lock()
        self.sender = Sender(self.account, self.rooms, self.map, self._publishing, TRANSIENT)
        self._received = 0.0
        """When the batch being relayed arrived (monotonic), for inbound latency."""
        self.syncs = 0
        self.sync_failures = 0
        self.backoff = self._backoff()
        """Login and /sync retries; quick again after a healthy spell of syncs."""

    def _backoff(self) -> Backoff:
        return Backoff(self.account.reconnect_initial, self.account.reconnect_max)

    def status(self) -> list[LinkState]:
        return self.scalar.statuses()

    def media_credentials(self) -> tuple[str, str] | None:
        """(homeserver, access token) while logged in: how bridgehost's media links
        fetch authenticated media (MSC3916) as this account."""
        client = self._client
        if client is None or not client.access_token:
            return None
        return self.account.homeserver, str(client.access_token)

    @property
    def join_attempts(self) -> int:
        return self.rooms.join_attempts

    @property
    def rate_limited(self) -> int:
        """Sends the homeserver answered with M_LIMIT_EXCEEDED."""
        return self.sender.rate_limited

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        for room in self.rooms:
            room.joined.clear()
            room.status.set("connecting")
        await self.map.load()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.scalar.run(), name=f"matrix-{self.name}-scalar")
                tg.create_task(self._save_map(), name=f"matrix-{self.name}-map")
                tg.create_task(self._matrix(tg), name=f"matrix-{self.name}-sync")
        except BaseExceptionGroup as group:
            raise _first(group) from None
        finally:
            await self.map.save()

    async def _save_map(self) -> None:
        while True:
            await asyncio.sleep(MAP_SAVE_EVERY)
            await self.map.save()

    async def _open(self) -> AsyncClient:
        """A logged-in client, retried with backoff while the homeserver is unreachable.

        Credentials it refuses are `Fatal` (a MatrixAuthError): the links say
        `auth failed` and the supervisor stops the adapter instead of retrying.
        """
        while True:
            try:
                return await self.session.open()
            except MatrixAuthError as exc:
                for room in self.rooms:
                    room.status.set("auth failed", str(exc))
                raise
            except TRANSIENT as exc:
                self.rooms.set_down(f"cannot log in: {_describe(exc)}")
            await self.backoff.wait()

    async def _matrix(self, tg: asyncio.TaskGroup) -> None:
        client = await self._open()
        self._client = client
        try:
            fresh = not await self.checkpoint.load()
            if fresh:
                await self._first_sync(client)
            await self.rooms.join_all(client)
            if not fresh:
                await self._find_unsaved()
            for room in self.rooms:
                if room.link.outbound:
                    name = f"matrix-send-{room.link.target}"
                    queue = self.scalar.queue(room.link)
                    tg.create_task(self.sender.run(client, room, queue), name=name)
            await self._sync_forever(client, full_state=not fresh)
        except TRANSIENT as exc:
            self.rooms.set_down(_describe(exc))
            raise
        finally:
            self.rooms.online.clear()
            self._client = None
            await client.close()

    # --- sync ---------------------------------------------------------------------------

    async def _sync(
        self, client: AsyncClient, *, timeout_ms: int, full_state: bool, initial: bool = False
    ) -> Any:
        """One successful `/sync` (retried with backoff and jitter while it fails).

        A retry does not long-poll: its answer is what tells the senders that
        the homeserver is back.
        """
        while True:
            try:
                resp = await client.sync(
                    timeout=timeout_ms if self.rooms.online.is_set() else 0,
                    since=self.checkpoint.since,
                    sync_filter=INITIAL_FILTER if initial else SYNC_FILTER,
                    full_state=full_state or None,
                )
            except TRANSIENT as exc:
                self.sync_failures += 1
                self.rooms.set_down(f"homeserver unreachable: {_describe(exc)}")
            else:
                answer = classify(resp, SyncResponse)
                if answer.ok:
                    self._received = self.scalar.clock.monotonic()
                    self.syncs += 1
                    self.backoff.started()
                    self.rooms.set_online()
                    return resp
                if answer.outcome == "token rejected":
                    raise TokenRejected(f"{self.user_id}: access token rejected during sync")
                self.sync_failures += 1
                self.rooms.set_down(f"sync failed: {answer.describe()}")
                if answer.retry_after:
                    await asyncio.sleep(answer.retry_after)
                    continue
            await self.backoff.wait()

    async def _first_sync(self, client: AsyncClient) -> None:
        """No checkpoint: learn the rooms and the current position, relay nothing."""
        resp = await self._sync(client, timeout_ms=0, full_state=False, initial=True)
        self._note_rooms(resp)
        channels = {room.bridge.channel for room in self.rooms if room.link.inbound}
        if channels:
            await self.checkpoint.mark_heads(sorted(channels))
        await self._checkpoint(resp.next_batch)

    async def _sync_forever(self, client: AsyncClient, *, full_state: bool) -> None:
        timeout = 0
        while True:
            resp = await self._sync(client, timeout_ms=timeout, full_state=full_state)
            await self._process(client, resp)
            self.checkpoint.forget_unsaved()
            await self._checkpoint(resp.next_batch)
            timeout, full_state = LONG_POLL_MS, False

    def _note_rooms(self, resp: Any) -> None:
        """Track joined rooms from a sync whose timelines are not relayed."""
        for room_id in resp.rooms.join:
            self.rooms.joined.add(room_id)
            room = self.rooms.by_id.get(room_id)
            if room is not None:
                self.rooms.mark_joined(room)

    async def _process(self, client: AsyncClient, resp: Any) -> None:
        """Relay one sync batch, in order; membership changes update link health."""
        before = set(self.rooms.joined)
        for room_id, info in resp.rooms.join.items():
            self.rooms.joined.add(room_id)
            room = self.rooms.by_id.get(room_id)
            if room is None:
                continue
            await self._relay_timeline(client, room, room_id, info.timeline, room_id not in before)
            self.rooms.mark_joined(room)
        for room_id, info in resp.rooms.leave.items():
            self.rooms.joined.discard(room_id)
            room = self.rooms.by_id.get(room_id)
            if room is None:
                continue
            events = [e.source for e in info.timeline.events]
            await self._relay_sources(room, room_id, events)
            change = own_membership([e.source for e in info.state] + events, self.user_id)
            self.rooms.mark_left(room, change)
        for room_id, info in resp.rooms.invite.items():
            await self.rooms.on_invite(client, room_id, info)

    async def _relay_timeline(
        self, client: AsyncClient, room: Room, room_id: str, timeline: Any, newly: bool
    ) -> None:
        events: list[Mapping[str, Any]] = [e.source for e in timeline.events]
        joined_at = own_join_index(events, self.user_id) if newly else None
        since = self.checkpoint.since
        if timeline.limited and since and joined_at is None and timeline.prev_batch:
            gap = await self._fill_gap(client, room_id, since, timeline.prev_batch)
            log.info(
                "matrix %s: the homeserver cut the timeline of %s short; "
                "filled a gap of %d event(s) from /messages",
                self.name,
                room_id,
                len(gap),
            )
            seen = {e.get("event_id") for e in events}
            events = [e for e in gap if e.get("event_id") not in seen] + events
            if newly:
                joined_at = own_join_index(events, self.user_id)
        if joined_at is not None:
            events = events[joined_at + 1 :]
        await self._relay_sources(room, room_id, events)

    async def _fill_gap(
        self, client: AsyncClient, room_id: str, since: str, until: str
    ) -> list[Mapping[str, Any]]:
        """The events the homeserver left out of a limited timeline, oldest first."""
        events: list[Mapping[str, Any]] = []
        token = since
        for _ in range(GAP_PAGES):
            resp = await client.room_messages(
                room_id, start=token, end=until, direction=MessageDirection.front, limit=100
            )
            answer = classify(resp, RoomMessagesResponse)
            if answer.outcome == "token rejected":
                raise TokenRejected(f"{self.user_id}: access token rejected")
            if not answer.ok:
                raise ConnectionError(f"/messages failed: {answer.describe()}")
            events.extend(e.source for e in resp.chunk)
            if not resp.chunk or not resp.end:
                return events
            token = resp.end
        log.warning(
            "matrix %s: more than %d events missed in %s; relaying the oldest %d and the latest",
            self.name,
            GAP_PAGES * 100,
            room_id,
            len(events),
        )
        return events

    async def _relay_sources(
        self, room: Room, room_id: str, events: list[Mapping[str, Any]]
    ) -> None:
        for source in events:
            await self._relay_in(room, room_id, source)

    async def _relay_in(self, room: Room, room_id: str, source: Mapping[str, Any]) -> None:
        """Publish one Matrix event to the bridged channel (if it becomes a message)."""
        sender, event_id = source.get("sender"), source.get("event_id")
        if sender == self.user_id or not room.link.inbound or not isinstance(event_id, str):
            return
        if source.get("type") == "m.room.encrypted":
            if not room.warned_encrypted:
                room.warned_encrypted = True
                room.status.set(
                    room.status.state, "the room is encrypted: encrypted messages are not bridged"
                )
            return
        try:
            made = inbound(
                source,
                markdown=room.link.markdown,
                homeserver=self.account.homeserver,
                relay=self.relayed,
                media_link=self.ctx.public.media if self.ctx.public else None,
            )
        except Exception:  # one odd event must not stop the room (its batch would repeat)
            log.exception("matrix %s: cannot convert event %s; skipped", self.name, event_id)
            return
        if made is None:
            return
        reply_to = None
        if made.reply_to_event is not None:
            reply_to = await self.map.scalar_id(made.reply_to_event)
        nick = made.nick or self._display_name(room_id, str(sender))
        target = None
        if made.target_event is not None:
            found = await self.map.bridged(made.target_event)
            if found is None or not self._may_act(made.kind, str(sender), found):
                return
            target = found.scalar_id
            if made.kind in ("edit", "delete") and found.nick:
                nick = found.nick  # the server keeps edits and deletions to the same nick
        if await self._already_published(
            room, room_id, event_id, made, nick=nick, sender=str(sender)
        ):
            return
        async with self._publishing:
            event = await self.scalar.publish(
                room.link,
                nick=nick,
                body=made.body,
                kind=made.kind,
                ctype=made.ctype,
                reply_to=reply_to,
                target=target,
                received=self._received or None,
            )
            if event is not None:
                self.checkpoint.published(event)
                self.map.remember(room_id, event_id, event.id, nick=nick, sender=str(sender))

    def _may_act(self, kind: str, sender: str, target: Bridged) -> bool:
        """Whether a Matrix edit or redaction can be relayed: Scalar lets a bridge edit
        or delete only what it published itself, for the same person."""
        if kind == "edit":
            return target.sender == sender  # clients ignore edits of others' messages
        if kind == "delete":
            return target.sender != self.user_id  # our own messages are someone else's
        return True

    async def _already_published(
        self, room: Room, room_id: str, event_id: str, made: Inbound, *, nick: str, sender: str
    ) -> bool:
        """After a crash: was this event published before its batch was checkpointed?"""
        done = self.checkpoint.take(self.scalar.origin(room.link), made.body)
        if done is None:
            return False
        self.map.remember(room_id, event_id, done.id, nick=nick, sender=sender)
        log.info("matrix %s: %s was relayed before the restart; not again", self.name, event_id)
        return True

    async def _checkpoint(self, next_batch: str) -> None:
        await self.checkpoint.save(next_batch)

    async def _find_unsaved(self) -> None:
        """Restart: which events were published after the checkpoint, before a crash."""
        links = [
            (room.bridge.channel, self.scalar.origin(room.link))
            for room in self.rooms
            if room.link.inbound
        ]
        if links and (found := await self.checkpoint.find_unsaved(links)):
            log.info(
                "matrix %s: %d event(s) were relayed after the last checkpoint", self.name, found
            )

    def _display_name(self, room_id: str, user_id: str) -> str:
        room = self._client.rooms.get(room_id) if self._client is not None else None
        name = room.user_name(user_id) if room is not None else None
        return name if isinstance(name, str) and name else localpart(user_id)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real failure of a task group (not a cancellation)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
