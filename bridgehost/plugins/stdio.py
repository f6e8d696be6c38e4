"""The plugin side of §12: the one Scalar session a child process has, on its
stdin and stdout.

bridgehost opened the session for the child's reserved ID before starting
it; the child's `ident` names that ID with no secret. A child has exactly
one session, and an adapter may want several at once (the fs adapter keeps
one for channels and one for its direct messages; the Matrix checkpoint
opens one to look at history): in a child each is a `Lease` on the one
session. Requests go out on it; each event goes to the leases subscribed
to its topic, as the hub would deliver it to their sessions.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..scalar import ids, messages
from ..scalar.client import Client
from ..scalar.errors import ConnectionClosed
from ..scalar.events import Event
from ..scalar.messages import Message, Ok
from ..scalar.pipes import PipePair
from ..scalar.wire import MAX_FRAME, CborMap, encode_frame

FRAME_BUDGET = MAX_FRAME - 64
"""Bytes of `links` entries packed into one `status` frame (the rest: `t`, `rid`)."""
LEASE_QUEUE = 10000
"""Events one lease may have waiting before the session stops reading."""


@dataclass(frozen=True, slots=True)
class StatusReport(Message):
    """`status` (docs/plugins.md): the state of some of the plugin's links."""

    t: ClassVar[str] = "status"
    links: tuple[CborMap, ...] = ()
    rid: int | None = None

    def to_map(self) -> CborMap:
        m: CborMap = {"t": self.t, "links": list(self.links)}
        if self.rid is not None:
            m["rid"] = self.rid
        return m


def pack(entries: Sequence[CborMap]) -> list[list[CborMap]]:
    """Group entries so that each group's `status` request fits one frame."""
    chunks: list[list[CborMap]] = []
    size = FRAME_BUDGET
    for entry in entries:
        n = len(encode_frame({"e": entry}))
        if n > FRAME_BUDGET:
            continue
        if size + n > FRAME_BUDGET:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += n
    return chunks


async def _dial_stdio(factory: Callable[[], asyncio.Protocol]) -> tuple[Any, Any]:
    """The session's transport: stdin and stdout as two pipes (as bridgehost
    starts plugins), or stdin as one socket. Afterwards fd 0 reads /dev/null
    and fd 1 is stderr, so nothing a library prints can corrupt the session."""
    loop = asyncio.get_running_loop()
    protocol = factory()
    if stat.S_ISSOCK(os.fstat(0).st_mode):
        sock = socket.socket(fileno=os.dup(0))
        transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
    else:
        transport = await PipePair.connect(protocol, os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout.flush()
    os.dup2(2, 1)
    return transport, protocol


async def _never(factory: Callable[[], asyncio.Protocol]) -> tuple[Any, Any]:
    raise ConnectionClosed("a lease has no connection of its own")


class SharedClient(Client):
    """The child's one session on stdio, lent out as `Lease`s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._leases: set[Lease] = set()
        self.ended = asyncio.Event()
        """Set when the session is over (bye, EOF, error)."""

    @classmethod
    async def on_stdio(cls, ident: str, *, name: str, timeout: float = 10.0) -> SharedClient:
        """`ident` on stdio as `ident`, with no secret (the pipe is the credential)."""
        client = await cls.open(_dial_stdio, id=ident, client_name=name, timeout=timeout)
        assert isinstance(client, SharedClient)
        return client

    def lease(self) -> Lease:
        """A `Client` for one user of the session (what `AdapterContext.connect` gives)."""
        if self.closed:
            raise ConnectionClosed(f"the session on stdio has ended ({self.close_reason})")
        lease = Lease(self)
        self._leases.add(lease)
        return lease

    def release(self, lease: Lease) -> None:
        self._leases.discard(lease)

    def _terminate(self, reason: str, error: Any = None) -> None:
        super()._terminate(reason, error)
        self.ended.set()

    async def distribute(self) -> None:
        """Hand each event to the leases subscribed to its topic, until the end."""
        try:
            async for event in self:
                for lease in list(self._leases):
                    if event.topic in lease.subscribed:
                        await lease.deliver(event)
        finally:
            for lease in list(self._leases):
                lease.end(self.close_reason or "session ended")

    async def report(self, entries: Sequence[CborMap]) -> None:
        """Send link states in as many `status` requests as the frame limit needs."""
        for chunk in pack(entries):
            reply = await self._request(StatusReport(links=tuple(chunk)))
            assert isinstance(reply, Ok)


class Lease(Client):
    """One user's view of the shared session: its requests, its topics' events."""

    def __init__(self, shared: SharedClient) -> None:
        super().__init__(_never)
        self.shared = shared
        self.id, self.server, self.limits = shared.id, shared.server, shared.limits
        self.subscribed: set[str] = set()
        self._room = asyncio.Event()
        self._room.set()

    async def _request(self, msg: messages.Message) -> messages.Reply:
        if self.closed:
            raise ConnectionClosed(f"connection closed: {self.close_reason}")
        return await self.shared._request(msg)

    async def sub(self, topic: str) -> messages.Meta:
        self.subscribed.add(ids.normalise(topic))
        return await super().sub(topic)

    async def unsub(self, topic: str = "*") -> None:
        """Stop getting a topic's events here (the shared session stays subscribed)."""
        if topic == "*":
            self.subscribed.clear()
        else:
            self.subscribed.discard(ids.normalise(topic))

    async def deliver(self, event: Event) -> None:
        while len(self._events) >= LEASE_QUEUE and not self.closed:
            self._room.clear()
            await self._room.wait()
        if not self.closed:
            self._events.append(event)
            self._changed.set()

    async def __anext__(self) -> Event:
        event = await super().__anext__()
        self._room.set()
        return event

    def end(self, reason: str) -> None:
        self._terminate(reason)
        self._room.set()

    async def close(self, reason: str | None = None) -> None:
        """Done with it: the shared session stays open for the others."""
        self.shared.release(self)
        self.end(reason or "closed by client")
