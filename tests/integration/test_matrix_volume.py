"""Matrix adapter under load: 1,000 messages each way, each once, in order.

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
from tests.servers.synapse import Synapse, SynapseTemplate
from tests.servers.synapse_fixtures import MatrixUsers

from .matrix_helpers import (
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
            for first in range(0, COUNT, IN_FLIGHT):
                await asyncio.gather(
                    *(
                        send(owner, room_id, {"msgtype": "m.text", "body": f"m{i}"})
                        for i in range(first, min(first + IN_FLIGHT, COUNT))
                    )
                )

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
