"""asyncio transports as `Sink`s of a `SessionDriver`: sockets (TCP, TLS, Unix,
in-process pairs) and pipe pairs (a plugin's stdin and stdout, §12, pipes.py).

Each is a few lines: it hands what it reads to the driver and tells it when
its write buffer drained; everything else (bounds, pausing, the session)
is the driver's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from .messages import Bye
from .wire import encode_frame

if TYPE_CHECKING:
    from .driver import SessionDriver
    from .server import ScalarServer
    from .session import Extension


class TransportSink:
    """A driver's output to asyncio transports: one to read from, one to write to
    (the same one for a socket)."""

    def __init__(self, reader: asyncio.ReadTransport, writer: asyncio.WriteTransport) -> None:
        self.reader, self.writer = reader, writer

    def write(self, frames: list[bytes]) -> None:
        self.writer.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def buffered(self) -> int:
        return self.writer.get_write_buffer_size()

    def pause_reading(self) -> None:
        if self.reader.is_reading():
            self.reader.pause_reading()

    def resume_reading(self) -> None:
        if not self.reader.is_reading() and not self.reader.is_closing():
            self.reader.resume_reading()

    def close(self) -> None:
        self.writer.close()
        reader: object = self.reader
        if reader is not self.writer:
            self.reader.close()

    def abort(self) -> None:
        for transport in (self.writer, self.reader):
            with contextlib.suppress(Exception):
                cast(Any, transport).abort()


def _watermarks(transport: asyncio.WriteTransport, bound: int) -> None:
    """`resume_writing` comes once the buffer is below a quarter of the bound, so a
    driver that stopped reading at half the bound hears it drained."""
    with contextlib.suppress(Exception):
        transport.set_write_buffer_limits(high=bound // 2, low=bound // 4)


class StreamProtocol(asyncio.Protocol):
    """One socket connection (TCP, TLS, Unix, a socket pair)."""

    def __init__(
        self,
        server: ScalarServer,
        *,
        kind: str,
        remote: str | None = None,
        public: bool = True,
        preauth: str | None = None,
        extensions: Mapping[str, Extension] | None = None,
    ) -> None:
        self.server = server
        self.kind = kind
        self.remote = remote
        self.public = public
        self.preauth = preauth
        self.extensions = extensions
        self.driver: SessionDriver | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        t = cast(asyncio.Transport, transport)
        remote = self.remote
        if remote is None:
            peer = t.get_extra_info("peername")
            remote = str(peer[0]) if isinstance(peer, tuple) else "unix"
        sock = t.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _watermarks(t, self.server.settings.limits.send_buffer)
        self.driver = self.server.attach(
            TransportSink(t, t),
            remote,
            self.kind,
            public=self.public,
            preauth=self.preauth,
            extensions=self.extensions,
        )
        if self.driver is None:
            t.write(encode_frame(Bye(reason="server-full").to_map()))
            t.close()

    def data_received(self, data: bytes) -> None:
        if self.driver is not None:
            self.driver.feed(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.driver is not None:
            self.driver.lost()

    def resume_writing(self) -> None:
        if self.driver is not None:
            self.driver.drained()


class PluginConnection:
    """A plugin's session on its stdio (§12), as its supervisor sees it: when it ended,
    and why."""

    def __init__(self, driver: SessionDriver) -> None:
        self.driver = driver
        self.session = driver.session
        self.ended = driver.finished
        """Set when the session is over (bye either way, EOF, a broken pipe)."""

    def end_reason(self) -> str:
        """Why the session ended, for the log: the server's `bye` and its error, if any."""
        session = self.session
        if session.bye_reason is None:
            return "the plugin closed its stdout (or exited)"
        error = session.last_error
        detail = f": {error.code}: {error.text}" if error is not None else ""
        return f"bridgehost ended it (bye {session.bye_reason}{detail})"

    @property
    def lost(self) -> bool:
        """The pipes are gone."""
        return self.driver.gone

    def abort(self) -> None:
        self.driver.sink.abort()
