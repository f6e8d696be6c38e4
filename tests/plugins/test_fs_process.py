"""`process: true` with the fs adapter (no remote server needed): the adapter
in a child, killed and replaced by its spare, and its state moving between
the server's store and the child's own file when the mode changes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from bridgehost.config import load_config
from bridgehost.testing import Running, running, wait_until

from .helpers import config_file, supervisor

CHANNEL = "#fs@test.example"
POSITION = "position:fs:files/fs"


def fs_config(tmp_path: Path, *, process: bool, **extra: Any) -> Path:
    account = {"type": "fs", "root": str(tmp_path / "root"), "process": process, **extra}
    bridges = [{"channel": CHANNEL, "links": [{"account": "files", "target": "fs"}]}]
    return config_file(tmp_path, {"files": account}, bridges)


def out_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "root" / "fs" / "out"
    text = path.read_text() if path.exists() else ""
    return [line.split("> ", 1)[1] for line in text.splitlines() if "> " in line]


async def say(tmp_path: Path, text: str) -> None:
    fifo = tmp_path / "root" / "fs" / "in"
    await wait_until(fifo.exists, 20, "the fs adapter's FIFO")
    deadline = time.monotonic() + 10
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:  # no reader yet
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    os.write(fd, text.encode() + b"\n")
    os.close(fd)


async def up(srv: Running) -> None:
    await wait_until(
        lambda: srv.app.link_statuses() and srv.app.link_statuses()[0].state == "up",
        20,
        f"the link up: {[(s.state, s.last_error) for s in srv.app.link_statuses()]}",
    )


async def test_a_killed_adapter_process_is_replaced_by_its_spare_and_resumes(
    tmp_path: Path,
) -> None:
    config = load_config(fs_config(tmp_path, process=True))
    async with running(tmp_path, config=config) as srv:
        await up(srv)
        alice = await srv.client("alice")
        await alice.sub(CHANNEL)
        await say(tmp_path, "from the shell")
        event = await alice.next_event(10)
        assert (event.body, event.origin) == ("from the shell", "fs:files/fs")
        sup = supervisor(srv, "files")
        await wait_until(lambda: sup._spare is not None, 10, "a spare waiting")
        spare = sup._spare[0].pid if sup._spare else None
        first = sup.state.pid
        assert first is not None and spare is not None and spare != first
        for i in range(50):
            await alice.publish(CHANNEL, f"a{i}")
        os.kill(first, signal.SIGKILL)
        killed = time.monotonic()
        hub = srv.app.server
        assert hub is not None
        for i in range(50, 100):
            await alice.publish(CHANNEL, f"a{i}")
        await wait_until(
            lambda: sup.state.pid == spare and hub.hub.is_online(sup.spec.ident), 5, "spare in"
        )
        assert time.monotonic() - killed < 2.0
        await wait_until(lambda: len(out_lines(tmp_path)) >= 101, 20, "all 100 in the log")
        await asyncio.sleep(0.3)
        assert out_lines(tmp_path) == ["from the shell", *(f"a{i}" for i in range(100))]
        await say(tmp_path, "after the kill")
        event = await alice.next_event(10)
        assert event.body == "after the kill"
        await wait_until(lambda: sup._spare is not None, 10, "a new spare")
        assert sup.state.restarts == 1


def kv_file(tmp_path: Path) -> dict[str, bytes]:
    path = tmp_path / "data" / "plugins" / "files" / "state.sqlite3"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        return {k: bytes(v) for k, v in db.execute("SELECT key, value FROM kv")}


async def main_store(srv: Running) -> dict[str, bytes]:
    store = srv.app.store
    assert store is not None
    return dict(await store.kv_items("adapter:files"))


async def test_state_moves_with_the_mode_and_nothing_is_sent_twice(tmp_path: Path) -> None:
    async def run_once(process: bool, send: list[str]) -> tuple[dict[str, bytes], int]:
        extra = {"spare": False} if process else {}
        config = load_config(fs_config(tmp_path, process=process, **extra))
        async with running(tmp_path, config=config) as srv:
            await up(srv)
            alice = await srv.client("alice")
            await alice.sub(CHANNEL)
            for text in send:
                await alice.publish(CHANNEL, text)
            await wait_until(
                lambda: out_lines(tmp_path)[-1:] == send[-1:], 20, f"{send[-1]} in the log"
            )
            await asyncio.sleep(0.2)  # the position is saved right after the send
            stored = await main_store(srv)
            return stored, int(stored.get(POSITION, b"0"))

    stored, position = await run_once(False, ["one", "two"])
    assert position == 2 and kv_file(tmp_path) == {}
    # Published while bridgehost is down: the next start sends them, whatever its mode.
    stored, _ = await run_once(True, ["three"])
    assert stored == {}, "the state moved to the child's file"
    assert int(kv_file(tmp_path)[POSITION]) == 3
    stored, position = await run_once(False, ["four"])
    assert position == 4 and kv_file(tmp_path) == {}, "and back"
    assert out_lines(tmp_path) == ["one", "two", "three", "four"]
