"""The requests of §5 and §11 as methods: what a Scalar client can ask.

`Requests` turns calls into typed messages and typed replies; its subclass
(`client.Client`) says how a request travels (`_request`) and what becomes of
subscriptions. Every publish carries a nonce (§10), a fresh one unless given.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from . import messages
from .events import Event
from .messages import (
    Catchup,
    EventFrame,
    History,
    Meta,
    Msg,
    Ok,
    Ping,
    Sub,
    TopicList,
    Topics,
    Unsub,
)


class Requests:
    async def _request(self, msg: messages.Message) -> messages.Reply:
        """Send one request and return its reply (raising the error it got)."""
        raise NotImplementedError

    def _subscribed(self, topic: str) -> None:
        """A `sub` succeeded."""

    def _unsubscribed(self, topic: str) -> None:
        """An `unsub` succeeded (`*` for all)."""

    async def sub(self, topic: str) -> Meta:
        reply = await self._request(Sub(topic=topic))
        assert isinstance(reply, Meta)
        self._subscribed(reply.topic)
        return reply

    async def unsub(self, topic: str = "*") -> None:
        reply = await self._request(Unsub(topic=topic))
        assert isinstance(reply, Ok)
        self._unsubscribed(topic.lower())

    async def publish(
        self,
        topic: str,
        body: str,
        *,
        kind: str = "text",
        reply_to: bytes | None = None,
        ctype: str | None = None,
        nick: str | None = None,
        origin: str | None = None,
        target: bytes | None = None,
        nonce: str | None = None,
    ) -> Event:
        """Publish and wait for the echo: the event as stored (with id and seq).

        Every publish carries a nonce (a fresh random one unless given), so the
        server publishes it once however often it is sent (§10).
        """
        reply = await self._request(
            Msg(
                topic=topic,
                body=body,
                kind=kind,
                reply_to=reply_to,
                ctype=ctype,
                nick=nick,
                origin=origin,
                target=target,
                nonce=nonce or new_nonce(),
            )
        )
        assert isinstance(reply, EventFrame)
        return reply.event

    async def edit(
        self, event: Event | bytes, body: str, *, topic: str | None = None, **extra: Any
    ) -> Event:
        """Replace the text of one of our earlier events (§11 `edit`)."""
        eid, where = _target(event, topic)
        return await self.publish(where, body, kind="edit", target=eid, **extra)

    async def delete(
        self, event: Event | bytes, reason: str = "", *, topic: str | None = None, **extra: Any
    ) -> Event:
        """Withdraw one of our earlier events (§11 `delete`)."""
        eid, where = _target(event, topic)
        return await self.publish(where, reason, kind="delete", target=eid, **extra)

    async def react(
        self, event: Event | bytes, key: str, *, topic: str | None = None, **extra: Any
    ) -> Event:
        """React to an event with `key` (an emoji or short text, ≤ 64 bytes)."""
        eid, where = _target(event, topic)
        return await self.publish(where, key, kind="react", target=eid, **extra)

    async def set_topic(self, topic: str, text: str, **extra: Any) -> Event:
        """Set a channel's title (§11 `topic`)."""
        return await self.publish(topic, text, kind="topic", **extra)

    async def catchup(
        self,
        topic: str,
        *,
        after: int | None = None,
        before: int | None = None,
        since: int | None = None,
        limit: int = 50,
    ) -> History:
        reply = await self._request(
            Catchup(topic=topic, after=after, before=before, since=since, limit=limit)
        )
        assert isinstance(reply, History)
        return reply

    async def history_after(self, topic: str, after: int = 0) -> AsyncIterator[Event]:
        """Every stored event with seq > `after`, oldest first, paging as needed."""
        while True:
            page = await self.catchup(topic, after=after, limit=1000)
            for event in page.events:
                yield event
                after = event.seq
            if not page.more or not page.events:
                return

    async def topics(
        self, prefix: str | None = None, offset: int = 0, limit: int = 100
    ) -> TopicList:
        reply = await self._request(Topics(offset=offset, limit=limit, prefix=prefix))
        assert isinstance(reply, TopicList)
        return reply

    async def ping(self) -> float:
        """Round-trip time in seconds."""
        start = time.perf_counter()
        await self._request(Ping(time=int(start * 1000)))
        return time.perf_counter() - start


def new_nonce() -> str:
    """A random `msg.nonce`: 96 bits, 16 characters."""
    return secrets.token_urlsafe(12)


def _target(event: Event | bytes, topic: str | None) -> tuple[bytes, str]:
    """The (id, topic) an edit, delete or react is about."""
    if isinstance(event, Event):
        return event.id, topic or event.topic
    if topic is None:
        raise ValueError("give the topic when naming the target event by its id")
    return event, topic
