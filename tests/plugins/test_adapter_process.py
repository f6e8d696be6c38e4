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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridgehost.config import load_config
from bridgehost.testing import Running, running, wait_until
from tests.integration.irc_helpers import OPER_CONFIG, irc_account, make_op
from tests.integration.matrix_helpers import (
    BOT_PASSWORD,
    private_room,
    register_bot,
    room_messages,
    send,
)
from tests.servers.fixtures import IRCdFactory
from tests.servers.ircd import InspIRCd, RawIRC
from tests.servers.synapse import Synapse
from tests.servers.synapse_fixtures import MatrixUser, MatrixUsers

from .helpers import config_file, supervisor

pytestmark = [pytest.mark.ircd, pytest.mark.synapse, pytest.mark.slow]

COUNT = 1000
MATRIX_COUNT = 200
CHANNEL = "#room@test.example"
IRC_ORIGIN = "irc:irc/#irc"
HISTORY = '<chanhistory maxlines="5000" notice="no">'
"""InspIRCd keeps up to 5,000 lines of a +H channel and sends them on join (IRCv3
chathistory batch): how the restarted adapter learns what IRC said meanwhile."""


def bridge_config(tmp_path: Path, ircd: InspIRCd, synapse: Synapse, bot: str, room: str) -> Path:
    accounts = {
        "irc": irc_account(ircd, reconnect_initial=0.1, process=True),  # `<alice> ...`
        "mx": {
            "type": "matrix",
            "homeserver": synapse.url,
            "user_id": bot,
            "password": BOT_PASSWORD,
        },
    }
    links = [
        {"account": "irc", "target": "#irc"},
        {"account": "mx", "target": room, "direction": "in"},
    ]
    return config_file(tmp_path, accounts, [{"channel": CHANNEL, "links": links}])


@dataclass
class Streams:
    """What each side saw, and when the IRC adapter was down."""

    from_irc: list[str] = field(default_factory=list)
    from_matrix: list[tuple[float, str]] = field(default_factory=list)
    matrix_states: set[str] = field(default_factory=set)
    killed: float = 0.0
    back: float = 0.0
    joined: float = 0.0


@pytest.mark.alone
async def test_sigkill_of_the_irc_adapter_process_mid_stream(
    tmp_path: Path, ircd_factory: IRCdFactory, synapse: Synapse, matrix_users: MatrixUsers
) -> None:
    ircd = ircd_factory(
        threshold=100000,
        commandrate=10000000,
        extra_config=[*OPER_CONFIG, HISTORY, '<module name="ircv3_ctctags">'],
    )
    owner = await matrix_users.new("owner")
    bot = await register_bot(synapse)
    room_id = await private_room(owner, bot)
    config = load_config(bridge_config(tmp_path, ircd, synapse, bot, room_id))
    async with RawIRC(ircd.host, ircd.port, "u1") as u1:
        await u1.connect()
        await u1.join("#irc")
        await make_op(u1, "#irc")
        await u1.send("MODE #irc +H 5000:1d")  # the channel keeps its history (chanhistory)
        async with running(tmp_path, config=config) as srv:
            seen = await run_streams(srv, u1, owner, room_id)
            sup = supervisor(srv, "irc")
            assert sup.state.restarts == 1
        msgs = await room_messages(owner.client, room_id)

    want_on_irc = [f"<alice> s{i:04d}" for i in range(COUNT)]
    assert [m.trailing for m in u1.messages("#irc") if m.trailing.startswith("<alice>")] == (
        want_on_irc
    ), "Scalar -> IRC: each once, in order"
    assert seen.from_irc == [f"i{i:04d}" for i in range(COUNT)], "IRC -> Scalar: each once"
    print(
        f"\nafter SIGKILL the IRC adapter process was back in {seen.back - seen.killed:.2f} s"
        f" and joined again in {seen.joined - seen.killed:.2f} s"
    )
    assert seen.back - seen.killed < 2.0, "the child is back within 2 s"
    # Joining again adds the IRC server's registration (InspIRCd completes it on its
    # once-a-second tick): a generous, functional deadline.
    assert seen.joined - seen.killed < 4.0

    assert seen.matrix_states == {"joined"}, "the Matrix link never noticed"
    matrix_order = [m["content"]["body"] for m in msgs if m["sender"] == owner.user_id]
    assert sorted(matrix_order) == [f"m{n:04d}" for n in range(MATRIX_COUNT)]
    assert [body for _, body in seen.from_matrix] == matrix_order
    name = owner.localpart
    assert [m.trailing for m in u1.messages("#irc") if m.trailing.startswith(f"<{name}> ")] == [
        f"<{name}> {body}" for body in matrix_order
    ], "what Matrix said while IRC was down reaches IRC, once, in order"
    arrivals = [t for t, _ in seen.from_matrix]
    assert any(seen.killed <= t <= seen.joined for t in arrivals), "it kept coming meanwhile"
    gaps = [b - a for a, b in itertools.pairwise(arrivals) if a >= seen.killed]
    assert max(gaps, default=0) < 1.0, "with no stall"


async def run_streams(srv: Running, u1: RawIRC, owner: MatrixUser, room_id: str) -> Streams:
    """1,000 messages Scalar -> IRC and 1,000 IRC -> Scalar, Matrix talking too, and
    the IRC adapter's process killed with SIGKILL once 300 have reached IRC."""
    seen = Streams()
    links = {st.account: st for st in srv.app.link_statuses()}
    await wait_until(lambda: all(s.state == "joined" for s in links.values()), 30, "joined")
    alice = await srv.client("alice")
    await alice.sub(CHANNEL)
    sup = supervisor(srv, "irc")
    hub = srv.app.server.hub
    mx_origin = f"matrix:mx/{room_id}"

    async def watch() -> None:
        async for event in alice:
            if event.origin == IRC_ORIGIN:
                seen.from_irc.append(event.body)
            elif event.origin == mx_origin:
                seen.from_matrix.append((time.monotonic(), event.body))

    async def watch_matrix_link() -> None:
        while True:
            seen.matrix_states.add(links["mx"].state)
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

    async def kill() -> None:
        await wait_until(lambda: len(u1.messages("#irc")) >= 300, 30, "300 lines on IRC")
        pid = sup.state.pid
        assert pid is not None
        seen.killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await wait_until(
            lambda: sup.state.pid not in (None, pid) and hub.is_online(sup.spec.ident),
            10,
            "the adapter process back",
        )
        seen.back = time.monotonic()
        await wait_until(lambda: links["irc"].state == "joined", 10, "IRC joined again")
        seen.joined = time.monotonic()

    def on_irc(prefix: str) -> int:
        return sum(1 for m in u1.messages("#irc") if m.trailing.startswith(prefix))

    watching = [asyncio.create_task(watch()), asyncio.create_task(watch_matrix_link())]
    try:
        await asyncio.gather(scalar_side(), irc_side(), matrix_side(), kill())
        await wait_until(lambda: on_irc("<alice>") >= COUNT, 30, "every Scalar message on IRC")
        await wait_until(lambda: len(seen.from_irc) >= COUNT, 30, "every IRC line in Scalar")
        await wait_until(lambda: len(seen.from_matrix) >= MATRIX_COUNT, 30, "Matrix in Scalar")
        name = owner.localpart
        await wait_until(lambda: on_irc(f"<{name}>") >= MATRIX_COUNT, 30, "Matrix on IRC")
        await asyncio.sleep(0.5)  # a duplicate would show up now
    finally:
        for task in watching:
            task.cancel()
    return seen
