"""The fs adapter in a whole running bridgehost: shell writers on real FIFOs,
real `out` files, real Scalar clients."""

import asyncio
import logging
import os
import re
import resource
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridgehost.adapters.fs.adapter import FsAdapter
from bridgehost.adapters.fs.lines import MAX_LINE_BYTES
from bridgehost.scalar.client import Client
from bridgehost.testing import Running, running

FS_ID = "!fs-sh@test.example"
LOBBY = "#lobby@test.example"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def fs_config(root: Path, **account: Any) -> dict[str, Any]:
    links = account.pop("links", [{"account": "sh"}])
    return {
        "accounts": {"sh": {"type": "fs", "root": str(root), "nick": "me", **account}},
        "bridges": [{"channel": LOBBY, "links": links}],
    }


async def sh(script: str, *args: str | Path, timeout: float = 10) -> None:
    """Run a shell snippet (`$1`... are the args), as a user at a terminal would."""
    proc = await asyncio.create_subprocess_exec("sh", "-c", script, "sh", *map(str, args))
    assert await asyncio.wait_for(proc.wait(), timeout) == 0


async def wait_until(predicate: Callable[[], object], timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def is_fifo(path: Path) -> bool:
    return path.exists() and stat.S_ISFIFO(os.stat(path).st_mode)


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def lines_of(path: Path) -> list[str]:
    """`out` lines without their time stamps (which are checked separately)."""
    out = []
    for line in read(path).splitlines():
        assert re.fullmatch(STAMP + r" .*", line), line
        out.append(line[20:])
    return out


async def nothing_more(client: Client, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await client.next_event(wait)


async def ready(srv: Running, directory: Path) -> None:
    await wait_until(lambda: is_fifo(directory / "in"))
    await wait_until(lambda: all(st.state == "up" for st in srv.app.link_statuses()))


async def test_echo_into_in_reaches_a_scalar_client_and_out(tmp_path: Path) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root)) as srv:
        lobby = root / LOBBY
        await ready(srv, lobby)
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
        alice = await srv.client("alice")
        await alice.sub(LOBBY)

        await sh('echo hi > "$1"', lobby / "in")
        got = await alice.next_event(5)
        assert (got.body, got.kind, got.sender, got.nick, got.origin) == (
            "hi",
            "text",
            FS_ID,
            "me",
            f"fs:sh/{LOBBY}",
        )
        await sh('echo "/me waves" > "$1"', lobby / "in")
        got = await alice.next_event(5)
        assert (got.body, got.kind, got.nick) == ("waves", "action", "me")
        await wait_until(lambda: lines_of(lobby / "out") == ["<me> hi", "* me waves"])
        await nothing_more(alice)


async def test_event_from_a_client_appears_in_out(tmp_path: Path) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root)) as srv:
        lobby = root / LOBBY
        await ready(srv, lobby)
        alice = await srv.client("alice")
        await alice.sub(LOBBY)
        sent = await alice.publish(LOBBY, "hello\nsecond line\x1b[2J")
        await alice.publish(LOBBY, "stretches", kind="action")
        bot = await srv.client("!ping")
        await bot.publish(LOBBY, "from irc", nick="carol", origin="irc:net/#lobby")
        expected = [
            "<alice> hello",
            "<alice> second line\\x1b[2J",
            "* alice stretches",
            "<carol> from irc",
        ]
        await wait_until(lambda: lines_of(lobby / "out") == expected)
        first = read(lobby / "out").splitlines()[0]
        when = datetime.fromtimestamp(sent.time / 1000, UTC)
        assert first.startswith(when.strftime("%Y-%m-%d %H:%M:%S "))
        assert stat.S_IMODE(os.stat(lobby / "out").st_mode) == 0o600


