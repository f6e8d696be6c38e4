"""Shared helpers for the IRC adapter's integration tests (real InspIRCd)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bridgehost.adapters.base import LinkStatus
from bridgehost.adapters.irc import IrcAdapter
from bridgehost.testing import Running
from tests.servers.ircd import InspIRCd

FAST_FLOOD = {"burst": 1000, "interval": 0}


def irc_account(server: InspIRCd, nick: str = "bridge", **extra: Any) -> dict[str, Any]:
    """An `accounts:` entry for a test server: plain TCP, quick retries, no pacing."""
    account: dict[str, Any] = {
        "type": "irc",
        "host": server.host,
        "port": server.port,
        "tls": False,
        "nick": nick,
        "flood": FAST_FLOOD,
        "reconnect_initial": 0.2,
        "reconnect_max": 1.0,
        "rejoin_delay": 0.3,
    }
    account.update(extra)
    return account


def bridge_config(
    accounts: dict[str, dict[str, Any]],
    bridges: list[tuple[str, list[dict[str, Any]]]],
) -> dict[str, Any]:
    """Config overrides for `running()`; the Scalar client rate limit is lifted."""
    return {
        "server": {"limits": {"rate": 100000, "burst": 100000}},
        "accounts": accounts,
        "bridges": [
            {"channel": f"#{name}@test.example", "links": links} for name, links in bridges
        ],
    }


def irc_adapter(srv: Running, name: str) -> IrcAdapter:
    for adapter in srv.app.adapters:
        if isinstance(adapter, IrcAdapter) and adapter.name == name:
            return adapter
    raise LookupError(name)


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def statuses(srv: Running) -> list[LinkStatus]:
    return srv.app.link_statuses()


async def wait_joined(srv: Running, timeout: float = 15.0) -> None:
    """Until every link of every adapter reports `joined`."""
    await wait_until(
        lambda: bool(statuses(srv)) and all(s.state == "joined" for s in statuses(srv)),
        timeout,
        f"links joined: {[(s.target, s.state, s.last_error) for s in statuses(srv)]}",
    )
