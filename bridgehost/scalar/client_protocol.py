"""The client side of one Scalar/1 connection, sans-IO (as matrix-nio's `Client`
sits under its `AsyncClient`).

Bytes in, happenings out: `receive(data)` returns what the server said, as
answers to our requests (by `rid`), deliveries, errors that answer nothing
of ours, and the end of the connection. `data_to_send()` is what to write.
Requests get their rid here; pings are answered here, whatever the caller
is doing with its deliveries. Whether the connection is still open is the
`phase`, not a marker in some queue, so a reader can never miss the end.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace

from . import messages
from .errors import ScalarError
from .events import Event
from .messages import Bye, Error, EventFrame, Ident, Message, Ping, Pong, Welcome
from .wire import FrameDecoder, encode_frame

log = logging.getLogger(__name__)

RID_LIMIT = 2**32
MAX_PROBLEMS = 100


class ClientPhase(enum.Enum):
    IDENT = "ident"
    """Connected; `ident` not answered yet."""
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Answer:
    """The one reply to a request of ours (an `Error` included)."""

    rid: int
    request: Message
    reply: messages.Reply


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event published by someone else (or by another connection of ours)."""

    event: Event


@dataclass(frozen=True, slots=True)
class Notice:
    """An `error` that answers no request of ours (e.g. to a frame it could not decode)."""

    error: Error


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection is over: the server's `bye` reason, or why it was lost."""

    reason: str


Happening = Answer | Delivery | Notice | Closed


class ClientProtocol:
    def __init__(self) -> None:
        self.phase = ClientPhase.IDENT
        self.close_reason: str | None = None
        self.id = ""
        self.server = ""
        self.limits: messages.Limits | None = None
        self.problems: list[str] = []
        """What the server sent that made no sense (kept: the last MAX_PROBLEMS)."""
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self._pending: dict[int, Message] = {}
        self._next_rid = 1

    @property
    def pending(self) -> dict[int, Message]:
        """Requests sent and not answered yet, by rid, oldest first (do not modify)."""
        return self._pending

    @property
    def open(self) -> bool:
        return self.phase is ClientPhase.OPEN

    # --- output -----------------------------------------------------------------------

    def request(self, msg: Message) -> int:
        """Queue a request; returns the rid its reply will carry."""
        if self.phase is ClientPhase.CLOSED:
            raise ValueError("the connection is closed")
        rid = self._new_rid()
        msg = replace(msg, rid=rid)  # type: ignore[type-var]
        self._pending[rid] = msg
        self._out += encode_frame(msg.to_map())
        return rid

    def forget(self, rid: int) -> None:
        """Nobody waits for this reply any more; it will be ignored when it comes."""
        self._pending.pop(rid, None)

    def close(self, reason: str | None = None) -> None:
        """Say `bye`; nothing is sent after it."""
        if self.phase is not ClientPhase.CLOSED:
            self._out += encode_frame(Bye(reason=reason).to_map())
            self._end(reason or "closed by client")

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def _new_rid(self) -> int:
        while True:
            rid = self._next_rid
            self._next_rid = (rid + 1) % RID_LIMIT
            if rid not in self._pending:
                return rid

    # --- input ------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Happening]:
        if self.phase is ClientPhase.CLOSED:
            return []
        out: list[Happening] = []
        for item in self._decoder.feed(data):
            if isinstance(item, ScalarError):
                self._problem(f"undecodable frame from the server: {item}")
                if self._decoder.failed:
                    out.append(self._end("bad frame from the server"))
                    return out
                continue
            try:
                msg = messages.parse_reply(item)
            except ScalarError as exc:
                self._problem(f"unexpected message from the server: {exc}")
                continue
            happening = self._handle(msg)
            if happening is not None:
                out.append(happening)
                if isinstance(happening, Closed):
                    return out
        return out

    def connection_lost(self, reason: str = "connection lost") -> Closed | None:
        """The transport is gone; returns the end unless it was already known."""
        if self.phase is ClientPhase.CLOSED:
            return None
        return self._end(reason)

    def _handle(self, msg: messages.Reply) -> Happening | None:
        if isinstance(msg, Bye):
            return self._end(msg.reason or "bye")
        if isinstance(msg, Ping) and msg.rid not in self._pending:
            self._out += encode_frame(Pong(time=msg.time, rid=msg.rid).to_map())
            return None
        rid = msg.rid
        if rid is not None and rid in self._pending:
            request = self._pending.pop(rid)
            if isinstance(request, Ident) and isinstance(msg, Welcome):
                self.phase = ClientPhase.OPEN
                self.id, self.server, self.limits = msg.id, msg.server, msg.limits
            return Answer(rid, request, msg)
        if isinstance(msg, Error):
            return Notice(msg)
        if rid is not None:
            return None  # the reply to a request nobody waits for any more
        if isinstance(msg, EventFrame):
            return Delivery(msg.event)
        self._problem(f"a {msg.t!r} that answers nothing we asked")
        return None

    def _end(self, reason: str) -> Closed:
        self.phase = ClientPhase.CLOSED
        self.close_reason = reason
        return Closed(reason)

    def _problem(self, text: str) -> None:
        log.warning("%s", text)
        self.problems.append(text)
        del self.problems[:-MAX_PROBLEMS]
