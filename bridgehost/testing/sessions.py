"""Sessions and a hub in memory: no sockets, no disk, a clock that moves when told.

    async with session_world(credentials={"alice@test.example": "pw"}) as world:
        alice = world.connect()
        await alice.send({"t": "ident", "v": 1, "id": "alice@test.example",
                          "auth": {"method": "password", "secret": "pw"}, "rid": 1})
        assert alice.reply(1)["t"] == "ident"
        world.clock.advance(61)

A `FakeConn` is the transport side of one `Session`: what the session sends is
decoded into `frames`. The hub runs on a `MemoryJournal` (commit, then deliver,
as with the real store), so `await world.settled()` lets commits finish.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2

from ..runtime import FakeClock
from ..scalar.errors import AuthFailed
from ..scalar.hub import Hub
from ..scalar.logins import AddressLimiter, Attempt
from ..scalar.session import Session, Shared
from ..scalar.settings import ServerSettings
from ..scalar.wire import FrameDecoder, encode_frame
from .journal import MemoryJournal

__all__ = ["FakeConn", "StaticCredentials", "World", "session_world"]


class StaticCredentials:
    """`Credentials` from a mapping of ID -> secret (whatever the method)."""

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        self.secrets = dict(secrets or {})
        self.checks = 0

    async def verify(
        self,
        ident: str,
        method: str | None,
        secret: str | None,
        attempt: Attempt | None = None,
    ) -> None:
        if attempt is not None:
            await attempt.hold()
        self.checks += 1
        if method is None or secret is None or self.secrets.get(ident) != secret:
            raise AuthFailed("authentication failed")

    async def knows(self, ident: str) -> bool:
        return ident in self.secrets


class FakeConn:
    """The transport side of one session: frames it sends, decoded, in order."""

    def __init__(self, world: World, remote: str) -> None:
        self.world = world
        self.remote = remote
        self.frames: list[dict[str, Any]] = []
        self.closed = False
        self.session = Session(world.shared, self)

    def push(self, data: bytes) -> None:
        size = int.from_bytes(data[:2], "little")
        assert size == len(data) - 2, "a push is exactly one length-prefixed frame"
        self.frames.append(cbor2.loads(data[2:]))

    def close(self) -> None:
        self.closed = True

    async def send(self, request: Mapping[str, Any]) -> None:
        """Hand the session one request, as the driver would (encoded, then decoded)."""
        body = encode_frame(dict(request))
        for item in FrameDecoder().feed(body):
            await self.session.handle(item)

    def take(self) -> list[dict[str, Any]]:
        """Every frame sent since the last `take`."""
        frames, self.frames = self.frames, []
        return frames

    def reply(self, rid: int) -> dict[str, Any]:
        """The one frame answering `rid` (removed from `frames`)."""
        for i, frame in enumerate(self.frames):
            if frame.get("rid") == rid:
                return self.frames.pop(i)
        raise AssertionError(f"no reply to rid {rid} in {self.frames}")


@dataclass
class World:
    settings: ServerSettings
    clock: FakeClock
    journal: MemoryJournal
    hub: Hub
    credentials: StaticCredentials
    shared: Shared
    conns: list[FakeConn] = field(default_factory=list)

    def connect(self, remote: str = "192.0.2.1") -> FakeConn:
        conn = FakeConn(self, remote)
        self.conns.append(conn)
        return conn

    async def login(self, ident: str | None = None, remote: str = "192.0.2.1") -> FakeConn:
        """A connection whose ident succeeded (a guest without `ident`)."""
        conn = self.connect(remote)
        request: dict[str, Any] = {"t": "ident", "v": 1, "rid": 0}
        if ident is not None:
            request.update(
                id=ident, auth={"method": "password", "secret": self.credentials.secrets[ident]}
            )
        await conn.send(request)
        welcome = conn.reply(0)
        assert welcome["t"] == "ident", welcome
        return conn

    async def settled(self) -> None:
        """Let every publish so far be committed and delivered."""
        await self.hub.flush()


@contextlib.asynccontextmanager
async def session_world(
    settings: ServerSettings | None = None,
    *,
    credentials: Mapping[str, str] | None = None,
    journal: MemoryJournal | None = None,
) -> AsyncIterator[World]:
    settings = settings or ServerSettings(domain="test.example", guests=True)
    clock = FakeClock()
    journal = journal or MemoryJournal()
    hub = Hub(settings, journal, clock)
    await hub.load()
    creds = StaticCredentials(credentials)
    shared = Shared(
        settings, hub, creds, clock, AddressLimiter(settings.limits.auth_failures, clock)
    )
    world = World(settings, clock, journal, hub, creds, shared)
    try:
        yield world
    finally:
        for conn in world.conns:
            conn.session.closed()
        await hub.close()