async def test_chosen_target_is_an_escaped_directory_and_direction_is_kept(
    tmp_path: Path,
) -> None:
    root = tmp_path / "chat"
    links = [
        {"account": "sh", "target": "lobby/main room"},
        {"account": "sh", "target": "readonly", "direction": "out"},
    ]
    async with running(tmp_path, fs_config(root, links=links)) as srv:
        main = root / "lobby%2Fmain%20room"
        await ready(srv, main)
        alice = await srv.client("alice")
        await alice.sub(LOBBY)
        await sh('echo "from main" > "$1"', main / "in")
        got = await alice.next_event(5)
        assert (got.body, got.origin) == ("from main", "fs:sh/lobby/main room")
        readonly = root / "readonly"
        # the other link of the same channel relays it, the link it came from shows its echo
        await wait_until(lambda: lines_of(readonly / "out") == ["<me> from main"])
        await wait_until(lambda: lines_of(main / "out") == ["<me> from main"])
        assert not (readonly / "in").exists()


async def test_direct_messages_get_a_directory_per_user(tmp_path: Path) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root)) as srv:
        await ready(srv, root / LOBBY)
        bob = await srv.client("bob")
        await bob.sub("bob@test.example")
        await bob.publish(FS_ID, "psst")
        bob_dir = root / "bob@test.example"
        await wait_until(lambda: lines_of(bob_dir / "out") == ["<bob> psst"])
        await wait_until(lambda: is_fifo(bob_dir / "in"))

        await sh('echo "hi bob" > "$1"', bob_dir / "in")
        got = await bob.next_event(5)
        assert (got.topic, got.sender, got.nick, got.body) == (
            "bob@test.example",
            FS_ID,
            "me",
            "hi bob",
        )
        await wait_until(lambda: lines_of(bob_dir / "out") == ["<bob> psst", "<me> hi bob"])

        carol = await srv.client("carol")
        await carol.sub("carol@test.example")
        await sh('echo "/msg carol /me says hello" > "$1"', root / "in")
        got = await carol.next_event(5)
        assert (got.body, got.kind, got.nick) == ("says hello", "action", "me")
        await wait_until(
            lambda: lines_of(root / "carol@test.example" / "out") == ["* me says hello"]
        )

        own = root / FS_ID
        await sh('echo "/j $2" > "$1"', root / "in", FS_ID)
        await wait_until(lambda: is_fifo(own / "in"))
        await sh('echo "note to self" > "$1"', own / "in")
        await wait_until(lambda: lines_of(own / "out") == ["<me> note to self"])
        await asyncio.sleep(0.3)
        assert lines_of(own / "out") == ["<me> note to self"]

        await sh('echo "/msg #lobby@test.example x" > "$1"; echo "/nick y" > "$1"', root / "in")
        await wait_until(lambda: len(lines_of(root / "out")) == 2)
        notices = lines_of(root / "out")
        assert notices[0].startswith("-!- /msg: not a user ID of test.example")
        assert notices[1].startswith("-!- unknown command '/nick'")


async def test_dm_directories_are_reopened_after_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root)) as srv:
        await ready(srv, root / LOBBY)
        bob = await srv.client("bob")
        await bob.publish(FS_ID, "before restart")
        await wait_until(lambda: is_fifo(root / "bob@test.example" / "in"))
    async with running(tmp_path, fs_config(root)) as srv:
        await ready(srv, root / LOBBY)
        bob = await srv.client("bob")
        await bob.sub("bob@test.example")
        await sh('echo "after restart" > "$1"', root / "bob@test.example" / "in")
        got = await bob.next_event(5)
        assert got.body == "after restart"
        expected = ["<bob> before restart", "<me> after restart"]
        await wait_until(lambda: lines_of(root / "bob@test.example" / "out") == expected)


async def test_presence_file_for_configured_users(tmp_path: Path) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root, users=["bob"])) as srv:
        presence = root / "bob@test.example" / "presence"
        await ready(srv, root / "bob@test.example")
        await wait_until(lambda: srv.app.link_statuses()[-1].state == "up")
        assert not presence.exists()
        bob = await srv.client("bob")
        await wait_until(lambda: read(presence) == "online\n")
        await bob.close()
        await wait_until(lambda: read(presence) == "offline\n")
        assert stat.S_IMODE(os.stat(presence).st_mode) == 0o600


