"""The headline use: mirror an IRC channel into Scalar (live, and via catchup later)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.ircd import InspIRCd, RawIRC

from .irc_helpers import bridge_config, irc_account, wait_joined, wait_until

pytestmark = pytest.mark.ircd


async def test_mirror_irc_channel_live_and_by_catchup(tmp_path: Path, ircd: InspIRCd) -> None:
    # The README's few lines: an account and an inbound-only link.
    overrides = {
        "accounts": {
            "libera": {
                "type": "irc",
                "host": ircd.host,
                "port": ircd.port,
                "tls": False,
                "nick": "mirrorbot",
            }
        },
        "bridges": [
            {
                "channel": "#python@test.example",
                "links": [{"account": "libera", "target": "#python", "direction": "in"}],
            }
        ],
    }
    async with (
        running(tmp_path, overrides) as srv,
        RawIRC(ircd.host, ircd.port, "guido") as guido,
        RawIRC(ircd.host, ircd.port, "tim") as tim,
    ):
        await guido.connect()
        await tim.connect()
        await guido.join("#python")
        await tim.join("#python")
        await wait_joined(srv)
        channel = srv.channel("python")
        live = await srv.client("watcher")
        await live.sub(channel)

        conversation = [
            (guido, "anyone tried 3.13?"),
            (tim, "yes, the new REPL is nice"),
            (guido, "\x02great\x02"),
        ]
        got = []
        for who, text in conversation:
            await who.privmsg("#python", text)
            got.append(await live.next_event(5))
        expected = [("guido", "anyone tried 3.13?"), ("tim", "yes, the new REPL is nice")]
        expected.append(("guido", "great"))
        assert [(e.nick, e.body) for e in got] == expected
        assert all(e.origin == "irc:libera/#python" for e in got)

        # Inbound only: what is said in Scalar does not go to IRC.
        await live.publish(channel, "not relayed")
        await guido.privmsg("#python", "last")
        assert (await live.next_event(5)).body == "last"
        assert not [m for m in tim.messages("#python") if m.nick == "mirrorbot"]

        # Someone who connects later gets the conversation through catchup.
        late = await srv.client("late")
        history = await late.catchup(channel, limit=50)
        bodies = [(e.nick, e.body) for e in history.events]
        assert bodies[:3] == expected and ("guido", "last") in bodies


async def test_health_per_link_in_status(tmp_path: Path, ircd: InspIRCd) -> None:
    overrides = bridge_config(
        {"net": irc_account(ircd)},
        [
            ("a", [{"account": "net", "target": "#a"}]),
            ("b", [{"account": "net", "target": "#b", "direction": "out"}]),
        ],
    )
    async with running(tmp_path, overrides) as srv, RawIRC(ircd.host, ircd.port, "u") as u:
        await u.connect()
        await u.join("#a")
        await wait_joined(srv)
        status = srv.app.status()
        links = {link["target"]: link for link in status["links"]}
        assert links["#a"]["state"] == "joined" and links["#b"]["state"] == "joined"
        assert links["#b"]["direction"] == "out"
        assert links["#a"]["queued"] == 0 and links["#a"]["last_error"] is None

        await u.privmsg("#a", "counted")
        await wait_until(lambda: srv.app.status()["links"][0]["relayed_in"] == 1, 5, "relayed_in")
        # written to data_dir/status.json for `bridgehost status`
        path = srv.app.config.server.data_dir / "status.json"
        await wait_until(
            lambda: (
                path.exists()
                and any(link["relayed_in"] == 1 for link in json.loads(path.read_text())["links"])
            ),
            5,
            "status.json",
        )
        ircd.stop()
        await wait_until(
            lambda: all(link.state != "joined" for link in srv.app.link_statuses()),
            5,
            "links down",
        )
        down = srv.app.link_statuses()[0]
        assert down.last_error
