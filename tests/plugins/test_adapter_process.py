"""`process: true`: the IRC adapter in a child process, killed with SIGKILL
mid-stream, against real InspIRCd and Synapse. Every message arrives once,
in order; the Matrix link of the same bridge runs in bridgehost itself and
never notices (what its room says keeps coming in while IRC is down, and
reaches IRC once the adapter is back); the child is back within 2 s.

The Matrix link relays Matrix -> Scalar only: 2,000 messages the other way
would take Synapse minutes and test nothing more about the child."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridgehost.config import load_config
from bridgehost.testing import running
from tests.integration.matrix_helpers import (
    BOT_PASSWORD,
    private_room,
    register_bot,
    room_messages,
    send,
)
from tests.servers.fixtures import IRCdFactory
from tests.servers.ircd import RawIRC
from tests.servers.synapse import Synapse
from tests.servers.synapse_fixtures import MatrixUsers

from .helpers import supervisor, wait_until

pytestmark = [pytest.mark.ircd, pytest.mark.synapse, pytest.mark.slow]

COUNT = 1000
MATRIX_COUNT = 200
CHANNEL = "#room@test.example"
IRC_ORIGIN = "irc:irc/#irc"


def write_config(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "bridgehost.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def test_sigkill_of_the_irc_adapter_process_mid_stream(
    tmp_path: Path, ircd_factory: IRCdFactory, synapse: Synapse, matrix_users: MatrixUsers
) -> None:
    ircd = ircd_factory(threshold=100000, commandrate=10000000)
    owner = await matrix_users.new("owner")
    bot = await register_bot(synapse)
    room_id = await private_room(owner, bot)
    raw = {
        "server": {
            "domain": "test.example",
            "listen": ["tcp://127.0.0.1:0"],
            "data_dir": str(tmp_path / "data"),
            "limits": {"rate": 100000, "burst": 100000},
        },
        "accounts": {
            "irc": {
                "type": "irc",
                "host": ircd.host,
                "port": ircd.port,
                "tls": False,
                "nick": "bridge",
                "flood": {"burst": 1000, "interval": 0},
                "reconnect_initial": 0.1,
                "reconnect_max": 1.0,
                "process": True,
            },
            "mx": {
                "type": "matrix",
                "homeserver": synapse.url,
                "user_id": bot,
                "password": BOT_PASSWORD,
            },
        },
        "bridges": [
            {
                "channel": CHANNEL,
                "links": [
                    {"account": "irc", "target": "#irc"},
                    {"account": "mx", "target": room_id},
                ],
            }
        ],
    }
    config = load_config(write_config(tmp_path, raw))
    async with running(tmp_path, config=config) as srv, RawIRC(ircd.host, ircd.port, "u1") as u1:
        await u1.connect()
        await u1.join("#irc")
        links = {st.account: st for st in srv.app.link_statuses()}
        await wait_until(
            lambda: all(st.state == "joined" for st in links.values()), 30, "links joined"
        )
        alice = await srv.client("alice")
        await alice.sub(CHANNEL)
        sup = supervisor(srv, "irc")
        from_irc: list[str] = []
        from_matrix: list[tuple[float, str]] = []
        matrix_states: set[str] = set()
        mx_origin = f"matrix:mx/{room_id}"

        async def watch() -> None:
            async for event in alice:
                if event.origin == IRC_ORIGIN:
                    from_irc.append(event.body)
                elif event.origin == mx_origin:
                    from_matrix.append((time.monotonic(), event.body))

        async def matrix_watch() -> None:
            while True:
                matrix_states.add(links["mx"].state)
                await asyncio.sleep(0.01)

        async def scalar_side() -> None:
            for i in range(COUNT):
                await alice.publish(CHANNEL, f"s{i:04d}")
                await asyncio.sleep(0.002)

        async def irc_side() -> None:
            for start in range(0, COUNT, 10):
                lines = (f"PRIVMSG #irc :i{n:04d}\r\n" for n in range(start, start + 10))
                await u1.send_raw("".join(lines).encode())
                await asyncio.sleep(0.02)

        async def matrix_side() -> None:
            for first in range(0, MATRIX_COUNT, 10):
                await asyncio.gather(
                    *(
                        send(owner, room_id, {"msgtype": "m.text", "body": f"m{n:04d}"})
                        for n in range(first, first + 10)
                    )
                )

        back_after: list[float] = []
        outage: list[float] = []

        async def kill() -> None:
            await wait_until(lambda: len(u1.messages("#irc")) >= 300, 30, "300 lines on IRC")
            pid = sup.state.pid
            assert pid is not None
            killed = time.monotonic()
            outage.append(killed)
            os.kill(pid, signal.SIGKILL)
            hub = srv.app.server
            assert hub is not None
            await wait_until(
                lambda: (
                    sup.state.pid not in (None, pid)
                    and hub.hub.is_online(sup.spec.ident)
                    and links["irc"].state == "joined"
                ),
                10,
                "the adapter back",
            )
            back_after.append(time.monotonic() - killed)
            outage.append(time.monotonic())

        watching = [asyncio.create_task(watch()), asyncio.create_task(matrix_watch())]
        try:
            await asyncio.gather(scalar_side(), irc_side(), matrix_side(), kill())
            want_irc = [f"<alice> s{i:04d}" for i in range(COUNT)]
            await wait_until(
                lambda: (
                    len([m for m in u1.messages("#irc") if m.trailing.startswith("<alice>")])
                    >= COUNT
                ),
                30,
                "every Scalar message on IRC",
            )
            await wait_until(lambda: len(from_irc) >= COUNT, 30, "every IRC message in Scalar")
            await wait_until(lambda: len(from_matrix) >= MATRIX_COUNT, 30, "Matrix in Scalar")
            await wait_until(
                lambda: len(u1.messages("#irc")) >= COUNT + MATRIX_COUNT, 30, "Matrix on IRC"
            )
            await asyncio.sleep(0.5)  # a duplicate would show up now
        finally:
            for task in watching:
                task.cancel()
        on_irc = [m.trailing for m in u1.messages("#irc") if m.trailing.startswith("<alice>")]
        assert on_irc == want_irc
        assert from_irc == [f"i{i:04d}" for i in range(COUNT)]
        assert back_after[0] < 2.0, f"back after {back_after[0]:.2f} s"
        assert matrix_states == {"joined"}, "the Matrix link never noticed"
        msgs = await room_messages(owner.client, room_id)
        matrix_order = [m["content"]["body"] for m in msgs if m["sender"] == owner.user_id]
        assert sorted(matrix_order) == [f"m{n:04d}" for n in range(MATRIX_COUNT)]
        assert [body for _, body in from_matrix] == matrix_order
        name = owner.localpart
        on_irc_from_matrix = [
            m.trailing for m in u1.messages("#irc") if m.trailing.startswith(f"<{name}> ")
        ]
        assert on_irc_from_matrix == [f"<{name}> {body}" for body in matrix_order]
        during = [t for t, _ in from_matrix if outage[0] <= t <= outage[1]]
        assert during, "Matrix messages arrived while the IRC adapter was down"
        arrivals = [t for t, _ in from_matrix]
        gaps = [b - a for a, b in itertools.pairwise(arrivals) if a >= outage[0]]
        assert max(gaps, default=0) < 1.0, "no stall on the Matrix side"
        assert sup.state.restarts == 1
