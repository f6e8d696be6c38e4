"""The Scalar/1 server: listeners (tcp, tls, unix), in-process connections,
plugin pipes, and the sessions on them.

Every connection is a `SessionDriver` (driver.py) over some `Sink`; `attach`
is the one door in, where `limits.connections` and
`limits.connections_per_address` are applied to public connections (the
in-process adapters and bots, and plugins, do not count against them).
Output is coalesced: `push` only appends to a list, and one callback per loop
iteration hands each dirty connection's frames to its sink with a single
write. That turns N deliveries to one subscriber in one iteration into one
syscall, which is where a fan-out server spends its CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..runtime import TaskSet, wait_for
from . import ids
from .auth import Authenticator
from .driver import SessionDriver, Sink
from .hub import Hub
from .logins import AddressLimiter, address_key
from .pipes import ChildEnds, PipePair
from .session import Extension, Shared
from .settings import Clock, ServerSettings, SystemClock
from .store import Store
from .transports import PluginConnection, StreamProtocol

log = logging.getLogger(__name__)

__all__ = ["ListenSpec", "PluginConnection", "ScalarServer"]


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
        self.connections: set[SessionDriver] = set()
        """Every connection, public or not."""
        self.public = 0
        self._per_address: dict[str, int] = {}
        self.listeners: list[asyncio.Server] = []
        self.urls: list[str] = []
        self.slow_consumers = 0
        self._dirty: list[SessionDriver] = []
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
        kind = spec.scheme
        factory: Callable[[], StreamProtocol] = lambda: StreamProtocol(self, kind=kind)  # noqa: E731
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
        with contextlib.suppress(TimeoutError):  # publishers get their echoes before the bye
            await wait_for(self.hub.flush(), 10)
        for driver in list(self.connections):
            driver.session.bye(reason)
        if self._flush_scheduled:
            self._flush_all()
        await self.tasks.wait(timeout=5)
        await self.tasks.close()
        await self.hub.close()
        self.auth.close()
        for driver in list(self.connections):
            driver.sink.abort()
        for srv in self.listeners:
            with contextlib.suppress(Exception):
                await wait_for(srv.wait_closed(), 2)
        self.listeners.clear()

    # --- connections ----------------------------------------------------------------

    def attach(
        self,
        sink: Sink,
        remote: str,
        kind: str,
        *,
        public: bool = True,
        preauth: str | None = None,
        extensions: Mapping[str, Extension] | None = None,
    ) -> SessionDriver | None:
        """A session for a new connection over `sink`, or None when a public one would
        pass `limits.connections` or `limits.connections_per_address`. See driver.py
        for what the transport then does."""
        if public:
            refusal = self.refusal(remote)
            if refusal is not None:
                log.warning("refusing %s connection from %s: %s", kind, remote, refusal)
                return None
            key = address_key(remote)
            self.public += 1
            self._per_address[key] = self._per_address.get(key, 0) + 1
        driver = SessionDriver(
            self, sink, remote, kind, public=public, preauth=preauth, extensions=extensions
        )
        self.connections.add(driver)
        self.tasks.spawn(driver.run(), name=f"{kind}-{remote}")
        return driver

    def refusal(self, remote: str) -> str | None:
        """Why a new public connection from `remote` would be refused now, if it would:
        "server full" (`limits.connections`) or "too many from that address"
        (`limits.connections_per_address`, IPv6 per /64)."""
        limits = self.settings.limits
        if self.public >= limits.connections:
            return "server full"
        if self._per_address.get(address_key(remote), 0) >= limits.connections_per_address:
            return "too many from that address"
        return None

    def forget(self, driver: SessionDriver) -> None:
        if driver not in self.connections:
            return
        self.connections.discard(driver)
        if driver.public:
            self.public -= 1
            key = address_key(driver.remote)
            left = self._per_address.get(key, 0) - 1
            if left > 0:
                self._per_address[key] = left
            else:
                self._per_address.pop(key, None)

    def mark_dirty(self, driver: SessionDriver) -> None:
        self._dirty.append(driver)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for driver in dirty:
            driver.flush()

    def by_kind(self) -> dict[str, int]:
        """Connections per transport kind (tcp, tls, unix, local, websocket, stdio)."""
        kinds: dict[str, int] = {}
        for driver in self.connections:
            kinds[driver.kind] = kinds.get(driver.kind, 0) + 1
        return kinds

    # --- in-process clients and plugins ---------------------------------------------

    async def connect_local(self) -> socket.socket:
        """A connected socket served by this server: how in-process adapters and bots
        speak the very same protocol as network clients, without a listener. Such
        connections do not count against the public connection limits."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        await loop.connect_accepted_socket(
            lambda: StreamProtocol(self, kind="local", remote="local", public=False),
            sock=ours,
        )
        return theirs

    async def connect_plugin(
        self,
        ident: str,
        *,
        extensions: Mapping[str, Extension] | None = None,
        ours: tuple[int, int] | None = None,
    ) -> tuple[PluginConnection, ChildEnds | None]:
        """§12 inherited stdio: a session already opened for the reserved ID `ident`,
        served on a plugin's pipes: the plugin's `ident` must name it and needs no
        secret; any other ident is `auth-failed`. Not a public connection. Without
        `ours` (our read and write ends, from `pipes.make_pipes`, for a plugin
        started earlier) new pipes are made and the plugin's ends returned: the
        caller hands them over as its stdin and stdout, then closes its copies.
        `conn.ended` is set when the session is over.
        """
        ident = ids.normalise(ident)
        protocol = StreamProtocol(
            self,
            kind="stdio",
            remote=f"plugin {ident}",
            public=False,
            preauth=ident,
            extensions=extensions,
        )
        _, ends = await PipePair.open(protocol, ours)
        assert protocol.driver is not None  # not public: never refused
        return PluginConnection(protocol.driver), ends

    async def _sweep(self) -> None:
        t = self.settings.timeouts
        interval = max(0.05, min(1.0, t.ident / 4, t.ping / 4, t.pong / 4))
        while True:
            await asyncio.sleep(interval)
            now = self.clock.monotonic()
            for driver in list(self.connections):
                driver.session.tick(now)
