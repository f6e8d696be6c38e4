"""asyncio client library for Scalar/1: bots out of process, the CLI, adapters, tests.

    async with await connect("tcp://127.0.0.1:7667", id="alice@localhost",
                             secret="pw") as client:
        await client.sub("#python@localhost")
        await client.publish("#python@localhost", "hello")
        async for event in client:
            print(event.nick or event.sender, event.body)

The protocol lives in `ClientProtocol` (sans-IO); this module moves its bytes.
Requests are matched to replies by `rid`; an `error` reply raises the typed
exception for its code (`RateLimited` carries `retry_after`). Events that are
not replies are queued for iteration. When the queue is full the client stops
reading, so a consumer that falls behind meets the server's slow-consumer
rule instead of growing memory here, except while a request waits for its
reply: replies never wait behind events, so a handler that publishes while
the queue is full still gets its echo.

Every publish carries a nonce. With `reconnect=` a lost connection is dialled
again with backoff: the client identifies again, re-subscribes, and re-sends
every unanswered request (publishes with their nonce, so the server
publishes each exactly once); callers awaiting a reply just wait longer, and
`async for` goes on, first with what its topics got while it was away
(fetched with `catchup`, each event once, in order; continuity.py), then live.
Without it, a lost connection ends the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..runtime import Backoff, TaskSet, wait_for
from . import messages
from .client_protocol import Answer, ClientPhase, Closed, Delivery, Notice
from .continuity import Continuity
from .dial import DEFAULT_PORT, Dial, Endpoint, Wire, dial_socket, dial_url
from .errors import (
    AuthFailed,
    BadFrame,
    ConnectionClosed,
    Forbidden,
    ScalarError,
    Unsupported,
    error_from_code,
)
from .events import Event
from .messages import (
    Error,
    EventFrame,
    Ident,
    Meta,
    Msg,
    Sub,
    Welcome,
)
from .requests import Requests, new_nonce

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PORT",
    "Client",
    "Dial",
    "Endpoint",
    "connect",
    "connect_socket",
    "dial_socket",
    "dial_url",
    "new_nonce",
]

_FINAL = frozenset({AuthFailed.code, Unsupported.code, Forbidden.code, BadFrame.code})
"""Reasons a server gives that another try would only repeat."""


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
    reconnect: Backoff | bool = False,
) -> Client:
    """Connect and `ident`. Omit `id` for a guest session (if the server allows).

    `reconnect=True` (or a `Backoff`) keeps the client alive across lost
    connections; a guest gets a new ID each time."""
    return await Client.open(
        dial_url(url, ssl_context),
        id=id,
        secret=secret,
        method=method,
        client_name=client_name,
        timeout=timeout,
        queue_size=queue_size,
        reconnect=reconnect,
    )


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
    """Ident over an already connected socket (e.g. `ScalarServer.connect_local()`).
    A socket cannot be dialled again: use `Client.open(dial_socket(...))` to reconnect."""
    used = False

    async def once() -> socket.socket:
        nonlocal used
        if used:
            raise ConnectionClosed("a given socket cannot be dialled again")
        used = True
        return sock

    return await Client.open(
        dial_socket(once),
        id=id,
        secret=secret,
        method=method,
        client_name=client_name,
        timeout=timeout,
        queue_size=queue_size,
    )


@dataclass(slots=True)
class _Outstanding:
    msg: messages.Message
    future: asyncio.Future[messages.Reply]
    rid: int | None = None
    """Its rid on the current connection; None while not sent on it."""


class Client(Requests):
    def __init__(
        self,
        dial: Dial,
        *,
        id: str | None = None,
        secret: str | None = None,
        method: str | None = None,
        client_name: str = "bridgehost",
        timeout: float = 10.0,
        queue_size: int = 10000,
        reconnect: Backoff | bool = False,
    ) -> None:
        if secret is not None and method is None:
            method = "token" if (id or "").startswith("!") else "password"
        self._dial = dial
        self._ident = Ident(id=id, method=method, secret=secret, client=client_name)
        self._timeout = timeout
        self._queue_size = max(1, queue_size)
        self._backoff = Backoff(0.5, 30.0) if reconnect is True else (reconnect or None)
        self._wire: Wire | None = None
        self._outstanding: dict[int, _Outstanding] = {}
        self._keys = itertools.count()
        self._events: deque[Event] = deque()
        self._changed = asyncio.Event()
        self._subs: dict[str, None] = {}
        """Topics to subscribe to again after a reconnect, in the order first asked."""
        self._continuity = Continuity()
        self._tasks = TaskSet("scalar-client")
        self.id = ""
        self.server = ""
        self.limits: messages.Limits | None = None
        self.closed = False
        """For good: closed by us, refused by the server, or lost without `reconnect`."""
        self.close_reason: str | None = None
        self.reconnects = 0
        self.errors: list[Error] = []
        """Errors the server sent without a rid (e.g. for an undecodable frame)."""

    @classmethod
    async def open(cls, dial: Dial, **options: Any) -> Client:
        """Dial and `ident`; raises what the server or the transport said."""
        client = cls(dial, **options)
        try:
            await client._connect()
        except BaseException:
            await client.close()
            raise
        client._resume()
        return client

    @property
    def connected(self) -> bool:
        return self._wire is not None and self._wire.ready

    # --- connections ---------------------------------------------------------------------

    async def _connect(self) -> None:
        wire = Wire(self)
        await wait_for(self._dial(lambda: wire), self._timeout)
        if self.closed:
            if wire.transport is not None:
                wire.transport.close()
            raise ConnectionClosed(f"connection closed: {self.close_reason}")
        if wire.lost or wire.proto.phase is not ClientPhase.IDENT:
            self._drop(wire)
            raise ConnectionClosed(f"connection closed: {wire.proto.close_reason}")
        self._wire = wire
        wire.ident_rid = wire.proto.request(self._ident)
        wire.flush()
        try:
            reply = await wait_for(asyncio.shield(wire.ident), self._timeout)
        except BaseException:
            self._drop(wire)
            raise
        if isinstance(reply, Error):
            self._drop(wire)
            raise error_from_code(reply.code, reply.text, rid=None, retry_after=reply.retry_after)
        assert isinstance(reply, Welcome)
        self.id, self.server, self.limits = reply.id, reply.server, reply.limits

    def _resume(self) -> None:
        """Subscribe again, then send every unanswered request, oldest first."""
        wire = self._wire
        if wire is None or wire.lost:
            self._after_loss(self.close_reason or "connection lost")
            return
        unsent = [(k, o) for k, o in self._outstanding.items() if o.rid is None]
        if self.reconnects:
            for topic in self._subs:
                self._resubscribe(topic)
        for key, o in unsent:
            self._send(wire, key, o)
        wire.ready = True

    def _resubscribe(self, topic: str) -> None:
        future: asyncio.Future[messages.Reply] = asyncio.get_running_loop().create_future()

        filling = self._continuity.hold(topic)

        def check(f: asyncio.Future[messages.Reply]) -> None:
            reply = None if f.cancelled() or f.exception() else f.result()
            if isinstance(reply, Error):
                log.warning("could not subscribe to %s again: %s", topic, reply.code)
            if not filling:
                return
            after = self._continuity.seen(topic)
            if isinstance(reply, Meta) and reply.history and reply.seq > after > 0:
                self._tasks.spawn(self._fill(topic, after), name=f"scalar-fill-{topic}")
            else:
                self._hand_over(topic, [])

        future.add_done_callback(check)
        key = next(self._keys)
        self._outstanding[key] = entry = _Outstanding(Sub(topic=topic), future)
        future.add_done_callback(lambda _: self._outstanding.pop(key, None))
        assert self._wire is not None
        self._send(self._wire, key, entry)

    async def _fill(self, topic: str, after: int) -> None:
        """Fetch what `topic` got while we were away, then hand it over before the live
        events held meanwhile."""
        missed: list[Event] = []
        try:
            async for event in self.history_after(topic, after):
                missed.append(event)
        except ScalarError as exc:
            log.warning("could not fetch what %s got while we were away: %s", topic, exc)
        finally:
            self._hand_over(topic, missed)

    def _hand_over(self, topic: str, missed: list[Event]) -> None:
        self._events.extend(self._continuity.release(topic, missed))
        self._changed.set()
        self._update_reading()

    def _send(self, wire: Wire, key: int, o: _Outstanding) -> None:
        o.rid = wire.proto.request(o.msg)
        wire.by_rid[o.rid] = key
        wire.flush()
        self._update_reading()

    def _drop(self, wire: Wire) -> None:
        """Close a connection we no longer want (it reports its loss as usual)."""
        if wire.transport is not None:
            wire.transport.close()
        self._lost(wire, wire.proto.close_reason or "closed")

    def _lost(self, wire: Wire, reason: str) -> None:
        if wire.lost:
            return
        wire.lost = True
        if wire.transport is not None:
            wire.transport.close()
        if not wire.ident.done():
            wire.ident.set_exception(ConnectionClosed(f"connection closed: {reason}"))
            wire.ident.exception()
        for key in wire.by_rid.values():
            entry = self._outstanding.get(key)
            if entry is not None:
                entry.rid = None
        if self._wire is not wire:
            return
        self._wire = None
        if wire.ready:
            self._after_loss(reason)
        # else: a connection still being opened; whoever opens it sees it fail

    def _after_loss(self, reason: str) -> None:
        if self.closed:
            return
        if self._backoff is None or reason in _FINAL:
            self._terminate(reason)
            return
        log.info("connection to the Scalar server lost (%s); reconnecting", reason)
        self._tasks.spawn(self._reconnect(), name="scalar-reconnect")

    async def _reconnect(self) -> None:
        backoff = self._backoff
        assert backoff is not None
        while not self.closed:
            await asyncio.sleep(backoff.next())
            try:
                await self._connect()
            except (AuthFailed, Unsupported, Forbidden) as exc:
                self._terminate(f"reconnecting was refused: {exc.code}", exc)
                return
            except (OSError, TimeoutError, ScalarError) as exc:
                log.info("reconnecting failed: %s", exc or type(exc).__name__)
                continue
            backoff.started()
            self.reconnects += 1
            self._resume()
            log.info("reconnected to the Scalar server as %s", self.id)
            return

    def _terminate(self, reason: str, error: ScalarError | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        for entry in self._outstanding.values():
            if not entry.future.done():
                entry.future.set_exception(
                    error or ConnectionClosed(f"connection closed: {reason}")
                )
                entry.future.exception()
        self._outstanding.clear()
        self._changed.set()

    async def close(self, reason: str | None = None) -> None:
        wire = self._wire
        if wire is not None and not wire.lost:
            wire.proto.close(reason)
            wire.flush()
        self._terminate(reason or "closed by client")
        await self._tasks.close()
        if wire is not None:
            self._wire = None
            if wire.transport is not None:
                wire.transport.close()
            with contextlib.suppress(Exception):
                await wait_for(asyncio.shield(wire.gone), 2)
            self._lost(wire, reason or "closed by client")

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- input ---------------------------------------------------------------------------

    def _on_data(self, wire: Wire, data: bytes) -> None:
        if wire.lost:
            return
        for happening in wire.proto.receive(data):
            if isinstance(happening, Answer):
                self._answered(wire, happening)
            elif isinstance(happening, Delivery):
                if self._continuity.live(happening.event):
                    self._events.append(happening.event)
                    self._changed.set()
            elif isinstance(happening, Notice):
                log.warning("server error: %s: %s", happening.error.code, happening.error.text)
                self.errors.append(happening.error)
                del self.errors[:-100]
            elif isinstance(happening, Closed):
                self._lost(wire, happening.reason)
                return
        wire.flush()
        self._update_reading()

    def _answered(self, wire: Wire, answer: Answer) -> None:
        if answer.rid == wire.ident_rid:
            if not wire.ident.done():
                wire.ident.set_result(answer.reply)
            return
        key = wire.by_rid.pop(answer.rid, None)
        entry = None if key is None else self._outstanding.pop(key, None)
        if isinstance(answer.reply, EventFrame) and isinstance(answer.request, Msg):
            self._continuity.note(answer.reply.event, echo=True)
        if entry is not None and not entry.future.done():
            entry.future.set_result(answer.reply)

    def _update_reading(self) -> None:
        """Stop reading while the event queue is full, unless a reply is awaited."""
        wire = self._wire
        if wire is None or wire.transport is None or wire.lost:
            return
        full = len(self._events) >= self._queue_size and not wire.by_rid
        reading = wire.transport.is_reading()
        if full and reading:
            wire.transport.pause_reading()
        elif not full and not reading:
            wire.transport.resume_reading()

    # --- requests ------------------------------------------------------------------------

    async def _request(self, msg: messages.Message) -> messages.Reply:
        if self.closed:
            raise ConnectionClosed(f"connection closed: {self.close_reason}")
        future: asyncio.Future[messages.Reply] = asyncio.get_running_loop().create_future()
        key = next(self._keys)
        entry = self._outstanding[key] = _Outstanding(msg, future)
        wire = self._wire
        if wire is not None and wire.ready and not wire.lost:
            self._send(wire, key, entry)
        try:
            if wire is not None and not wire.writable.is_set():
                await wire.writable.wait()
            reply = await future
        finally:
            self._outstanding.pop(key, None)
            self._forget(entry)
        if isinstance(reply, Error):
            raise error_from_code(
                reply.code, reply.text, rid=reply.rid, retry_after=reply.retry_after
            )
        return reply

    def _subscribed(self, topic: str) -> None:
        self._subs[topic] = None

    def _unsubscribed(self, topic: str) -> None:
        if topic == "*":
            self._subs.clear()
        else:
            self._subs.pop(topic, None)

    def _forget(self, entry: _Outstanding) -> None:
        wire = self._wire
        if entry.rid is not None and wire is not None:
            wire.by_rid.pop(entry.rid, None)
            wire.proto.forget(entry.rid)
            self._update_reading()

    # --- incoming events ------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._events:
                event = self._events.popleft()
                self._update_reading()
                return event
            if self.closed:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next incoming event; raises TimeoutError, or ConnectionClosed at the end."""
        try:
            return await wait_for(self.__anext__(), timeout)
        except StopAsyncIteration:
            raise ConnectionClosed(f"connection closed: {self.close_reason}") from None
