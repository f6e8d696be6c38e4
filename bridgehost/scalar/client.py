"""asyncio client library for Scalar/1: bots out of process, the CLI, adapters, tests.

    async with await connect("tcp://127.0.0.1:7667", id="alice@localhost",
                             secret="pw") as client:
        await client.sub("#python@localhost")
        await client.publish("#python@localhost", "hello")
        async for event in client:
            print(event.nick or event.sender, event.body)

Requests are matched to replies by `rid`; an `error` reply raises the typed
exception for its code (`RateLimited` carries `retry_after`). Events that are
not replies are queued for iteration; when the queue is full the client stops
reading, so a consumer that falls behind is handled by the server's
slow-consumer rule instead of growing memory here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import secrets
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from . import messages
from .errors import ConnectionClosed, ScalarError, error_from_code
from .events import Event
from .messages import (
    Bye,
    Catchup,
    Error,
    EventFrame,
    History,
    Ident,
    Meta,
    Msg,
    Ok,
    Ping,
    Pong,
    Sub,
    TopicList,
    Topics,
    Unsub,
    Welcome,
)
from .wire import FrameDecoder, encode_frame

log = logging.getLogger(__name__)

DEFAULT_PORT = 7667
_END = object()


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str = ""
    port: int = DEFAULT_PORT
    path: str = ""

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        if "://" not in url:
            url = "tcp://" + url
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return cls("unix", path=(parts.netloc + parts.path) or parts.path)
        if parts.scheme not in ("tcp", "tls") or not parts.hostname:
            raise ValueError(f"bad server URL {url!r}: use tcp://HOST:PORT, tls://, unix:///PATH")
        return cls(parts.scheme, parts.hostname, parts.port or DEFAULT_PORT)


async def connect(
    url: str,
    *,
    id: str | None = None,
    secret: str | None = None,
    method: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    client_name: str = "bridgehost",
    timeout: float = 10.0,
    queue_size: int = 10000,
) -> Client:
    """Connect and `ident`. Omit `id` for a guest session (if the server allows)."""
    ep = Endpoint.parse(url)
    if ep.scheme == "unix":
        opening = asyncio.open_unix_connection(ep.path)
    else:
        context = None
        if ep.scheme == "tls":
            context = ssl_context or ssl.create_default_context()
        opening = asyncio.open_connection(ep.host, ep.port, ssl=context)
    reader, writer = await asyncio.wait_for(opening, timeout)
    client = Client(reader, writer, queue_size=queue_size)
    await client._ident(id, secret, method, client_name, timeout)
    return client


async def connect_socket(
    sock: socket.socket,
    *,
    id: str,
    secret: str,
    method: str | None = None,
    client_name: str = "bridgehost",
    timeout: float = 10.0,
    queue_size: int = 10000,
) -> Client:
    """Ident over an already connected socket (e.g. `ScalarServer.connect_local()`)."""
    reader, writer = await asyncio.open_connection(sock=sock)
    client = Client(reader, writer, queue_size=queue_size)
    await client._ident(id, secret, method, client_name, timeout)
    return client


class Client:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, queue_size: int
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder()
        self._rids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[messages.Reply]] = {}
        self._events: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._reader_task: asyncio.Task[None] | None = None
        self.id = ""
        self.server = ""
        self.limits: messages.Limits | None = None
        self.closed = False
        self.close_reason: str | None = None
        self.errors: list[Error] = []
        """Errors the server sent without a rid (e.g. for an undecodable frame)."""

    # --- lifecycle -----------------------------------------------------------------

    async def _ident(
        self, id: str | None, secret: str | None, method: str | None, name: str, timeout: float
    ) -> None:
        self._reader_task = asyncio.get_running_loop().create_task(self._read(), name="scalar-rx")
        if secret is not None and method is None:
            method = "token" if (id or "").startswith("!") else "password"
        try:
            reply = await asyncio.wait_for(
                self._request(Ident(id=id, method=method, secret=secret, client=name)), timeout
            )
        except BaseException:
            await self.close()
            raise
        assert isinstance(reply, Welcome)
        self.id, self.server, self.limits = reply.id, reply.server, reply.limits

    async def close(self, reason: str | None = None) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._send(Bye(reason=reason))
                await self._writer.drain()
        self._shutdown(reason or "closed by client")
        with contextlib.suppress(Exception):
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _shutdown(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed(f"connection closed: {reason}"))
        self._pending.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(_END)

    # --- transport -------------------------------------------------------------------

    def _send(self, msg: messages.Message) -> None:
        if self.closed:
            raise ConnectionClosed(f"connection closed: {self.close_reason}")
        self._writer.write(encode_frame(msg.to_map()))

    async def _request(self, msg: messages.Message) -> messages.Reply:
        rid = next(self._rids) % 2**32
        msg = _with_rid(msg, rid)
        fut: asyncio.Future[messages.Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            self._send(msg)
            await self._writer.drain()
            reply = await fut
        finally:
            self._pending.pop(rid, None)
        if isinstance(reply, Error):
            raise error_from_code(reply.code, reply.text, rid=rid, retry_after=reply.retry_after)
        return reply

    async def _read(self) -> None:
        reason = "connection lost"
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for item in self._decoder.feed(data):
                    if isinstance(item, ScalarError):
                        log.warning("undecodable frame from server: %s", item)
                        if self._decoder.failed:
                            reason = "bad frame from server"
                            return
                        continue
                    bye = await self._dispatch(item)
                    if bye is not None:
                        reason = bye
                        return
        except (ConnectionError, OSError) as exc:
            reason = f"connection lost: {exc}"
        finally:
            self._shutdown(reason)

    async def _dispatch(self, item: dict[str, Any]) -> str | None:
        try:
            msg = messages.parse_reply(item)
        except ScalarError as exc:
            log.warning("unexpected message from server: %s", exc)
            return None
        if isinstance(msg, Bye):
            return msg.reason or "bye"
        if isinstance(msg, Ping):
            self._send(Pong(time=msg.time, rid=msg.rid))
            return None
        rid = msg.rid
        if rid is not None and rid in self._pending:
            fut = self._pending[rid]
            if not fut.done():
                fut.set_result(msg)
            return None
        if isinstance(msg, EventFrame):
            await self._events.put(msg.event)
        elif isinstance(msg, Error):
            log.warning("server error: %s: %s", msg.code, msg.text)
            self.errors.append(msg)
            del self.errors[:-100]
        return None

    # --- requests ------------------------------------------------------------------------

    async def sub(self, topic: str) -> Meta:
        reply = await self._request(Sub(topic=topic))
        assert isinstance(reply, Meta)
        return reply

    async def unsub(self, topic: str = "*") -> None:
        reply = await self._request(Unsub(topic=topic))
        assert isinstance(reply, Ok)

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
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._request(Ping(time=int(start * 1000)))
        return loop.time() - start

    # --- incoming events ------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        item = await self._events.get()
        if item is _END:
            self._events.put_nowait(_END)
            raise StopAsyncIteration
        assert isinstance(item, Event)
        return item

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next incoming event; raises TimeoutError, or ConnectionClosed at the end."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except StopAsyncIteration:
            raise ConnectionClosed(f"connection closed: {self.close_reason}") from None


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


def _with_rid(msg: messages.Message, rid: int) -> messages.Message:
    return dataclasses.replace(msg, rid=rid)  # type: ignore[type-var]
