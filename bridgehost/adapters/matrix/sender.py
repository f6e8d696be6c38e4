"""Scalar -> Matrix: one sender per room, in order, each send idempotent.

The sender takes the head of its link's queue together with the lines that
follow it in a burst (consecutive lines of one IRC speaker, each within
`relay.merge_window` of the one before: `outgoing.burst`) and sends them as
one Matrix message; a 1,000-line paste becomes a handful of messages and
arrives in about a second instead of half a minute. Rooms have their own
senders, so one slow room never holds up another.

Each action (`outgoing.plan`) carries a transaction id made from the Scalar
event id, so a send retried after a lost answer is never doubled; the batch
is kept as it is until it went out. `M_LIMIT_EXCEEDED` waits
`retry_after_ms`. What was sent is recorded in the event map, so later
edits, redactions and reactions find it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nio import AsyncClient, RoomPutStateResponse, RoomRedactResponse, RoomSendResponse

from ...runtime import Backoff
from ...scalar.events import Event
from ..base import OutQueue
from .config import MatrixAccount
from .eventmap import EventMap
from .events import txn_id
from .mentions import address_name, member_index
from .outgoing import Action, Redact, Send, SetTopic, burst, merged, plan
from .responses import Answer, classify
from .rooms import Room, Rooms
from .session import TokenRejected

log = logging.getLogger(__name__)

BATCH_MAX = 1000
"""Queued events looked at for one burst."""
QUIET_REFUSALS = frozenset({"M_DUPLICATE_ANNOTATION"})
"""Refusals that only mean "already so" (the bridge already reacted with that key)."""


class Sender:
    def __init__(
        self,
        account: MatrixAccount,
        rooms: Rooms,
        eventmap: EventMap,
        publishing: asyncio.Lock,
        transient: tuple[type[BaseException], ...],
    ) -> None:
        self.account = account
        self.relay = account.relay
        self.user_id = account.user_id
        self.rooms = rooms
        self.map = eventmap
        self.publishing = publishing
        self.transient = transient
        self.rate_limited = 0
        self.merged_sends = 0
        """Matrix messages that carried more than one Scalar event."""

    async def run(self, client: AsyncClient, room: Room, queue: OutQueue) -> None:
        """Send the link's queued Scalar events, in order, bursts merged."""
        backoff = Backoff(self.account.reconnect_initial, self.account.reconnect_max)
        window_ms = int(self.relay.merge_window * 1000) if self.relay.merge else 0
        while True:
            await queue.peek()
            await self.rooms.online.wait()
            await room.joined.wait()
            events = queue.head(BATCH_MAX)
            count = burst(events, window_ms=window_ms, max_bytes=self.relay.merge_max_bytes)
            batch = events[:count]
            dropped = room.status.dropped
            while True:
                try:
                    done = await self._send(client, room, batch)
                except self.transient as exc:
                    room.status.error(f"send failed: {_describe(exc)}")
                    await backoff.wait()
                    await self.rooms.online.wait()
                    await room.joined.wait()
                    continue
                backoff.reset()
                if done is not None:
                    break
            # Overflow while sending dropped events from the head: ours, oldest first.
            left = max(0, len(batch) - (room.status.dropped - dropped))
            for _ in range(left):
                if done:
                    queue.sent()
                else:
                    queue.pop()

    # --- one send --------------------------------------------------------------------------

    async def _mapped(self, room_id: str, scalar_id: bytes | None) -> str | None:
        """The Matrix event a Scalar event became here, once a relay in flight is mapped.

        A Scalar client (a bot, say) can answer or react to a relayed Matrix
        message before the adapter has recorded its ids; waiting for the
        publish in progress closes that gap. A merged message stands for
        several events and is not a target of its own.
        """
        if scalar_id is None:
            return None
        found = await self.map.sent(room_id, scalar_id)
        if found is None:
            async with self.publishing:  # a relay in flight records its ids under this lock
                found = await self.map.sent(room_id, scalar_id)
        return found.event_id if found is not None and not found.merged else None

    def _mention(self, client: AsyncClient, room_id: str, body: str) -> tuple[str, str] | None:
        name = address_name(body) if self.relay.mentions else None
        room = client.rooms.get(room_id)
        if name is None or room is None:
            return None
        users = [(uid, getattr(u, "display_name", None)) for uid, u in room.users.items()]
        user_id = member_index(users, self.user_id).get(name.casefold())
        return (name, user_id) if user_id else None

    async def _plan(self, client: AsyncClient, room_id: str, event: Event) -> Action | None:
        return plan(
            event,
            relay=self.relay,
            reply_event_id=await self._mapped(room_id, event.reply_to),
            target_event_id=await self._mapped(room_id, event.target),
            mention=self._mention(client, room_id, event.body),
        )

    async def _send(self, client: AsyncClient, room: Room, batch: list[Event]) -> bool | None:
        """Send one batch: True when sent, False when given up (refused, nothing to
        do), None to try again (rate-limited, not in the room)."""
        room_id = room.room_id
        assert room_id is not None
        event = merged(batch)
        try:
            action = await self._plan(client, room_id, event)
        except Exception:  # never let one event wedge the queue
            log.exception("matrix: cannot convert event seq %d; dropped", event.seq)
            room.status.error(f"dropped event seq {event.seq}: conversion failed")
            return False
        if action is None:
            return False
        txn = txn_id(event) + (f"+{len(batch)}" if len(batch) > 1 else "")
        resp = await self._act(client, room_id, action, txn)
        if resp is None:
            return False
        answer = classify(resp, (RoomSendResponse, RoomRedactResponse, RoomPutStateResponse))
        if answer.ok:
            if isinstance(resp, RoomSendResponse):
                for one in batch:
                    self.map.remember(room_id, resp.event_id, one.id, merged=len(batch) > 1)
                self.merged_sends += len(batch) > 1
            return True
        return await self._refused(client, room, answer)

    async def _act(self, client: AsyncClient, room_id: str, action: Action, txn: str) -> Any:
        if isinstance(action, Send):
            return await client.room_send(room_id, action.event_type, action.content, tx_id=txn)
        if isinstance(action, Redact):
            return await client.room_redact(room_id, action.event_id, action.reason, tx_id=txn)
        assert isinstance(action, SetTopic)
        current = client.rooms.get(room_id)
        if current is not None and (current.topic or "") == action.topic:
            return None
        return await client.room_put_state(room_id, "m.room.topic", {"topic": action.topic})

    async def _refused(self, client: AsyncClient, room: Room, answer: Answer) -> bool | None:
        room_id = room.room_id
        assert room_id is not None
        if answer.outcome == "rate limited":
            wait = answer.retry_after or 1.0
            self.rate_limited += 1
            room.status.error("rate-limited by the homeserver (M_LIMIT_EXCEEDED)")
            log.debug("matrix: rate-limited; resending in %.2f s", wait)
            await asyncio.sleep(wait)
            return None
        if answer.outcome == "token rejected":
            raise TokenRejected(f"{self.user_id}: access token rejected while sending")
        if answer.outcome == "forbidden" and not await self.rooms.still_joined(client, room_id):
            if room.joined.is_set():
                room.left("removed", f"not in {room.link.target}: {answer.message}")
            await room.joined.wait()
            return None
        if answer.outcome == "transient":
            raise ConnectionError(f"send failed: {answer.describe()}")
        if answer.code in QUIET_REFUSALS:
            return False
        room.status.error(f"dropped a message the homeserver refused: {answer.describe()}")
        return False


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
