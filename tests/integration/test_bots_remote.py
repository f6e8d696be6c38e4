"""Bots out of process: `python -m bridgehost bot ...` as a real subprocess
against a real server; lost connections, a server restart, wrong tokens."""

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bridgehost.cli import main
from bridgehost.scalar.client import Client
from bridgehost.testing import Running, running
from tests.integration.proc import free_port

LOBBY = "#lobby@test.example"
BOT = "!rping@test.example"


def overrides(port: int) -> dict[str, object]:
    return {
        "server": {"listen": [f"tcp://127.0.0.1:{port}"]},
        "bots": [{"plugin": "help", "id": "!help@test.example", "topics": [LOBBY]}],
    }


@asynccontextmanager
async def bot_process(
    tmp_path: Path,
    url: str,
    token: str,
    plugin: str = "ping",
    ident: str = BOT,
    *extra: str,
) -> AsyncIterator[asyncio.subprocess.Process]:
    log = (tmp_path / f"bot-{ident[1:]}.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridgehost",
        "bot",
        plugin,
        "--server",
        url,
        "--id",
        ident,
        "--topic",
        LOBBY,
        "--data",
        str(tmp_path / f"{ident[1:]}.sqlite"),
        *extra,
        env={**os.environ, "BRIDGEHOST_TOKEN": token},
        stdout=log,
        stderr=log,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


async def until_answered(
    client: Client, text: str, sender: str, timeout: float = 15.0, each: float = 0.5
) -> str:
    """Say `text` until `sender` answers (a bot that is still (re)connecting misses it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await client.publish(LOBBY, text)
        try:
            while True:
                event = await client.next_event(each)
                if event.sender == sender:
                    return event.body
        except TimeoutError:
            continue
    raise AssertionError(f"{sender} never answered {text!r}")


async def lobby_client(srv: Running) -> Client:
    alice = await srv.client("alice")
    await alice.sub(LOBBY)
    return alice


async def test_remote_bot_answers_announces_and_survives_lost_connections(
    tmp_path: Path,
) -> None:
    port = free_port()
    async with running(tmp_path, overrides(port)) as srv:
        token = await srv.token(BOT)
    async with bot_process(tmp_path, f"tcp://127.0.0.1:{port}", token) as proc:
        async with running(tmp_path, overrides(port)) as srv:
            alice = await lobby_client(srv)
            assert await until_answered(alice, "!ping", BOT) == "pong"
            helped = await until_answered(alice, "!help", "!help@test.example")
            assert "!ping — answers pong (is the bot alive?)" in helped.split("\n")

            server = srv.app.server
            assert server is not None
            conns = [c for c in server.connections if c.id == BOT]
            assert len(conns) == 1
            conns[0].sink.abort()
            assert await until_answered(alice, "!ping", BOT) == "pong"
            assert len([c for c in server.connections if c.id == BOT]) == 1
        async with running(tmp_path, overrides(port)) as srv:  # a server restart
            alice = await lobby_client(srv)
            assert await until_answered(alice, "!ping", BOT, timeout=20) == "pong"
            assert proc.returncode is None
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_remote_store_survives_a_bot_restart(tmp_path: Path) -> None:
    seen = "!rseen@test.example"
    async with running(tmp_path, overrides(free_port())) as srv:
        token = await srv.token(seen)
        alice = await lobby_client(srv)
        async with bot_process(tmp_path, srv.url, token, "seen", seen) as proc:
            assert await until_answered(alice, "!seen bob", seen) == "I have not seen bob"
            bob = await srv.client("bob")
            await bob.sub(LOBBY)
            await bob.publish(LOBBY, "see you")
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 10) == 0
        async with bot_process(tmp_path, srv.url, token, "seen", seen, "--prefix", "?"):
            answer = await until_answered(alice, "?seen bob", seen)
            assert answer.startswith(f"bob was last seen in {LOBBY}")
            assert answer.endswith("saying: see you")
    assert (tmp_path / "rseen@test.example.sqlite").exists()


async def test_wrong_token_says_why_and_exits_1_without_retrying(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        await srv.token(BOT)
        async with bot_process(tmp_path, srv.url, "bht_wrong") as proc:
            assert await asyncio.wait_for(proc.wait(), 15) == 1
    log = (tmp_path / f"bot-{BOT[1:]}.log").read_text()
    assert f"bridgehost bot: the server refused {BOT}: wrong token" in log
    assert "bridgehost token create" in log
    assert "bht_wrong" not in log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ping", "--id", BOT], "no token: pass --token or set $BRIDGEHOST_TOKEN"),
        (["no_such_mod:X", "--id", BOT, "--token", "t"], "cannot import no_such_mod"),
        (["ping", "--id", "alice@test.example", "--token", "t"], "a bot runs as a reserved ID"),
        (["ping", "--id", BOT, "--token", "t", "--topic", "#bad topic"], "--topic: malformed"),
        (["ping", "--id", BOT, "--token", "t", "--rate", "0"], "--rate must be > 0"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BRIDGEHOST_TOKEN", raising=False)
    assert main(["bot", *args, "--server", "tcp://127.0.0.1:9"]) == 2
    assert message in capsys.readouterr().err


def test_bad_bot_config_file_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "bot.yaml"
    conf.write_text("greeting: 3\n")
    args = ["bot", "tests.integration.test_bots_framework:Greeter", "--id", BOT, "--token", "t"]
    code = main([*args, "--server", "tcp://127.0.0.1:9", "--bot-config", str(conf)])
    assert code == 2
    assert "config.greeting: must be str, not 3" in capsys.readouterr().err
