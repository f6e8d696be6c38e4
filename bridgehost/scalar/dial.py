"""How a client reaches a server: URLs, the dial functions `Client` calls each
time it (re)connects, and the `Wire` (asyncio protocol) one connection runs on."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from . import messages
from .client_protocol import ClientProtocol

DEFAULT_PORT = 7667

Dial = Callable[[Callable[[], asyncio.Protocol]], Awaitable[tuple[Any, Any]]]
"""Opens one transport for a protocol factory (`loop.create_connection` and kin)."""


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


def dial_url(url: str, ssl_context: ssl.SSLContext | None = None) -> Dial:
    """How to reach a server by URL (tcp://, tls://, unix://)."""
    ep = Endpoint.parse(url)

    async def dial(factory: Callable[[], asyncio.Protocol]) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        if ep.scheme == "unix":
            return await loop.create_unix_connection(factory, ep.path)
        context = None
        if ep.scheme == "tls":
            context = ssl_context or ssl.create_default_context()
        return await loop.create_connection(factory, ep.host, ep.port, ssl=context)

    return dial


def dial_socket(make: Callable[[], Awaitable[socket.socket]]) -> Dial:
    """Dial through a function that returns a connected socket, e.g.
    `ScalarServer.connect_local` (in-process adapters and bots)."""

    async def dial(factory: Callable[[], asyncio.Protocol]) -> tuple[Any, Any]:
        sock = await make()
        return await asyncio.get_running_loop().create_connection(factory, sock=sock)

    return dial


class WireOwner(Protocol):
    def _on_data(self, wire: Wire, data: bytes) -> None: ...

    def _lost(self, wire: Wire, reason: str) -> None: ...


class Wire(asyncio.Protocol):
    """One transport and the protocol state of the connection it carries; what it
    receives and its end go to its owner (the `Client`)."""

    def __init__(self, owner: WireOwner) -> None:
        self.client = owner
        self.proto = ClientProtocol()
        self.transport: asyncio.Transport | None = None
        self.by_rid: dict[int, int] = {}
        """rid on this connection -> key of the client's outstanding request."""
        self.ident_rid: int | None = None
        self.ident: asyncio.Future[messages.Reply] = asyncio.get_running_loop().create_future()
        self.ready = False
        """Identified, and every unanswered request re-sent: new ones go out at once."""
        self.lost = False
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.client._on_data(self, data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)
        self.writable.set()
        closed = self.proto.connection_lost(f"connection lost: {exc}" if exc else "connection lost")
        self.client._lost(self, closed.reason if closed else self.proto.close_reason or "closed")

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def flush(self) -> None:
        data = self.proto.data_to_send()
        if data and self.transport is not None and not self.lost:
            self.transport.write(data)
