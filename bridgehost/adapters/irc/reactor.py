"""The `irc` package's asyncio classes, bent to our needs: lenient decoding,
lines handed to the owning `IrcConnection`, no secrets in its own writes."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from irc.client import Event, ServerNotConnectedError
from irc.client_aio import AioConnection, AioReactor
from jaraco.stream.buffer import DecodingLineBuffer

if TYPE_CHECKING:
    from .connection import IrcConnection

log = logging.getLogger(__name__)


class ReplacingBuffer(DecodingLineBuffer):  # type: ignore[misc]
    """Invalid UTF-8 from IRC decodes with U+FFFD instead of raising."""

    errors = "replace"


class Connection(AioConnection):  # type: ignore[misc]
    """AioConnection that reports data and messages to its owner, survives
    malformed lines, and never logs what it sends (lines may hold secrets)."""

    buffer_class = ReplacingBuffer
    connected: bool = False
    transport: Any = None
    owner: IrcConnection

    def process_data(self, new_data: bytes) -> None:
        self.owner.heard()
        self.buffer.feed(new_data)
        for line in self.buffer:
            if not line:
                continue
            try:
                self._process_line(line)
            except Exception:
                log.exception("%s: could not handle line %r", self.owner.name, line[:200])

    def _handle_message(self, arguments: list[str], command: str, source: Any, tags: Any) -> None:
        # The library splits text at every \x01 (CTCP quoting); the adapter
        # reads CTCP ACTION itself and keeps the rest of the text whole.
        if len(arguments) >= 2:
            self.owner.message(command, source, arguments[0], arguments[1], tags)

    def send_raw(self, string: str) -> None:
        # The library's own lines (NICK, USER, PONG) are unpaced writes too.
        if not self.owner.write(string):
            raise ServerNotConnectedError("Not connected.")

    def disconnect(self, message: str = "") -> None:
        # The library's version writes QUIT even when the peer is already
        # gone, which raises inside connection_lost.
        if not self.connected:
            return
        self.connected = False
        transport = self.transport
        if transport is not None and not transport.is_closing():
            with contextlib.suppress(Exception):
                self.quit(message)
            transport.close()
        self._handle_event(Event("disconnect", self.server, "", [message]))


class Reactor(AioReactor):  # type: ignore[misc]
    connection_class = Connection
