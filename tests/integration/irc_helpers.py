"""Shared helpers for the IRC adapter's integration tests (real InspIRCd)."""

from __future__ import annotations

import asyncio
from typing import Any

from bridgehost.adapters.irc.adapter import IrcAdapter
from bridgehost.adapters.state import LinkState
from bridgehost.testing import Running, wait_until
from tests.servers.ircd import InspIRCd, RawIRC

FAST_FLOOD = {"burst": 1000, "interval": 0}


PLAIN_NICKS = {"nick_colours": False, "anti_highlight": False}
"""Relayed nicks as typed (`<alice> hi`), so tests can compare lines exactly."""


def irc_account(server: InspIRCd, nick: str = "bridge", **extra: Any) -> dict[str, Any]:
    """An `accounts:` entry for a test server: plain TCP, quick retries, no pacing,
    relayed nicks without colour or anti-highlight (`relay` in `extra` replaces that)."""
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
        "relay": dict(PLAIN_NICKS),
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


def statuses(srv: Running) -> list[LinkState]:
    return srv.app.link_statuses()


async def wait_joined(srv: Running, timeout: float = 15.0) -> None:
    """Until every link of every adapter reports `joined`."""
    await wait_until(
        lambda: bool(statuses(srv)) and all(s.state == "joined" for s in statuses(srv)),
        timeout,
        f"links joined: {[(s.target, s.state, s.last_error) for s in statuses(srv)]}",
    )


class Gate:
    """A TCP pass-through to a real server that the test opens and closes.

    Closed, it accepts and drops connections at once (as a server that is
    down would refuse them), so a test decides *when* the bridge may reach
    the server again, e.g. only after an IRC watcher is back in the channel.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.open = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> Gate:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


OPER_CONFIG = (
    '<module name="samode">',
    '<type name="Admin" classes="all">',
    '<oper name="admin" password="adminpw" host="*@*" type="Admin">',
)
"""Extra InspIRCd config: an IRC operator who can give itself channel ops
(the fixture's defaultmodes "nt" make nobody a channel operator)."""


async def make_op(client: RawIRC, *channels: str) -> None:
    mark = client.mark()
    await client.send("OPER admin adminpw")
    await client.wait_for(lambda m: m.command == "381", since=mark)
    for channel in channels:
        mark = client.mark()
        await client.send(f"SAMODE {channel} +o {client.nick}")
        await client.wait_for(
            lambda m, c=channel: m.command == "MODE" and m.params[:1] == (c,), since=mark
        )