async def test_invalid_utf8_is_rejected_and_nothing_else_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root)) as srv:
        lobby = root / LOBBY
        await ready(srv, lobby)
        alice = await srv.client("alice")
        await alice.sub(LOBBY)
        with caplog.at_level(logging.WARNING):
            await sh(r'printf "ok1\n\377\376bad\nok2\n" > "$1"', lobby / "in")
            assert (await alice.next_event(5)).body == "ok1"
            assert (await alice.next_event(5)).body == "ok2"
            await nothing_more(alice)
        assert any("not valid UTF-8" in r.getMessage() for r in caplog.records)
        notices = lines_of(root / "out")
        assert len(notices) == 1
        assert "rejected a line of 5 bytes that is not valid UTF-8 (byte 0xff at 0)" in notices[0]


async def test_over_long_line_is_split_not_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root)) as srv:
        lobby = root / LOBBY
        await ready(srv, lobby)
        alice = await srv.client("alice")
        await alice.sub(LOBBY)
        text = ("word é€😀 " * 4000).strip()  # ~56 KB, more than three frames
        (tmp_path / "long.txt").write_text(f"/me {text}\nafter\n")
        with caplog.at_level(logging.WARNING):
            await sh('cat "$2" > "$1"', lobby / "in", tmp_path / "long.txt")
            pieces = []
            while True:
                got = await alice.next_event(5)
                if got.body == "after":
                    break
                assert got.kind == "action"
                assert len(got.body.encode()) <= MAX_LINE_BYTES
                pieces.append(got.body)
        assert len(pieces) >= 4
        assert "".join(pieces) == text
        assert any("sent in parts" in r.getMessage() for r in caplog.records)


async def test_idle_after_open_close_churn_uses_no_cpu(tmp_path: Path) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root, users=["bob"])) as srv:
        lobby = root / LOBBY
        await ready(srv, lobby)
        alice = await srv.client("alice")
        await alice.sub(LOBBY)
        await sh(
            'for i in $(seq 1 30); do echo "n$i" > "$1"; exec 3>"$1"; exec 3>&-; : > "$2"; done',
            lobby / "in",
            root / "bob@test.example" / "in",
        )
        bodies = [(await alice.next_event(5)).body for _ in range(30)]
        assert bodies == [f"n{i}" for i in range(1, 31)]
        await asyncio.sleep(0.2)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        before = usage.ru_utime + usage.ru_stime
        await asyncio.sleep(2.5)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime - before
        assert used < 0.3, f"idle bridgehost used {used:.2f}s CPU in 2.5s"


async def test_dm_readers_are_bounded_and_out_still_written(tmp_path: Path) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root)) as srv:
        await ready(srv, root / LOBBY)
        (adapter,) = [a for a in srv.app.adapters if isinstance(a, FsAdapter)]
        adapter.max_dm_readers = 1
        bob, carol = await srv.client("bob"), await srv.client("carol")
        await bob.publish(FS_ID, "one")
        await wait_until(lambda: is_fifo(root / "bob@test.example" / "in"))
        await carol.publish(FS_ID, "two")
        await carol.publish(FS_ID, "three")
        carol_out = root / "carol@test.example" / "out"
        await wait_until(lambda: lines_of(carol_out) == ["<carol> two", "<carol> three"])
        assert not (root / "carol@test.example" / "in").exists()
        notices = lines_of(root / "out")
        assert len(notices) == 1
        assert "1 DM directories are open" in notices[0]


async def test_dms_sent_while_the_dm_session_is_down_are_caught_up(tmp_path: Path) -> None:
    root = tmp_path / "chat"
    async with running(tmp_path, fs_config(root)) as srv:
        await ready(srv, root / LOBBY)
        (adapter,) = [a for a in srv.app.adapters if isinstance(a, FsAdapter)]
        bob = await srv.client("bob")
        out = root / "bob@test.example" / "out"
        await bob.publish(FS_ID, "first")
        await wait_until(lambda: lines_of(out) == ["<bob> first"])
        session = adapter._dm
        assert session is not None
        await session.close()
        await bob.publish(FS_ID, "while down")
        await wait_until(lambda: adapter._dm is not None and adapter._dm is not session)
        await bob.publish(FS_ID, "after")
        await wait_until(
            lambda: lines_of(out) == ["<bob> first", "<bob> while down", "<bob> after"]
        )
        await asyncio.sleep(0.2)
        assert lines_of(out) == ["<bob> first", "<bob> while down", "<bob> after"]
