"""A Scalar channel bridged to two IRC networks: everything arrives exactly once, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.fixtures import IRCdFactory
from tests.servers.ircd import RawIRC

from .irc_helpers import bridge_config, irc_account, wait_joined, wait_until

pytestmark = pytest.mark.ircd

PER_SIDE = (334, 333, 333)  # 1,000 messages: Scalar, network A, network B


async def _flood(irc: RawIRC, channel: str, texts: list[str]) -> None:
    """The IRC side sends its share in a few big writes (the server allows it)."""
    for start in range(0, len(texts), 50):
        chunk = texts[start : start + 50]
        await irc.send_raw(b"".join(f"PRIVMSG {channel} :{t}\r\n".encode() for t in chunk))
        await asyncio.sleep(0.01)


async def test_three_link_bridge_1000_messages_exactly_once_in_order(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    net_a = ircd_factory(threshold=100000, commandrate=10000000)
    net_b = ircd_factory(threshold=100000, commandrate=10000000)
    overrides = bridge_config(
        {"a": irc_account(net_a, "bridgea"), "b": irc_account(net_b, "bridgeb")},
        [("hub", [{"account": "a", "target": "#one"}, {"account": "b", "target": "#two"}])],
    )
    async with (
        running(tmp_path, overrides) as srv,
        RawIRC(net_a.host, net_a.port, "u1") as u1,
        RawIRC(net_b.host, net_b.port, "u2") as u2,
    ):
        await asyncio.gather(u1.connect(), u2.connect())
        await u1.join("#one")
        await u2.join("#two")
        await wait_joined(srv)
        alice = await srv.client("alice")
        hub = srv.channel("hub")
        await alice.sub(hub)

        from_scalar = [f"s{i}" for i in range(PER_SIDE[0])]
        from_a = [f"a{i}" for i in range(PER_SIDE[1])]
        from_b = [f"b{i}" for i in range(PER_SIDE[2])]

        async def scalar_side() -> None:
            for text in from_scalar:
                await alice.publish(hub, text)

        await asyncio.gather(scalar_side(), _flood(u1, "#one", from_a), _flood(u2, "#two", from_b))

        received = []

        async def collect() -> None:
            while len(received) < len(from_a) + len(from_b):
                received.append(await alice.next_event(20))

        await asyncio.wait_for(collect(), 30)
        await wait_until(lambda: len(u1.messages("#one")) >= 667, 30, "network A lines")
        await wait_until(lambda: len(u2.messages("#two")) >= 667, 30, "network B lines")
        await asyncio.sleep(0.5)  # anything extra (a loop, a duplicate) would show up now
        with pytest.raises(TimeoutError):
            await alice.next_event(0.1)

        assert [e.body for e in received if e.nick == "u1"] == from_a
        assert [e.body for e in received if e.nick == "u2"] == from_b
        assert {e.origin for e in received} == {"irc:a/#one", "irc:b/#two"}
        assert len(received) == len(from_a) + len(from_b)

        seen_a = [m.trailing for m in u1.messages("#one")]
        seen_b = [m.trailing for m in u2.messages("#two")]
        assert len(seen_a) == 667 and len(seen_b) == 667
        assert [t for t in seen_a if t.startswith("<alice>")] == [
            f"<alice> {t}" for t in from_scalar
        ]
        assert [t for t in seen_a if t.startswith("<u2>")] == [f"<u2> {t}" for t in from_b]
        assert [t for t in seen_b if t.startswith("<alice>")] == [
            f"<alice> {t}" for t in from_scalar
        ]
        assert [t for t in seen_b if t.startswith("<u1>")] == [f"<u1> {t}" for t in from_a]
        assert {m.nick for m in u1.messages("#one")} == {"bridgea"}
        assert {m.nick for m in u2.messages("#two")} == {"bridgeb"}


async def test_two_channels_of_one_account_relay_through_the_hub(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    net = ircd_factory(threshold=100000, commandrate=10000000)
    overrides = bridge_config(
        {"net": irc_account(net)},
        [("hub", [{"account": "net", "target": "#x"}, {"account": "net", "target": "#y"}])],
    )
    async with (
        running(tmp_path, overrides) as srv,
        RawIRC(net.host, net.port, "ux") as ux,
        RawIRC(net.host, net.port, "uy") as uy,
    ):
        await asyncio.gather(ux.connect(), uy.connect())
        await ux.join("#x")
        await uy.join("#y")
        await wait_joined(srv)
        await _flood(ux, "#x", [f"x{i}" for i in range(20)])
        await _flood(uy, "#y", [f"y{i}" for i in range(20)])
        await wait_until(lambda: len(uy.messages("#y")) >= 20, 10, "#x -> #y")
        await wait_until(lambda: len(ux.messages("#x")) >= 20, 10, "#y -> #x")
        await asyncio.sleep(0.3)
        assert [m.trailing for m in uy.messages("#y")] == [f"<ux> x{i}" for i in range(20)]
        assert [m.trailing for m in ux.messages("#x")] == [f"<uy> y{i}" for i in range(20)]
