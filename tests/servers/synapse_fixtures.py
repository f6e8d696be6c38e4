"""Pytest fixtures and matrix-nio helpers around a real Synapse.

Fixtures (import them into a conftest or test module, or list this module in
``pytest_plugins``):

* ``synapse_template`` (session): a config generated once by Synapse.
* ``synapse`` (session): one shared, running Synapse with generous limits.
  Tests sharing it must use unique user names (``matrix_users`` does).
* ``synapse_factory`` (function): ``synapse_factory(rc_message=..., extra_config=...)``
  makes a fresh, started instance (own port, own data) for tests that need
  special config or that stop/restart the server; all stopped at teardown.
* ``matrix_users`` (function, async): ``await matrix_users.new("alice")``
  registers a unique user on ``synapse`` (or ``server=``), logs a matrix-nio
  ``AsyncClient`` in and returns a :class:`MatrixUser`; clients are closed at
  teardown.

Helpers: :func:`create_room` (create, invite, join), :func:`send_text`,
:func:`wait_for_text` (sync until a message shows up).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    LoginResponse,
    MatrixRoom,
    RoomCreateError,
    RoomMessageText,
    RoomSendResponse,
)

from .synapse import RateLimit, Synapse, SynapseTemplate

__all__ = [
    "MatrixUser",
    "MatrixUsers",
    "SynapseFactory",
    "create_room",
    "login",
    "matrix_users",
    "send_text",
    "synapse",
    "synapse_factory",
    "synapse_template",
    "unique_localpart",
    "wait_for_text",
]

DEFAULT_PASSWORD = "correct-horse-battery"
_LOCALPART = re.compile(r"^[a-z0-9._=/-]+$")


# -- servers ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def synapse_template(tmp_path_factory: pytest.TempPathFactory) -> SynapseTemplate:
    return SynapseTemplate.generate(tmp_path_factory.mktemp("synapse-template"))


@pytest.fixture(scope="session")
def synapse(
    synapse_template: SynapseTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Synapse]:
    server = Synapse(tmp_path_factory.mktemp("synapse"), template=synapse_template)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class SynapseFactory:
    """Makes Synapse instances for one test and stops them all at its end."""

    def __init__(self, template: SynapseTemplate, base: Path) -> None:
        self.template = template
        self.base = base
        self.instances: list[Synapse] = []

    def __call__(
        self,
        *,
        rc_message: RateLimit | None = None,
        extra_config: Mapping[str, Any] | None = None,
        log_level: str = "WARNING",
        start: bool = True,
    ) -> Synapse:
        server = Synapse(
            self.base / f"synapse-{len(self.instances)}",
            template=self.template,
            rc_message=rc_message,
            extra_config=extra_config,
            log_level=log_level,
        )
        self.instances.append(server)
        if start:
            server.start()
        return server

    def stop_all(self) -> None:
        for server in self.instances:
            server.stop()


@pytest.fixture
def synapse_factory(synapse_template: SynapseTemplate, tmp_path: Path) -> Iterator[SynapseFactory]:
    factory = SynapseFactory(synapse_template, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


# -- users and clients -------------------------------------------------------------


@dataclass
class MatrixUser:
    """A registered user with a logged-in matrix-nio client.

    ``seen`` collects every ``m.room.message`` text event the client has
    received through any sync, as ``(room_id, event)``.
    """

    server: Synapse
    localpart: str
    password: str
    client: AsyncClient
    seen: list[tuple[str, RoomMessageText]] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        return self.server.user_id(self.localpart)

    def track_messages(self) -> None:
        async def on_text(room: MatrixRoom, event: RoomMessageText) -> None:
            self.seen.append((room.room_id, event))

        self.client.add_event_callback(on_text, RoomMessageText)


def unique_localpart(prefix: str = "user") -> str:
    """``prefix-xxxxxxxx``: unique per call, valid as a Matrix localpart."""
    name = f"{prefix.lower()}-{uuid.uuid4().hex[:8]}"
    if not _LOCALPART.match(name):
        raise ValueError(f"not a valid Matrix localpart: {name!r}")
    return name


async def login(
    server: Synapse,
    localpart: str,
    password: str,
    *,
    config: AsyncClientConfig | None = None,
    device_name: str = "pytest",
) -> AsyncClient:
    """A new ``AsyncClient`` logged in with a password (closed by the caller)."""
    client = AsyncClient(server.url, server.user_id(localpart), config=config)
    resp = await client.login(password, device_name=device_name)
    if not isinstance(resp, LoginResponse):
        await client.close()
        raise AssertionError(f"login of {localpart} on {server.url} failed: {resp}")
    return client


class MatrixUsers:
    """Registers unique users and logs clients in; closes the clients at teardown."""

    def __init__(self, default_server: Synapse) -> None:
        self.default_server = default_server
        self.users: list[MatrixUser] = []
        self.extra_clients: list[AsyncClient] = []

    async def new(
        self,
        prefix: str = "user",
        *,
        server: Synapse | None = None,
        password: str = DEFAULT_PASSWORD,
        admin: bool = False,
        config: AsyncClientConfig | None = None,
    ) -> MatrixUser:
        """Register ``prefix-<random>`` on ``server`` and log a client in."""
        server = server if server is not None else self.default_server
        localpart = unique_localpart(prefix)
        await server.register_user_async(localpart, password, admin)
        client = await login(server, localpart, password, config=config)
        user = MatrixUser(server, localpart, password, client)
        user.track_messages()
        self.users.append(user)
        return user

    async def login_again(
        self, user: MatrixUser, *, config: AsyncClientConfig | None = None
    ) -> AsyncClient:
        """A second, new session for an existing user (closed at teardown)."""
        client = await login(user.server, user.localpart, user.password, config=config)
        self.extra_clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in [u.client for u in self.users] + self.extra_clients:
            await client.close()


@pytest_asyncio.fixture
async def matrix_users(synapse: Synapse) -> AsyncIterator[MatrixUsers]:
    users = MatrixUsers(synapse)
    try:
        yield users
    finally:
        await users.aclose()


# -- rooms and messages ------------------------------------------------------------


async def create_room(owner: MatrixUser, *members: MatrixUser, name: str | None = None) -> str:
    """Create a private room as ``owner``, invite ``members``, have them join; its ID."""
    resp = await owner.client.room_create(name=name, invite=[m.user_id for m in members])
    if isinstance(resp, RoomCreateError):
        raise AssertionError(f"room_create by {owner.user_id} failed: {resp}")
    room_id: str = resp.room_id
    for member in members:
        joined = await member.client.join(room_id)
        if isinstance(joined, JoinError):
            raise AssertionError(f"{member.user_id} could not join {room_id}: {joined}")
    return room_id


async def send_text(user: MatrixUser, room_id: str, body: str) -> str:
    """Send an ``m.text`` message; its event ID."""
    resp = await user.client.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": body}
    )
    if not isinstance(resp, RoomSendResponse):
        raise AssertionError(f"send by {user.user_id} to {room_id} failed: {resp}")
    event_id: str = resp.event_id
    return event_id


async def wait_for_text(
    user: MatrixUser,
    room_id: str,
    match: str | Callable[[RoomMessageText], bool],
    *,
    within: float = 10.0,
) -> RoomMessageText:
    """Sync ``user`` until a text message in ``room_id`` matches (body or predicate)."""

    def matches(event: RoomMessageText) -> bool:
        return match(event) if callable(match) else event.body == match

    deadline = time.monotonic() + within
    while True:
        for seen_room, event in user.seen:
            if seen_room == room_id and matches(event):
                return event
        left = deadline - time.monotonic()
        if left <= 0:
            bodies = [e.body for r, e in user.seen if r == room_id]
            raise AssertionError(
                f"{user.user_id} saw no matching message in {room_id} within {within} s; "
                f"saw {bodies!r}"
            )
        # Long-poll: returns as soon as something arrives.
        await asyncio.wait_for(
            user.client.sync(timeout=int(min(left, 5.0) * 1000)), timeout=left + 5.0
        )
