"""Scalar/1 over WebSocket at `/scalar` (protocol §12), on the same session driver as TCP.

One binary WebSocket message carries one frame body. The connection is a
`SessionDriver` (scalar/driver.py) over a `WsSink`: the same decoding and
pre-scan, the same limits, rate limits, failed-ident allowance, liveness
rules and connection limits (`limits.connections`, per address), and the
same output accounting: what a peer has not taken counts against the
slow-consumer bound as it is queued; above half of it we read nothing more
from that peer, and past it the peer gets `bye{reason:"slow-consumer"}` and
is closed. Going out, the driver hands us complete length-prefixed frames;
we strip the prefix and send the body.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging

from aiohttp import WSMsgType, web

from ..runtime import wait_for
from ..scalar.driver import SessionDriver
from ..scalar.errors import BadMessage
from ..scalar.wire import MAX_FRAME
from .context import CONTEXT, WebContext
from .origin import check_origin

log = logging.getLogger(__name__)

PATH = "/scalar"
READ_LIMIT = 4 * MAX_FRAME
"""Largest message we read whole to answer `bad-frame`; past it aiohttp refuses it unread."""
_LIVE = web.AppKey("scalar-ws-connections", set["WsSink"])


class WsSink:
    """A driver's output to one WebSocket: a queue of bodies and the task sending them."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self.ws = ws
        self.transport = transport
        self.driver: SessionDriver | None = None
        self._out: collections.deque[bytes] = collections.deque()
        self.queued = 0
        self._wake = asyncio.Event()
        self._closing = False
        self.readable = asyncio.Event()
        self.readable.set()
        self.flushed = asyncio.Event()
        """Set once everything queued before `close()` has been sent."""

    # --- Sink -----------------------------------------------------------------------------

    def write(self, frames: list[bytes]) -> None:
        for frame in frames:
            body = frame[2:]
            self._out.append(body)
            self.queued += len(body)
        self._wake.set()

    def buffered(self) -> int:
        return self.queued

    def pause_reading(self) -> None:
        self.readable.clear()

    def resume_reading(self) -> None:
        self.readable.set()

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        self._closing = True
        self._out.clear()
        self._wake.set()
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]

    # --- the two loops --------------------------------------------------------------------

    async def write_loop(self) -> None:
        while True:
            while self._out:
                body = self._out.popleft()
                self.queued -= len(body)
                await self.ws.send_bytes(body)
                if self.driver is not None:
                    self.driver.drained()
            if self._closing:
                self.flushed.set()
                return
            self._wake.clear()
            await self._wake.wait()

    async def read_loop(self, driver: SessionDriver) -> None:
        ws = self.ws
        while not driver.finished.is_set() and not ws.closed:
            await self.readable.wait()
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY:
                driver.feed_body(msg.data)
            elif msg.type == WSMsgType.TEXT:
                driver.feed_error(
                    BadMessage("text WebSocket messages are not Scalar frames: send binary")
                )
            else:
                # CLOSE/CLOSING/CLOSED, or ERROR: aiohttp has already closed the socket, as it
                # does for a message past max_msg_size (refused unread, close code 1009).
                return


def _remote(request: web.Request) -> str:
    return request.remote or "?"


async def scalar_socket(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CONTEXT]
    check_origin(request, ctx.http)
    server = ctx.server
    remote = _remote(request)
    refusal = server.refusal(remote)
    if refusal is not None:
        log.warning("refusing WebSocket from %s: %s", remote, refusal)
        if refusal == "server full":
            raise web.HTTPServiceUnavailable(text="server full\n")
        raise web.HTTPTooManyRequests(text="too many connections from your address\n")
    ws = web.WebSocketResponse(max_msg_size=READ_LIMIT, autoping=True, compress=False)
    await ws.prepare(request)
    sink = WsSink(ws, request.transport)
    driver = server.attach(sink, remote, "websocket")
    if driver is None:  # the last place went while we upgraded
        await ws.close(code=1013, message=b"server full")
        return ws
    sink.driver = driver
    live = request.app[_LIVE]
    live.add(sink)
    writer = asyncio.ensure_future(sink.write_loop())
    reader = asyncio.ensure_future(sink.read_loop(driver))
    try:
        await asyncio.wait(
            (reader, asyncio.ensure_future(driver.finished.wait())),
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not driver.finished.is_set():
            driver.close()  # the peer went away: end the session
        with contextlib.suppress(Exception):
            await wait_for(asyncio.shield(writer), timeout=2.0)
    finally:
        driver.lost()
        live.discard(sink)
        for task in (reader, writer):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await ws.close()
    return ws


async def _shutdown(app: web.Application) -> None:
    """Say bye to every WebSocket session before the listener goes away."""
    live: set[WsSink] = app[_LIVE]
    for sink in list(live):
        if sink.driver is not None:
            sink.driver.session.bye("shutdown")
    waiting = [asyncio.ensure_future(sink.flushed.wait()) for sink in live]
    if waiting:
        _, late = await asyncio.wait(waiting, timeout=2.0)
        for task in late:
            task.cancel()
    for sink in list(live):
        with contextlib.suppress(Exception):
            await sink.ws.close(code=1001, message=b"shutdown")


def setup(app: web.Application, ctx: WebContext) -> None:
    app[_LIVE] = set()
    app.router.add_get(PATH, scalar_socket)
    app.on_shutdown.append(_shutdown)
