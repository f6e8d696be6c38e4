"""The `bridgehost` command, run as users run it."""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgehost.scalar.client import connect

from .proc import BridgehostProcess


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[BridgehostProcess]:
    p = BridgehostProcess(tmp_path)
    yield p
    p.stop()


def test_check_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  domain: 'no spaces allowed'\n  limits: {rate: x}\nbots: 5\n")
    result = subprocess.run(
        [sys.executable, "-m", "bridgehost", "check", "-c", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "server.domain: not a valid domain name" in result.stderr
    assert "server.limits.rate: must be an integer" in result.stderr
    assert "bots: must be a list" in result.stderr
    assert "3 problem(s); nothing started" in result.stderr
    run = subprocess.run(
        [sys.executable, "-m", "bridgehost", "-c", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert run.returncode == 2 and "nothing started" in run.stderr


def test_check_ok(proc: BridgehostProcess) -> None:
    result = proc.cli("check")
    assert result.returncode == 0 and "OK" in result.stdout


def test_help_everywhere() -> None:
    for args in (
        [],
        ["run"],
        ["check"],
        ["user", "add"],
        ["token", "create"],
        ["say"],
        ["tail"],
        ["status"],
        ["bot"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "bridgehost", *args, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0 and "usage: bridgehost" in result.stdout, args
    usage = subprocess.run(
        [sys.executable, "-m", "bridgehost", "frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert usage.returncode == 2


def test_users_tokens_say_tail_status(proc: BridgehostProcess) -> None:
    added = proc.cli("user", "add", "alice", "--password-stdin", stdin="pw-alice\n")
    assert added.returncode == 0 and "alice@test.example" in added.stdout
    assert proc.cli("user", "add", "guest-x", "--password-stdin", stdin="x\n").returncode == 2
    assert proc.cli("token", "create", "#chan@test.example").returncode == 2
    token = proc.cli("token", "create", "!bot@test.example").stdout.strip()
    proc.start()
    topic = "#cli@test.example"
    said = proc.cli("say", topic, "hello from the shell")
    assert said.returncode == 0 and f"{topic} seq 1" in said.stdout
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridgehost",
            "tail",
            topic,
            "--history",
            "5",
            "-c",
            str(proc.config_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None
        first = tail.stdout.readline()
        assert first.endswith("<!cli@test.example> hello from the shell\n")

        async def publish() -> None:
            alice = await connect(proc.url, id="alice@test.example", secret="pw-alice")
            bot = await connect(proc.url, id="!bot@test.example", secret=token)
            await alice.sub(topic)
            await alice.publish(topic, "line one\nline two")
            await bot.publish(topic, "waves", kind="action", nick="Zoë")
            await alice.close()
            await bot.close()

        asyncio.run(publish())
        lines = [tail.stdout.readline() for _ in range(3)]
        assert lines[0].endswith("<alice@test.example> line one\n")
        assert lines[1].endswith("<alice@test.example> line two\n")
        assert lines[2].endswith("* Zoë waves\n")
    finally:
        tail.terminate()
        tail.wait(10)
    time.sleep(1.5)  # the status file is rewritten (on change) every second
    status = proc.cli("status", "--json")
    assert status.returncode == 0
    data = json.loads(status.stdout)
    assert data["listening"] == [proc.url] and data["published"] >= 3
    assert proc.cli("status").stdout.startswith("bridgehost pid")
    proc.stop()
    assert proc.cli("status").returncode == 1


def test_say_fails_cleanly_when_no_server(proc: BridgehostProcess) -> None:
    result = proc.cli("say", "#x@test.example", "hi")
    assert result.returncode == 1 and "bridgehost:" in result.stderr
    assert "Traceback" not in result.stderr
