"""§12 inherited stdio, server side: a session served over a pair of pipes.

A plugin reads its stdin and writes its stdout; bridgehost holds the other
ends. asyncio has a transport per pipe; `PipePair` joins the two into the
one `asyncio.Transport` a `Connection` expects (write and buffer size from
the pipe to the plugin, pause/resume from the pipe from it), so a plugin's
session has the output accounting and slow-consumer rule of every other
connection. Either pipe closing (the plugin closed stdout or exited, or its
stdin broke) ends the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any, cast


@dataclass(slots=True)
class ChildEnds:
    """The ends a plugin gets: `stdin` (it reads) and `stdout` (it writes)."""

    stdin: int
    stdout: int

    def close(self) -> None:
        """Close our copies once the plugin has them (or when it could not start)."""
        for fd in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                os.close(fd)


def make_pipes() -> tuple[tuple[int, int], ChildEnds]:
    """A plugin's two pipes: (our read end, our write end), and its ends."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    return (from_child_r, to_child_w), ChildEnds(stdin=to_child_r, stdout=from_child_w)


class _In(asyncio.Protocol):
    def __init__(self, pair: PipePair) -> None:
        self.pair = pair

    def data_received(self, data: bytes) -> None:
        self.pair.protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.pair.lost(exc)


class _Out(asyncio.BaseProtocol):
    def __init__(self, pair: PipePair) -> None:
        self.pair = pair

    def connection_lost(self, exc: Exception | None) -> None:
        self.pair.lost(exc)

    def pause_writing(self) -> None:
        self.pair.protocol.pause_writing()

    def resume_writing(self) -> None:
        """The plugin read its stdin: the session may read again (flow control)."""
        self.pair.protocol.resume_writing()


class PipePair(asyncio.Transport):
    """Reads from one pipe, writes to another, closes both as one."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.reader: asyncio.ReadTransport | None = None
        self.writer: asyncio.WriteTransport | None = None
        self._lost = False

    @classmethod
    async def open(
        cls, protocol: asyncio.Protocol, ours: tuple[int, int] | None = None
    ) -> tuple[PipePair, ChildEnds | None]:
        """Server side: serve `protocol` on our ends of a plugin's pipes: `ours`
        (read, write) made earlier by `make_pipes`, else new ones (then the plugin's
        ends are returned, for the caller to hand over and close)."""
        ends = None
        if ours is None:
            ours, ends = make_pipes()
        try:
            pair = await cls.connect(protocol, *ours)
        except BaseException:
            if ends is not None:
                ends.close()
            raise
        return pair, ends

    @classmethod
    async def connect(cls, protocol: asyncio.Protocol, read_fd: int, write_fd: int) -> PipePair:
        """Serve `protocol` on two pipes (takes ownership of both fds): the server's
        ends of a plugin's stdio, or the plugin's own stdin and stdout."""
        loop = asyncio.get_running_loop()
        pair = cls(protocol)
        try:
            reader, _ = await loop.connect_read_pipe(
                lambda: _In(pair), os.fdopen(read_fd, "rb", buffering=0)
            )
            read_fd = -1
            writer, _ = await loop.connect_write_pipe(
                lambda: _Out(pair), os.fdopen(write_fd, "wb", buffering=0)
            )
        except BaseException:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            raise
        pair.reader, pair.writer = reader, writer
        protocol.connection_made(pair)
        return pair

    def lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        for side in (self.reader, self.writer):
            if side is not None and not side.is_closing():
                side.close()
        self.protocol.connection_lost(exc)

    # asyncio.Transport
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.writer is not None and not self._lost:
            self.writer.write(data)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self.writer is not None:
            self.writer.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.writer.get_write_buffer_size() if self.writer is not None else 0

    def pause_reading(self) -> None:
        if self.reader is not None and not self._lost:
            self.reader.pause_reading()

    def resume_reading(self) -> None:
        if self.reader is not None and not self._lost:
            self.reader.resume_reading()

    def is_reading(self) -> bool:
        return self.reader is not None and self.reader.is_reading()

    def is_closing(self) -> bool:
        return self._lost or (self.writer is not None and self.writer.is_closing())

    def close(self) -> None:
        """Flush what was written, then close (the plugin's stdin reads EOF)."""
        if self.writer is not None:
            self.writer.close()
        if self.reader is not None:
            self.reader.close()

    def abort(self) -> None:
        if self.writer is not None:
            cast(Any, self.writer).abort()
        if self.reader is not None:
            self.reader.close()
        self.lost(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default
