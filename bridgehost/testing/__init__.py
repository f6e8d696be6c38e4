"""Public testing helpers: an in-process bridgehost, connected clients, bot harness.

    from bridgehost.testing import running

    async def test_hello(tmp_path):
        async with running(tmp_path) as srv:
            alice = await srv.client("alice")
            await alice.sub(srv.channel("lobby"))
            event = await alice.publish(srv.channel("lobby"), "hi")
            assert event.seq == 1

The pytest fixtures in `bridgehost.testing.fixtures` wrap these
(`pytest_plugins = ["bridgehost.testing.fixtures"]`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..app import App
from ..config import Config, parse_config
from ..runtime.clock import FakeClock
from ..scalar.client import Client, connect

__all__ = ["DOMAIN", "FakeClock", "Running", "make_config", "running", "wait_until"]

DOMAIN = "test.example"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def make_config(tmp_path: Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """A valid config for tests: loopback port chosen by the OS, data in tmp_path."""
    raw = {
        "server": {
            "domain": DOMAIN,
            "listen": ["tcp://127.0.0.1:0"],
            "data_dir": str(tmp_path / "data"),
            "guests": True,
        }
    }
    return parse_config(_merge(raw, overrides or {}), base=tmp_path)


@dataclass
class Running:
    """A started App plus helpers to talk to it."""

    app: App
    url: str
    domain: str
    _clients: list[Client] = field(default_factory=list)
    _passwords: dict[str, str] = field(default_factory=dict)

    def channel(self, name: str) -> str:
        return f"#{name}@{self.domain}"

    def user(self, name: str) -> str:
        return f"{name}@{self.domain}"

    async def add_user(self, name: str, password: str | None = None) -> tuple[str, str]:
        password = password or secrets.token_urlsafe(12)
        ident = await self.app.server.auth.add_user(name, password, int(time.time() * 1000))
        self._passwords[ident] = password
        return ident, password

    async def token(self, reserved: str) -> str:
        _, token = await self.app.server.auth.create_token(reserved, int(time.time() * 1000))
        return token

    async def client(self, name: str | None = None, *, password: str | None = None) -> Client:
        """A connected client: a user (created on first use), a reserved ID
        (`!bot`, token created), or a guest (no name). Closed at exit."""
        if name is None:
            c = await connect(self.url)
        elif name.startswith("!"):
            ident = name if "@" in name else f"{name}@{self.domain}"
            c = await connect(self.url, id=ident, secret=await self.token(ident))
        else:
            ident = self.user(name) if "@" not in name else name
            if password is None:
                password = self._passwords.get(ident) or (await self.add_user(name))[1]
            c = await connect(self.url, id=ident, secret=password)
        self._clients.append(c)
        return c

    async def close_clients(self) -> None:
        for c in self._clients:
            await c.close()
        self._clients.clear()


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, overrides: Mapping[str, Any] | None = None, *, config: Config | None = None
) -> AsyncIterator[Running]:
    """Start a whole bridgehost (server, adapters, bots) in this event loop."""
    cfg = config or make_config(tmp_path, overrides)
    async with App.open(cfg) as app:
        srv = Running(app, app.urls[0], cfg.server.domain)
        try:
            yield srv
        finally:
            await srv.close_clients()


async def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll `predicate` every 20 ms until it holds; TimeoutError naming `what` after
    `timeout` seconds (a deadline, not a sleep, so a passing test is as fast as it can be)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
