"""Adapters own their config: relay options, process, exec accounts, new server
limits, and a network added by a third-party package through the
`bridgehost.adapters` entry points (a real dist-info on sys.path)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridgehost.adapters.exec.config import ExecAccount, NotAnAdapter
from bridgehost.adapters.irc.config import IrcAccount
from bridgehost.adapters.irc.config import RelayOptions as IrcRelay
from bridgehost.adapters.matrix.config import MatrixAccount
from bridgehost.adapters.matrix.config import RelayOptions as MatrixRelay
from bridgehost.adapters.spec import adapter_spec, check_adapters
from bridgehost.config import Config, ConfigError, parse_config
from bridgehost.config.accounts import known_types

IRC = {"type": "irc", "host": "irc.example.org", "nick": "bh"}
MATRIX = {"type": "matrix", "homeserver": "https://m.example", "user_id": "@b:m", "password": "p"}


def parse(raw: dict[str, Any], base: Path) -> Config:
    return parse_config({"server": {"domain": "example.com"}, **raw}, base=base)


def problems(raw: dict[str, Any], base: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(raw, base)
    return info.value.problems


def test_relay_defaults_follow_the_issue(tmp_path: Path) -> None:
    config = parse({"accounts": {"irc": IRC, "mx": MATRIX}}, tmp_path)
    irc, mx = config.accounts["irc"], config.accounts["mx"]
    assert isinstance(irc, IrcAccount) and isinstance(mx, MatrixAccount)
    assert irc.relay == IrcRelay()
    assert (irc.relay.edits, irc.relay.reactions, irc.relay.membership) == ("diff", True, False)
    assert (irc.relay.topic, irc.relay.anti_highlight, irc.relay.deletes) == (True, True, False)
    assert (mx.relay.topic, mx.relay.membership, mx.relay.merge_window) == (True, False, 0.1)
    assert not irc.process and not mx.process


def test_relay_and_process_are_read(tmp_path: Path) -> None:
    accounts = {
        "irc": {**IRC, "process": True, "relay": {"edits": "full", "membership": True}},
        "mx": {**MATRIX, "relay": {"reactions": False, "merge_window": 0.25}},
    }
    config = parse({"accounts": accounts}, tmp_path)
    irc, mx = config.accounts["irc"], config.accounts["mx"]
    assert isinstance(irc, IrcAccount) and isinstance(mx, MatrixAccount)
    assert irc.process and irc.relay == IrcRelay(edits="full", membership=True)
    assert mx.relay == MatrixRelay(reactions=False, merge_window=0.25)


def test_bad_relay_and_process_values_name_their_path(tmp_path: Path) -> None:
    accounts = {
        "irc": {**IRC, "process": "yes", "relay": {"edits": "some", "colour": 1}},
        "mx": {**MATRIX, "relay": {"topic": "on", "merge_window": -1}},
        "odd": {**IRC, "relay": ["edits"]},
    }
    found = problems({"accounts": accounts}, tmp_path)
    for want in (
        "accounts.irc.process: must be true or false, not 'yes'",
        "accounts.irc.relay.edits: must be one of diff, full, off, not 'some'",
        "accounts.irc.relay.colour: unknown key",
        "accounts.mx.relay.topic: must be true or false, not 'on'",
        "accounts.mx.relay.merge_window: must be at least 0.0",
        "accounts.odd.relay: must be a map, not list",
    ):
        assert want in found, (want, found)


def test_exec_account_is_parsed_and_validated(tmp_path: Path) -> None:
    program = tmp_path / "weather-adapter"
    program.write_text("#!/bin/sh\n")
    accounts = {
        "weather": {
            "type": "exec",
            "command": ["./weather-adapter", "--city", "Oslo"],
            "id": "!weather@example.com",
        }
    }
    config = parse({"accounts": accounts}, tmp_path)
    acc = config.accounts["weather"]
    assert isinstance(acc, ExecAccount)
    assert acc.command == (str(program), "--city", "Oslo") and acc.process
    assert config.reserved_id("weather") == "!weather@example.com"
    assert "exec" in known_types()


def test_exec_account_problems(tmp_path: Path) -> None:
    accounts = {
        "a": {"type": "exec", "id": "!a@elsewhere.org"},
        "b": {"type": "exec", "command": ["./missing"], "id": "b@example.com"},
        "c": {"type": "exec", "command": ["no-such-program-anywhere"], "id": "!c@example.com"},
        "d": {"type": "exec", "command": "sh", "process": False},
    }
    found = problems({"accounts": accounts}, tmp_path)
    for want in (
        "accounts.a.command: is required",
        "accounts.a.id: must be a reserved ID like '!name@example.com'",
        f"accounts.b.command: no such program: {tmp_path / 'missing'}",
        "accounts.b.id: must be a reserved ID",
        "accounts.c.command: 'no-such-program-anywhere' is not on PATH",
        "accounts.d.command: must be a list of text, not 'sh'",
        "accounts.d.id: is required",
        "accounts.d.process: an exec account always runs as its own process",
    ):
        assert any(p.startswith(want) for p in found), (want, found)


def test_exec_account_passes_check_and_is_no_in_process_adapter(tmp_path: Path) -> None:
    accounts = {"sh": {"type": "exec", "command": ["sh"], "id": "!sh@example.com"}}
    config = parse({"accounts": accounts}, tmp_path)
    assert check_adapters(config) == []
    factory = adapter_spec("exec").load()
    with pytest.raises(NotAnAdapter, match="runs as its own process"):
        factory(None)


def test_new_server_limits(tmp_path: Path) -> None:
    config = parse({"server": {"limits": {"channels": 20, "connections_per_address": 3}}}, tmp_path)
    assert (config.server.limits.channels, config.server.limits.connections_per_address) == (20, 3)
    default = parse({}, tmp_path).server.limits
    assert (default.channels, default.connections_per_address) == (10000, 50)
    found = problems({"server": {"limits": {"channels": 0}}}, tmp_path)
    assert "server.limits.channels: must be at least 1" in found


# --- a third-party network --------------------------------------------------------------

PLUGIN = '''
"""A network from another package: its config module and its adapter."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bridgehost.adapters.spec import AdapterSpec
from bridgehost.adapters.state import LinkState
from bridgehost.config.model import default_reserved_id

