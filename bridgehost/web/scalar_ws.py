"""Scalar/1 over WebSocket at `/scalar` (protocol §12), on the same `Session` as TCP.

One binary WebSocket message carries one frame body. Each body gets the
2-byte length it would have had over TCP and goes through the same
`FrameDecoder` (so the same pre-scan and the same errors), then to a
`Session` built on the server's shared state: same limits, rate limits,
failed-ident allowance and liveness rules. Going out, the session pushes
complete length-prefixed frames; we strip the prefix and send the body.

Output a peer has not taken counts against the server's slow-consumer
bound as it is queued; above half of it we read nothing more from that
peer, and past it the peer gets `bye{reason:"slow-consumer"}` and is closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging

from aiohttp import WSMsgType, web

from ..scalar.errors import BadFrame, BadMessage
from ..scalar.messages import Bye
from ..scalar.server import ScalarServer
from ..scalar.session import Session
from ..scalar.wire import MAX_FRAME, FrameDecoder, encode_frame
from .context import CONTEXT, WebContext
from .origin import check_origin

log = logging.getLogger(__name__)

PATH = "/scalar"
TICK = 1.0
"""Seconds between liveness checks (ident deadline, ping, pong deadline) per connection."""
SLOW_CONSUMER_GRACE = 2.0
"""Seconds a cut-off slow consumer has to read its backlog and the `bye`."""
READ_LIMIT = 4 * MAX_FRAME
"""Largest message we read whole to answer `bad-frame`; past it aiohttp refuses it unread."""
_LIVE = web.AppKey("scalar-ws-connections", set["WsConnection"])


class WsConnection:
    """The transport side of one session over a WebSocket (the `Conn` of `Session`)."""

    def __init__(
        self,
        server: ScalarServer,
        ws: web.WebSocketResponse,
        remote: str,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        self.ws = ws
        self.remote = remote
        self.transport = transport
        self.limit = server.settings.limits.send_buffer
        self.decoder = FrameDecoder(server.settings.limits.frame)
        self.session = Session(server.shared, self)
        self.server = server
        self._out: collections.deque[bytes] = collections.deque()
        self.queued = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._close_after_flush = False
        self.slow = False
        self.flushed = asyncio.Event()
        """Set once everything queued before `close()` has been sent."""

    @property
    def id(self) -> str:
        return self.session.id

    # --- Conn --------------------------------------------------------------------------

    def push(self, data: bytes) -> None:
        """Queue one complete frame; its body is one WebSocket message."""
        if self._close_after_flush or self.slow:
            return
        body = data[2:]
        self._out.append(body)
        self.queued += len(body)
        if self.queued > self.limit // 2:
            self._drained.clear()
        self._wake.set()
        if self.queued > self.limit:
            self._slow_consumer()

    def close(self) -> None:
        self._close_after_flush = True
        self._wake.set()

    def _slow_consumer(self) -> None:
        """Cut the peer off; called from `push`, which may run inside the hub's fan-out
        loop, so the session is closed (which unsubscribes) on the next loop turn."""
        log.warning("disconnecting slow WebSocket consumer %s (%s)", self.id or "-", self.remote)
        self.server.slow_consumers += 1
        self.slow = True
        # Best effort, behind the backlog; nothing more is queued after it.
        self._out.append(encode_frame(Bye(reason="slow-consumer").to_map())[2:])
        self._close_after_flush = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        loop.call_soon(self.session.closed)
        transport = self.transport
        if transport is not None:
            loop.call_later(SLOW_CONSUMER_GRACE, transport.abort)  # type: ignore[attr-defined]

    # --- the two loops ------------------------------------------------------------------

    async def write_loop(self) -> None:
        ws = self.ws
        while True:
            while self._out:
                body = self._out.popleft()
                self.queued -= len(body)
                await ws.send_bytes(body)
                if self.queued <= self.limit // 2:
                    self._drained.set()
            if self._close_after_flush:
                self.flushed.set()
                return
            self._wake.clear()
            await self._wake.wait()

    async def read_loop(self) -> None:
        ws = self.ws
        session = self.session
        clock = self.server.clock
        while not session.closing and not ws.closed:
            await self._drained.wait()
            try:
                msg = await ws.receive(timeout=TICK)
            except TimeoutError:
                session.tick(clock.monotonic())
                continue
            if msg.type == WSMsgType.BINARY:
                data: bytes = msg.data
                if not data or len(data) > MAX_FRAME:
                    await session.handle(
                        BadFrame(f"a frame body is 1 to {MAX_FRAME} bytes, not {len(data)}")
                    )
                    continue
                for item in self.decoder.feed(len(data).to_bytes(2, "little") + data):
                    await session.handle(item)
            elif msg.type == WSMsgType.TEXT:
                await session.handle(
                    BadMessage("text WebSocket messages are not Scalar frames: send binary")
                )
            else:
                # CLOSE/CLOSING/CLOSED, or ERROR: aiohttp has already closed the socket, as it
                # does for a message past max_msg_size (refused unread, close code 1009).
                return
            session.tick(clock.monotonic())


def _remote(request: web.Request) -> str:
    return request.remote or "?"


async def scalar_socket(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CONTEXT]
    check_origin(request, ctx.http)
    server = ctx.server
    live = request.app[_LIVE]
    limits = server.settings.limits
    remote = _remote(request)
    if len(server.connections) + len(live) >= limits.connections:
        log.warning("refusing WebSocket from %s: connection limit reached", remote)
        raise web.HTTPServiceUnavailable(text="server full\n")
    if sum(1 for c in live if c.remote == remote) >= limits.connections_per_address:
        log.warning("refusing WebSocket from %s: too many from that address", remote)
        raise web.HTTPTooManyRequests(text="too many connections from your address\n")
    ws = web.WebSocketResponse(max_msg_size=READ_LIMIT, autoping=True, compress=False)
    await ws.prepare(request)
    conn = WsConnection(server, ws, remote, request.transport)
    live.add(conn)
    writer = asyncio.ensure_future(conn.write_loop())
    try:
        await conn.read_loop()
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(writer), timeout=2.0)
    finally:
        conn.session.closed()
        live.discard(conn)
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer
        await ws.close()
    return ws


async def _shutdown(app: web.Application) -> None:
    """Say bye to every WebSocket session before the listener goes away."""
    live: set[WsConnection] = app[_LIVE]
    for conn in list(live):
        conn.session.bye("shutdown")
    waiting = [asyncio.ensure_future(conn.flushed.wait()) for conn in live]
    if waiting:
        _, late = await asyncio.wait(waiting, timeout=2.0)
        for task in late:
            task.cancel()
    for conn in list(live):
        with contextlib.suppress(Exception):
            await conn.ws.close(code=1001, message=b"shutdown")


def setup(app: web.Application, ctx: WebContext) -> None:
    app[_LIVE] = set()
    app.router.add_get(PATH, scalar_socket)
    app.on_shutdown.append(_shutdown)
