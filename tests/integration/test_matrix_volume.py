"""Matrix adapter under load: 1,000 messages each way, each once, in order;
and 1,000 messages in a Scalar <-> Matrix <-> IRC bridge.

Synapse persists every event with SQLite; on tmpfs (/dev/shm) a send takes
about 13 ms instead of 30 ms, so this test runs its own real Synapse there.
The Matrix user sends ten at a time: "in order" means in the order Synapse
stored them, which is what the bridge must reproduce in Scalar.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.fixtures import IRCdFactory
from tests.servers.ircd import RawIRC
from tests.servers.synapse import Synapse, SynapseTemplate
from tests.servers.synapse_fixtures import MatrixUser, MatrixUsers

from .irc_helpers import irc_account
from .matrix_helpers import (
    adapter,
    overrides,
    private_room,
    register_bot,
    room_messages,
    send,
    wait_for,
    wait_up,
)

pytestmark = [pytest.mark.synapse, pytest.mark.slow]

COUNT = 1000
IN_FLIGHT = 10


@pytest.fixture
def shm_synapse(synapse_template: SynapseTemplate, tmp_path: Path) -> Iterator[Synapse]:
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="synapse-", dir=shm if shm.is_dir() else tmp_path))
    server = Synapse(base, template=synapse_template)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


async def send_many(user: MatrixUser, room_id: str, bodies: list[str]) -> None:
    """Send `bodies`, ten at a time (their order is the one Synapse stores)."""
    for first in range(0, len(bodies), IN_FLIGHT):
        await asyncio.gather(
            *(
                send(user, room_id, {"msgtype": "m.text", "body": body})
                for body in bodies[first : first + IN_FLIGHT]
            )
        )


@pytest.mark.timeout(400)  # a hang guard: ~65 s alone, ~95 s beside another heavy test
async def test_a_thousand_messages_each_way_exactly_once_in_order(
    tmp_path: Path, matrix_users: MatrixUsers, shm_synapse: Synapse
) -> None:
    owner = await matrix_users.new("owner", server=shm_synapse)
    bot = await register_bot(shm_synapse)
    room_id = await private_room(owner, bot)
    origin = f"matrix:mx/{room_id}"
    async with running(tmp_path, overrides(owner.server, bot, room_id)) as srv:
        mx = await wait_up(srv)
        st = mx.status()[0]
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)
        started = time.monotonic()

        async def from_scalar() -> None:
            for i in range(COUNT):
                await alice.publish(channel, f"s{i}")

        async def from_matrix() -> None:
            await send_many(owner, room_id, [f"m{i}" for i in range(COUNT)])

        await asyncio.gather(from_scalar(), from_matrix())
        await wait_for(
            lambda: st.relayed_out == COUNT and st.relayed_in == COUNT,
            within=60,
            what=f"{COUNT} each way (now out {st.relayed_out}, in {st.relayed_in})",
        )
        elapsed = time.monotonic() - started

        msgs = await room_messages(owner.client, room_id)
        assert [m["content"]["body"] for m in msgs if m["sender"] == bot] == [
            f"<alice> s{i}" for i in range(COUNT)
        ]
        matrix_order = [m["content"]["body"] for m in msgs if m["sender"] != bot]
        assert sorted(matrix_order) == sorted(f"m{i}" for i in range(COUNT))

        history = [e async for e in alice.history_after(channel, 0)]
        assert [e.body for e in history if e.origin == origin] == matrix_order
        assert [e.body for e in history if e.origin is None] == [f"s{i}" for i in range(COUNT)]
        assert len(history) == 2 * COUNT
        assert (st.dropped, st.queued) == (0, 0)
        print(f"\n{COUNT} each way through Synapse in {elapsed:.1f} s")


async def irc_flood(irc: RawIRC, channel: str, texts: list[str]) -> None:
    """The IRC side sends its share in a few big writes (the test server allows it)."""
    for start in range(0, len(texts), 50):
        chunk = texts[start : start + 50]
        await irc.send_raw(b"".join(f"PRIVMSG {channel} :{t}\r\n".encode() for t in chunk))
        await asyncio.sleep(0.01)


@pytest.mark.ircd
@pytest.mark.timeout(300)
async def test_scalar_matrix_irc_bridge_1000_messages_exactly_once_in_order(
    tmp_path: Path,
    matrix_users: MatrixUsers,
    shm_synapse: Synapse,
    ircd_factory: IRCdFactory,
) -> None:
    ircd = ircd_factory(threshold=100000, commandrate=10000000)
    owner = await matrix_users.new("owner", server=shm_synapse)
    bot = await register_bot(shm_synapse)
    room_id = await private_room(owner, bot)
    config = overrides(shm_synapse, bot, room_id)
    config["accounts"]["irc"] = irc_account(ircd)
    config["bridges"][0]["links"].append({"account": "irc", "target": "#irc"})
    from_scalar = [f"s{i}" for i in range(334)]
    from_matrix = [f"m{i}" for i in range(333)]
    from_irc = [f"i{i}" for i in range(333)]
    async with running(tmp_path, config) as srv, RawIRC(ircd.host, ircd.port, "u1") as u1:
        await u1.connect()
        await u1.join("#irc")
        await wait_for(
            lambda: all(st.state == "joined" for st in srv.app.link_statuses()),
            within=20,
            what="both links joined",
        )
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)

        async def scalar_side() -> None:
            for text in from_scalar:
                await alice.publish(channel, text)

        started = time.monotonic()
        await asyncio.gather(
            scalar_side(),
            send_many(owner, room_id, from_matrix),
            irc_flood(u1, "#irc", from_irc),
        )
        mx = adapter(srv)
        await wait_for(
            lambda: mx.status()[0].relayed_out == 667, within=60, what="667 sent to Matrix"
        )
        await wait_for(lambda: len(u1.messages("#irc")) >= 667, within=30, what="667 IRC lines")
        await asyncio.sleep(0.5)  # a duplicate or a loop would show up now
        elapsed = time.monotonic() - started

        msgs = await room_messages(owner.client, room_id)
        matrix_order = [m["content"]["body"] for m in msgs if m["sender"] == owner.user_id]
        assert sorted(matrix_order) == sorted(from_matrix)
        in_matrix = [m["content"]["body"] for m in msgs if m["sender"] == bot]
        assert [b for b in in_matrix if b.startswith("<alice> ")] == [
            f"<alice> {t}" for t in from_scalar
        ]
        # An IRC burst of one nick reaches Matrix as fewer messages of joined lines.
        from_u1 = [b.removeprefix("<u1> ") for b in in_matrix if b.startswith("<u1> ")]
        assert "\n".join(from_u1).split("\n") == from_irc
        assert len(in_matrix) == len(from_scalar) + len(from_u1)

        lines = [m.trailing for m in u1.messages("#irc")]
        assert len(lines) == 667
        assert [t for t in lines if t.startswith("<alice> ")] == [
            f"<alice> {t}" for t in from_scalar
        ]
        name = owner.localpart
        assert [t for t in lines if t.startswith(f"<{name}> ")] == [
            f"<{name}> {t}" for t in matrix_order
        ]

        history = [e async for e in alice.history_after(channel, 0)]
        assert len(history) == 1000
        assert [e.body for e in history if e.origin is None] == from_scalar
        assert [e.body for e in history if e.origin == f"matrix:mx/{room_id}"] == matrix_order
        assert [e.body for e in history if e.origin == "irc:irc/#irc"] == from_irc
        print(f"\n1,000 messages through Scalar <-> Matrix <-> IRC in {elapsed:.1f} s")
