"""One server per data dir (§10): a second `bridgehost run` is refused and names the
process that holds the dir; administrative commands and readers open it beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridgehost.scalar.client import connect
from bridgehost.scalar.store import DataDirInUse, Store

from .proc import BridgehostProcess


@pytest.fixture
def first(tmp_path: Path) -> Iterator[BridgehostProcess]:
    (tmp_path / "first").mkdir()
    p = BridgehostProcess(tmp_path / "first")
    yield p
    p.stop()


def second_on(first: BridgehostProcess, tmp_path: Path) -> BridgehostProcess:
    """Another server (its own port and config) on the first one's data dir."""
    (tmp_path / "second").mkdir()
    return BridgehostProcess(tmp_path / "second", {"server": {"data_dir": str(first.dir / "data")}})


def run(proc: BridgehostProcess, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridgehost", "run", "-c", str(proc.config_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_a_second_server_on_the_same_data_dir_exits_naming_the_holder(
    first: BridgehostProcess, tmp_path: Path
) -> None:
    first.start()
    assert first.proc is not None
    started = time.monotonic()
    result = run(second_on(first, tmp_path), timeout=30)
    assert result.returncode != 0
    assert time.monotonic() - started < 15
    assert f"in use by process {first.proc.pid}" in result.stderr, result.stderr
    client = await connect(first.url)  # the first one never noticed
    try:
        topic = "#still@test.example"
        await client.sub(topic)
        assert (await client.publish(topic, "here")).seq == 1
    finally:
        await client.close()


async def test_the_lock_of_a_killed_server_does_not_keep_the_next_one_out(
    first: BridgehostProcess, tmp_path: Path
) -> None:
    first.start()
    first.kill9()
    assert (first.dir / "data" / "lock").exists()
    second = second_on(first, tmp_path)
    second.start()
    try:
        client = await connect(second.url)
        await client.close()
    finally:
        second.stop()


async def test_only_the_owner_takes_the_lock(tmp_path: Path) -> None:
    owner = await Store.open(tmp_path, owner=True)
    try:
        with pytest.raises(DataDirInUse) as refused:
            await Store.open(tmp_path, owner=True)
        assert refused.value.pid == os.getpid()
        admin = await Store.open(tmp_path)  # what `user add` and `token create` do
        await admin.set_credential("carol@x", "password", "hash", 0)
        await admin.close()
        assert await owner.credential("carol@x") == ("password", "hash")
    finally:
        await owner.close()
    again = await Store.open(tmp_path, owner=True)  # released by close()
    await again.close()
