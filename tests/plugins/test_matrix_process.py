"""`process: true` with the Matrix adapter against a real Synapse: it relays both
ways from its child process, and a child killed with SIGKILL is replaced
without losing or repeating a message (its login, device and sync checkpoint
are in the child's own store)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from bridgehost.config import load_config
from bridgehost.testing import running, wait_until
from tests.integration.matrix_helpers import (
    BOT_PASSWORD,
    private_room,
    register_bot,
    room_messages,
    send,
    wait_room_messages,
)
from tests.servers.synapse import Synapse
from tests.servers.synapse_fixtures import MatrixUsers

from .helpers import config_file, supervisor

pytestmark = [pytest.mark.synapse]

CHANNEL = "#mx@test.example"


async def test_the_matrix_adapter_in_a_child_process_survives_sigkill(
    tmp_path: Path, synapse: Synapse, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(synapse)
    room_id = await private_room(owner, bot)
    account = {
        "type": "matrix",
        "homeserver": synapse.url,
        "user_id": bot,
        "password": BOT_PASSWORD,
        "reconnect_initial": 0.1,
        "reconnect_max": 1.0,
        "process": True,
    }
    bridges = [{"channel": CHANNEL, "links": [{"account": "mx", "target": room_id}]}]
    config = load_config(config_file(tmp_path, {"mx": account}, bridges))
    origin = f"matrix:mx/{room_id}"
    want: list[str] = []
    async with running(tmp_path, config=config) as srv:
        await wait_until(
            lambda: srv.app.link_statuses()[0].state == "joined", 30, "the room joined"
        )
        alice = await srv.client("alice")
        await alice.sub(CHANNEL)
        got: list[str] = []

        async def watch() -> None:
            async for event in alice:
                if event.origin == origin:
                    got.append(event.body)

        watching = asyncio.create_task(watch())
        try:
            for n in range(5):
                await send(owner, room_id, {"msgtype": "m.text", "body": f"m{n}"})
                await alice.publish(CHANNEL, f"s{n}")
            sup = supervisor(srv, "mx")
            await wait_until(lambda: len(got) >= 5, 20, "Matrix -> Scalar")
            pid = sup.state.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            for n in range(5, 10):  # while the adapter's process is down
                await send(owner, room_id, {"msgtype": "m.text", "body": f"m{n}"})
                await alice.publish(CHANNEL, f"s{n}")
            await wait_until(lambda: len(got) >= 10, 30, "what Matrix said meanwhile")
            want[:] = [f"<alice> s{n}" for n in range(10)]
            await wait_room_messages(
                owner.client,
                room_id,
                lambda msgs: (
                    [m["content"]["body"] for m in msgs if m["sender"] == bot][-1:] == want[-1:]
                ),
                within=30,
            )
            await asyncio.sleep(1.0)  # a duplicate would show up now
        finally:
            watching.cancel()
        assert sup.state.restarts == 1
        assert got == [f"m{n}" for n in range(10)]
    msgs = await room_messages(owner.client, room_id)
    # The message being sent when the process died is sent again with the same
    # transaction id (from the event): the homeserver keeps it once.
    assert [m["content"]["body"] for m in msgs if m["sender"] == bot] == want
    logins = (tmp_path / "data" / "plugins" / "mx" / "state.sqlite3").exists()
    assert logins, "its session and checkpoint live in the child's own store"
