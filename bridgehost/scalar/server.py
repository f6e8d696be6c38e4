"""asyncio listeners (tcp, tls, unix, in-process) over the sans-IO session.

Output is coalesced: `Connection.push` only appends to a list, and one
callback per loop iteration writes each dirty connection's frames with a
single `transport.write`. That turns N deliveries to one subscriber in one
iteration into one syscall, which is where a fan-out server spends its CPU.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from ..runtime import TaskSet
from . import ids
from .auth import Authenticator
from .hub import Hub
from .messages import Bye
from .pipes import ChildEnds, PipePair
from .session import AddressLimiter, Extension, Session, Shared
from .settings import Clock, ServerSettings, SystemClock
from .store import Store
from .wire import FrameDecoder, encode_frame

log = logging.getLogger(__name__)

SLOW_CONSUMER_GRACE = 2.0
"""Seconds a cut-off slow consumer has to read its backlog and the `bye`."""

_INBOX_HIGH = 256
"""Decoded frames waiting for the session before we stop reading the socket."""


@dataclass(frozen=True, slots=True)
class ListenSpec:
    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""

    @classmethod
    def parse(cls, url: str) -> ListenSpec:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            path = (parts.netloc + parts.path) if parts.netloc else parts.path
            if not path:
                raise ValueError(f"{url}: unix:// needs a path, e.g. unix:///run/bridgehost.sock")
            return cls("unix", path=path)
        if parts.scheme not in ("tcp", "tls"):
            raise ValueError(f"{url}: scheme must be tcp://, tls:// or unix://")
        if not parts.hostname:
            raise ValueError(f"{url}: missing host")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{url}: bad port") from exc
        if port is None:
            raise ValueError(f"{url}: missing port")
        return cls(parts.scheme, host=parts.hostname, port=port)

    def url(self, port: int | None = None) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port if port is None else port}"


class Connection(asyncio.Protocol):
    def __init__(
        self,
        server: ScalarServer,
        remote: str | None = None,
        *,
        preauth: str | None = None,
        extensions: Mapping[str, Extension] | None = None,
    ) -> None:
        self.server = server
        self.remote = remote or "?"
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder(server.settings.limits.frame)
        self.session = Session(server.shared, self, preauth=preauth, extensions=extensions)
        self._inbox: collections.deque[object] = collections.deque()
        self._wake = asyncio.Event()
        self._out: list[bytes] = []
        self._dirty = False
        self._close_after_flush = False
        self._paused = False
        self.lost = False

    # Peer / Conn interface
    @property
    def id(self) -> str:
        return self.session.id

    def push(self, data: bytes) -> None:
        if self.lost or self._close_after_flush:
            return
        self._out.append(data)
        if not self._dirty:
            self._dirty = True
            self.server._mark_dirty(self)

    def close(self) -> None:
        self._close_after_flush = True
        if not self._dirty:
            self._dirty = True
            self.server._mark_dirty(self)

    def flush(self) -> None:
        self._dirty = False
        transport = self.transport
        if transport is None or self.lost:
            return
        if self._out:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            transport.write(data)
            if transport.get_write_buffer_size() > self.server.settings.limits.send_buffer:
                self._slow_consumer(transport)
                return
        if self._close_after_flush:
            transport.close()

    def _slow_consumer(self, transport: asyncio.Transport) -> None:
        log.warning("disconnecting slow consumer %s (%s)", self.id or "-", self.remote)
        self.server.slow_consumers += 1
        # Best effort: the bye goes behind the backlog the peer is not reading, and
        # the peer gets a short grace to read it; nothing more is queued meanwhile.
        transport.write(encode_frame(Bye(reason="slow-consumer").to_map()))
        self.session.bye_reason = "slow-consumer"
        self.session.closed()
        self._close_after_flush = True
        self._wake.set()
        transport.close()
        loop = asyncio.get_running_loop()
        loop.call_later(SLOW_CONSUMER_GRACE, transport.abort)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if self.remote == "?" and isinstance(peer, tuple):
            self.remote = str(peer[0])
        elif self.remote == "?":
            self.remote = "unix"
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.server._admit(self):
            transport.write(encode_frame(Bye(reason="server-full").to_map()))
            transport.close()
            self.lost = True
            return
        self.server.tasks.spawn(self._run(), name=f"conn-{self.remote}")

    def data_received(self, data: bytes) -> None:
        if self.session.closing or self.decoder.failed:
            return
        self._inbox.extend(self.decoder.feed(data))
        if len(self._inbox) > _INBOX_HIGH and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake.set()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake.set()
        self.server._forget(self)

    async def _run(self) -> None:
        session = self.session
        try:
            while not self.lost:
                while self._inbox and not session.closing:
                    await session.handle(self._inbox.popleft())  # type: ignore[arg-type]
                if session.closing:
                    break
                if self._paused and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                self._wake.clear()
                await self._wake.wait()
        finally:
            session.closed()
            if not self.lost and self.transport is not None:
                self.close()
            log.debug("connection from %s ended", self.remote)


class PluginConnection(Connection):
    """A plugin's session on its stdio (§12): knows when it ended, and why."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ended = asyncio.Event()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.ended.set()

    def end_reason(self) -> str:
        """Why the session ended, for the log: the server's `bye` and its error, if any."""
        session = self.session
        if session.bye_reason is None:
            return "the plugin closed its stdout (or exited)"
        error = session.last_error
        detail = f": {error.code}: {error.text}" if error is not None else ""
        return f"bridgehost ended it (bye {session.bye_reason}{detail})"

    def abort(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()


class ScalarServer:
    """The Scalar/1 server: listeners, sessions, hub. The store is passed in."""

    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        *,
        clock: Clock | None = None,
        tls: ssl.SSLContext | None = None,
        unix_mode: int = 0o600,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.hub = Hub(settings, store, self.clock)
        self.auth = Authenticator(store, settings.domain)
        self.shared = Shared(
            settings,
            self.hub,
            self.auth,
            self.clock,
            AddressLimiter(settings.limits.auth_failures, self.clock),
        )
        self.tls = tls
        self.unix_mode = unix_mode
        self.tasks = TaskSet("scalar-server")
        self.connections: set[Connection] = set()
        self.listeners: list[asyncio.Server] = []
        self.urls: list[str] = []
        self.slow_consumers = 0
        self._dirty: list[Connection] = []
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------

    async def start(self, listen: list[str]) -> list[str]:
        """Load topics and open every listener; returns the bound URLs."""
        self._loop = asyncio.get_running_loop()
        await self.hub.load()
        for url in listen:
            spec = ListenSpec.parse(url)
            bound = await self._listen(spec)
            self.urls.append(bound)
            log.info("listening on %s", bound)
        self._sweeper = self.tasks.spawn(self._sweep(), name="liveness-sweeper")
        return self.urls

    async def _listen(self, spec: ListenSpec) -> str:
        loop = asyncio.get_running_loop()
        factory: Callable[[], Connection] = lambda: Connection(self)  # noqa: E731
        if spec.scheme == "unix":
            path = Path(spec.path)
            if path.is_socket():  # noqa: ASYNC240 - a stale socket from an earlier run
                path.unlink()  # noqa: ASYNC240
            old = os.umask(0o177)
            try:
                srv = await loop.create_unix_server(factory, path=str(path))
            finally:
                os.umask(old)
            os.chmod(path, self.unix_mode)
            self.listeners.append(srv)
            return spec.url()
        context = None
        if spec.scheme == "tls":
            if self.tls is None:
                raise ValueError(f"{spec.url()}: tls:// listener needs server.tls cert and key")
            context = self.tls
        srv = await loop.create_server(
            factory, host=spec.host, port=spec.port, ssl=context, reuse_address=True, backlog=1024
        )
        self.listeners.append(srv)
        port = srv.sockets[0].getsockname()[1]
        return spec.url(port)

    async def close(self, reason: str = "shutdown") -> None:
        """Stop listening, deliver what is being committed, say bye to everyone, wait for
        the sessions to end, then stop the hub's commit writer."""
        for srv in self.listeners:
            srv.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.hub.flush()  # publishers get their echoes before the bye
        for conn in list(self.connections):
            conn.session.bye(reason)
        if self._flush_scheduled:
            self._flush_all()
        await self.tasks.wait(timeout=5)
        await self.tasks.close()
        await self.hub.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for srv in self.listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 2)
        self.listeners.clear()

    # --- in-process clients -----------------------------------------------------

    async def connect_local(self) -> socket.socket:
        """A connected socket served by this server: how in-process adapters and bots
        speak the very same protocol as network clients, without a listener."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        await loop.connect_accepted_socket(lambda: Connection(self, "local"), sock=ours)
        return theirs

    async def connect_plugin(
        self, ident: str, *, extensions: Mapping[str, Extension] | None = None
    ) -> tuple[PluginConnection, ChildEnds]:
        """§12 inherited stdio: the pipe ends to hand a plugin as its stdin and
        stdout, served as a session already opened for the reserved ID `ident`.
        The caller closes its copies of the ends once the plugin has them.
        """
        ident = ids.normalise(ident)
        conn = PluginConnection(self, f"plugin {ident}", preauth=ident, extensions=extensions)
        _, ends = await PipePair.open(conn)
        return conn, ends

    # --- connection bookkeeping ---------------------------------------------------

    def _admit(self, conn: Connection) -> bool:
        if len(self.connections) >= self.settings.limits.connections:
            log.warning("refusing connection from %s: connection limit reached", conn.remote)
            return False
        self.connections.add(conn)
        return True

    def _forget(self, conn: Connection) -> None:
        self.connections.discard(conn)

    def _mark_dirty(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    async def _sweep(self) -> None:
        t = self.settings.timeouts
        interval = max(0.05, min(1.0, t.ident / 4, t.ping / 4, t.pong / 4))
        while True:
            await asyncio.sleep(interval)
            now = self.clock.monotonic()
            for conn in list(self.connections):
                conn.session.tick(now)
