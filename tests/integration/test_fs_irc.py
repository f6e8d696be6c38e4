"""IRC <-> fs through one bridge, against a real InspIRCd: a line said on IRC
lands in the topic's `out`; a line echoed into `in` is said on IRC."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.ircd import InspIRCd, RawIRC

from .irc_helpers import bridge_config, irc_account, statuses, wait_until

pytestmark = pytest.mark.ircd

ROOM = "#room@test.example"


def out_lines(path: Path) -> list[str]:
    return [line[20:] for line in path.read_text().splitlines()] if path.exists() else []


async def test_irc_message_appears_in_out_and_in_reaches_irc(
    tmp_path: Path, ircd: InspIRCd
) -> None:
    root = tmp_path / "chat"
    overrides = bridge_config(
        {
            "net": irc_account(ircd),
            "sh": {"type": "fs", "root": str(root), "nick": "shelly"},
        },
        [("room", [{"account": "net", "target": "#room"}, {"account": "sh"}])],
    )
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "alice") as irc:
        await irc.connect()
        await irc.join("#room")
        await wait_until(
            lambda: {s.state for s in statuses(srv)} == {"joined", "up"}, what="links up"
        )
        topic = root / ROOM
        assert stat.S_ISFIFO(os.stat(topic / "in").st_mode)

        await irc.privmsg("#room", "hello from irc")
        await irc.send("PRIVMSG #room :\x01ACTION waves\x01")
        await wait_until(
            lambda: out_lines(topic / "out") == ["<alice> hello from irc", "* alice waves"],
            what=f"out lines, got {out_lines(topic / 'out')}",
        )

        mark = irc.mark()
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", 'echo "hi from the shell" > "$1"', "sh", str(topic / "in")
        )
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        line = await irc.wait_for(lambda m: m.command == "PRIVMSG", since=mark)
        assert line.params == ("#room", "<shelly> hi from the shell")
        await wait_until(lambda: out_lines(topic / "out")[-1] == "<shelly> hi from the shell")
        await irc.quit()
