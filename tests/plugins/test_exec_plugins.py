"""`type: exec` accounts and bots: any program, its session on stdio (§12)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from bridgehost.testing import running, wait_until
from tests.servers.ircd import free_port

from .helpers import EXAMPLES, alive, exec_account, open_tcp, script, supervisor

CHANNEL = "#lines@test.example"
ME = "!exec-lines@test.example"


def linebridge(command: list[str], port: int) -> dict[str, object]:
    return {
        "accounts": {"lines": exec_account(command, id=ME, config={"listen": f"127.0.0.1:{port}"})},
        "bridges": [{"channel": CHANNEL, "links": [{"account": "lines", "target": "tcp"}]}],
    }


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([sys.executable, str(EXAMPLES / "linebridge.py")], id="python"),
        pytest.param(["node", str(EXAMPLES / "linebridge.js")], id="javascript"),
    ],
)
async def test_example_plugin_relays_a_line_into_scalar_and_back(
    tmp_path: Path, command: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    async with running(tmp_path, linebridge(command, port)) as srv:
        alice = await srv.client("alice")
        await alice.sub(CHANNEL)
        reader, writer = await open_tcp(port)
        writer.write(b"hello from tcp\n")
        event = await alice.next_event(10)
        assert (event.body, event.sender, event.origin) == ("hello from tcp", ME, "exec:lines/tcp")
        assert event.nick is not None and event.nick.startswith("tcp-")
        await alice.publish(CHANNEL, "hi back")
        assert await asyncio.wait_for(reader.readline(), 10) == b"<alice> hi back\n"
        status = srv.app.status()
        [plugin] = status["plugins"]
        assert (plugin["kind"], plugin["state"], plugin["id"]) == ("exec", "running", ME)
        await wait_until(lambda: srv.app.link_statuses()[0].state == "up", what="reported up")
        pid = plugin["pid"]
        writer.close()
    assert not alive(pid)
    assert supervisor(srv, "lines").state.state == "stopped"
    stopped = [r.getMessage() for r in caplog.records if r.name == "bridgehost.plugin.lines"]
    assert "stopped (exited with code 0)" in stopped, "it should leave on bye, unsignalled"
    assert any("session open as" in line for line in stopped), "its stderr reaches the log"


async def test_environment_names_the_plugin_and_keeps_secrets_out(tmp_path: Path) -> None:
    os.environ["BRIDGEHOST_TEST_SECRET"] = "hunter2"
    out = tmp_path / "env-weather.json"
    command = script(
        tmp_path,
        "env",
        f"""
        name = os.environ["BRIDGEHOST_NAME"].strip("!").split("@")[0]
        json.dump(dict(os.environ), open({str(tmp_path)!r} + f"/env-{{name}}.json", "w"))
        ident()
        while True:
            recv()
        """,
    )
    config = {
        "accounts": {
            "weather": exec_account(
                command, id="!weather@test.example", env={"CITY": "Oslo"}, config={"units": "si"}
            )
        },
        "bridges": [
            {"channel": "#w@test.example", "links": [{"account": "weather", "target": "oslo"}]}
        ],
        "bots": [
            {"command": command, "id": "!botprog@test.example", "topics": ["#w@test.example"]}
        ],
    }
    try:
        async with running(tmp_path, config) as srv:
            await wait_until(out.exists, what="the plugin's environment")
            await wait_until(lambda: srv.app.server.hub.is_online("!weather@test.example"))
            assert [b["id"] for b in srv.app.status()["bots"]] == ["!botprog@test.example"]
    finally:
        del os.environ["BRIDGEHOST_TEST_SECRET"]
    env = json.loads(out.read_text())
    assert "BRIDGEHOST_TEST_SECRET" not in env
    assert env["CITY"] == "Oslo" and env["PATH"]
    assert env["BRIDGEHOST_ID"] == "!weather@test.example"
    assert env["BRIDGEHOST_NAME"] == "weather"
    assert env["BRIDGEHOST_KIND"] == "account"
    assert env["BRIDGEHOST_DOMAIN"] == "test.example"
    assert env["BRIDGEHOST_PROTOCOL"] == "scalar/1"
    assert json.loads(env["BRIDGEHOST_CONFIG"]) == {"units": "si"}
    assert json.loads(env["BRIDGEHOST_TOPICS"]) == ["#w@test.example"]
    assert json.loads(env["BRIDGEHOST_LINKS"]) == [
        {
            "channel": "#w@test.example",
            "target": "oslo",
            "direction": "both",
            "origin": "exec:weather/oslo",
        }
    ]
    bot = json.loads((tmp_path / "env-botprog.json").read_text())
    assert (bot["BRIDGEHOST_KIND"], bot["BRIDGEHOST_ID"]) == ("bot", "!botprog@test.example")
    assert json.loads(bot["BRIDGEHOST_TOPICS"]) == ["#w@test.example"]
    mode = os.stat(env["BRIDGEHOST_STATE_DIR"]).st_mode
    assert mode & 0o777 == 0o700
