"""docs/bots.md keeps its promises: the examples in it are the files tested
here, the 10-line bot works, the user's example bot passes mypy --strict, the
documented test passes, and the raw (no-bridgehost) bot works against a server."""

import asyncio
import contextlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bridgehost.bots import Bot
from bridgehost.testing import running
from bridgehost.testing.bots import BotHarness

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "bots.md"
EXAMPLES = ROOT / "docs" / "examples"
LOBBY = "#lobby@test.example"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)


def test_docs_show_the_tested_example_files_verbatim() -> None:
    blocks = python_blocks()
    for name in ("greeter.py", "test_greeter.py", "raw_bot.py"):
        assert (EXAMPLES / name).read_text() in blocks, f"docs/bots.md lacks {name} verbatim"
    assert "import bridgehost" not in (EXAMPLES / "raw_bot.py").read_text()
    assert "from bridgehost" not in (EXAMPLES / "raw_bot.py").read_text()


async def test_the_ten_line_bot_works(tmp_path: Path) -> None:
    source = python_blocks()[0]
    assert len(source.strip().splitlines()) <= 10
    module = types.ModuleType("docs_hello")
    exec(compile(source, "docs/bots.md", "exec"), module.__dict__)
    hello = module.Hello
    assert issubclass(hello, Bot)
    async with BotHarness(tmp_path, hello) as h:
        assert await h.ask("!hello") == "hello, alice!"
        assert await h.ask("!hello world") == "hello, world!"


def test_example_user_bot_is_mypy_strict_clean() -> None:
    files = [str(EXAMPLES / "greeter.py"), str(EXAMPLES / "test_greeter.py")]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", *files],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_a_wrong_handler_signature(tmp_path: Path) -> None:
    bad = tmp_path / "bad_bot.py"
    bad.write_text(
        "from bridgehost.bots import Bot, Context, command\n\n\n"
        "class Bad(Bot):\n"
        '    @command("x")\n'
        "    async def x(self, ctx: Context, args: int) -> None:\n"
        "        pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1 and "bad_bot.py:5" in result.stdout, result.stdout


def test_the_documented_user_test_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_greeter.py"],
        capture_output=True,
        text=True,
        cwd=EXAMPLES,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


async def test_raw_bot_without_bridgehost_answers_and_is_listed_by_help(tmp_path: Path) -> None:
    bots = [{"plugin": "help", "id": "!help@test.example", "topics": [LOBBY]}]
    async with running(tmp_path, {"bots": bots}) as srv:
        ident = "!rawbot@test.example"
        token = await srv.token(ident)
        host, port = srv.url.removeprefix("tcp://").rsplit(":", 1)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / "raw_bot.py"),
            host,
            port,
            ident,
            token,
            LOBBY,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            alice = await srv.client("alice")
            await alice.sub(LOBBY)
            answers: dict[str, str] = {}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while len(answers) < 2 and loop.time() < deadline:
                for text in ("!ping", "!help"):
                    await alice.publish(LOBBY, text)
                try:
                    while len(answers) < 2:
                        event = await alice.next_event(0.5)
                        answers[event.sender] = event.body
                except TimeoutError:
                    continue
            assert answers[ident] == "pong"
            assert "!ping — answers pong" in answers["!help@test.example"].split("\n")
            with contextlib.suppress(TimeoutError):
                while True:  # answers to retries, if any
                    await alice.next_event(0.3)
            await alice.publish(LOBBY, "!ping", kind="notice")
            await alice.publish(LOBBY, "not a command")
            with pytest.raises(TimeoutError):  # no answer to a notice or a non-command
                print(await alice.next_event(0.5))
        finally:
            proc.kill()
            await proc.wait()

        bad = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / "raw_bot.py"),
            host,
            port,
            ident,
            "bht_wrong",
            LOBBY,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(bad.communicate(), 10)
        assert bad.returncode == 1
        assert b"login refused" in err