STARTED = []


@dataclass(frozen=True, slots=True)
class EchoAccount:
    name: str
    greeting: str
    process: bool = False
    type: str = "echonet"

    def reserved_id(self, domain):
        return default_reserved_id(self.type, self.name, domain)


def read(keys, r):
    return EchoAccount(keys.name, r.text("greeting", "", required=True), keys.process)


def target(value):
    return None if value.startswith("@") else f"an echonet room starts with '@': {value!r}"


class EchoAdapter:
    def __init__(self, ctx):
        self.name = ctx.account.name
        self.ctx = ctx

    async def run(self):
        STARTED.append((self.ctx.reserved_id, self.ctx.account.greeting))
        await asyncio.Event().wait()

    def status(self):
        return [LinkState(self.name, link.target, bridge.channel, link.direction)
                for bridge, link in self.ctx.links]


ADAPTER = AdapterSpec(type="echonet", read=read, load=lambda: EchoAdapter, target=target)
'''


@pytest.fixture
def echonet(tmp_path: Path) -> Iterator[Any]:
    """Install `echonet` the way pip would: a module and a dist-info with entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "echonet_bridge.py").write_text(PLUGIN)
    info = site / "echonet_bridge-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echonet-bridge\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""\
            [bridgehost.adapters]
            echonet = echonet_bridge:ADAPTER
            """)
    )
    sys.path.insert(0, str(site))
    try:
        import echonet_bridge  # type: ignore[import-not-found]

        yield echonet_bridge
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("echonet_bridge", None)


def test_a_third_party_network_registers_through_entry_points(tmp_path: Path, echonet: Any) -> None:
    raw = {
        "accounts": {"e": {"type": "echonet", "greeting": "hi"}},
        "bridges": [{"channel": "#a@example.com", "links": [{"account": "e", "target": "@a"}]}],
    }
    config = parse(raw, tmp_path)
    assert config.accounts["e"].type == "echonet" and "echonet" in known_types()
    assert adapter_spec("echonet").load().__name__ == "EchoAdapter"
    bad = {
        "accounts": {"e": {"type": "echonet", "colour": 1}},
        "bridges": [{"channel": "#a@example.com", "links": [{"account": "e", "target": "a"}]}],
    }
    found = problems(bad, tmp_path)
    assert "accounts.e.greeting: is required" in found
    assert "accounts.e.colour: unknown key" in found
    assert "bridges[0].links[0].target: an echonet room starts with '@': 'a'" in found


async def test_the_app_runs_a_third_party_adapter(tmp_path: Path, echonet: Any) -> None:
    from bridgehost.testing import running

    overrides = {
        "accounts": {"e": {"type": "echonet", "greeting": "hello"}},
        "bridges": [{"channel": "#a@test.example", "links": [{"account": "e", "target": "@a"}]}],
    }
    async with running(tmp_path, overrides) as srv:
        for _ in range(100):
            if echonet.STARTED:
                break
            await asyncio.sleep(0.01)
        assert echonet.STARTED == [("!echonet-e@test.example", "hello")]
        assert [s.target for s in srv.app.link_statuses()] == ["@a"]
