"""The fs adapter's FIFO reader on real named pipes with real shell writers:
writers open and close at will, nothing is lost, nothing blocks or spins."""

import asyncio
import contextlib
import os
import resource
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridgehost.adapters.fs import fifo
from bridgehost.adapters.fs.fifo import FifoReader
from bridgehost.adapters.fs.lines import Line


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def sh(script: str, *args: str, timeout: float = 20) -> None:
    proc = await asyncio.create_subprocess_exec("sh", "-c", script, "sh", *args)
    assert await asyncio.wait_for(proc.wait(), timeout) == 0


async def wait_until(predicate: object, timeout: float = 5) -> None:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Collector:
    def __init__(self) -> None:
        self.lines: list[Line] = []

    async def __call__(self, line: Line) -> None:
        self.lines.append(line)

    def texts(self) -> list[str]:
        return [line.data.decode() for line in self.lines]


@contextlib.asynccontextmanager
async def reading(path: Path) -> AsyncIterator[tuple[FifoReader, Collector]]:
    got = Collector()
    reader = FifoReader(path, got)
    task = asyncio.create_task(reader.run())
    try:
        await wait_until(lambda: path.exists() and stat.S_ISFIFO(os.stat(path).st_mode))
        yield reader, got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_repeated_open_write_close_loses_nothing_then_idles(tmp_path: Path) -> None:
    path = tmp_path / "topic" / "in"
    async with reading(path) as (reader, got):
        assert stat.S_ISFIFO(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        await sh(
            'for i in $(seq 1 60); do echo "line $i" > "$1"; : > "$1"; done;'
            ' for i in $(seq 61 80); do echo "line $i" > "$1"; sleep 0.02; done;'
            ' printf "no newline" > "$1"; exec 3>"$1"; exec 3>&-',
            str(path),
        )
        expected = [f"line {i}" for i in range(1, 81)] + ["no newline"]
        await wait_until(lambda: got.texts() == expected)
        assert reader.reopens >= 15  # each writer that closed alone was followed by a reopen

        before = cpu_seconds()
        await asyncio.sleep(2)
        used = cpu_seconds() - before
        assert used < 0.2, f"idle reader used {used:.2f}s CPU in 2s"
        assert got.texts() == expected


async def test_writer_holding_the_pipe_open_neither_spins_nor_delays(tmp_path: Path) -> None:
    path = tmp_path / "in"
    async with reading(path) as (_, got):
        before = cpu_seconds()
        holder = asyncio.create_task(
            sh('exec 3>"$1"; echo first >&3; sleep 1.5; echo second >&3', str(path))
        )
        await wait_until(lambda: got.texts() == ["first"], timeout=1)
        await holder
        await wait_until(lambda: got.texts() == ["first", "second"])
        used = cpu_seconds() - before
        assert used < 0.3, f"reader used {used:.2f}s CPU while a writer held the pipe"


async def test_event_loop_stays_responsive_under_open_close_churn(tmp_path: Path) -> None:
    path = tmp_path / "in"
    async with reading(path) as (_, got):
        loop = asyncio.get_running_loop()
        worst = 0.0
        done = asyncio.Event()

        async def tick() -> None:
            nonlocal worst
            while not done.is_set():
                start = loop.time()
                await asyncio.sleep(0.01)
                worst = max(worst, loop.time() - start)

        ticker = asyncio.create_task(tick())
        await sh('for i in $(seq 1 200); do echo "$i" > "$1"; done', str(path))
        await wait_until(lambda: len(got.lines) == 200)
        done.set()
        await ticker
        assert got.texts() == [str(i) for i in range(1, 201)]
        assert worst < 0.25, f"event loop stalled for {worst:.2f}s"


async def test_fifo_removed_or_replaced_is_created_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fifo, "CHECK_EVERY", 0.1)
    path = tmp_path / "dir" / "in"
    async with reading(path) as (reader, got):
        await sh('echo before > "$1"', str(path))
        await wait_until(lambda: got.texts() == ["before"] and reader.reopens == 1)
        os.unlink(path)
        os.rmdir(path.parent)
        await wait_until(lambda: path.exists() and stat.S_ISFIFO(os.stat(path).st_mode))
        assert reader.reopens == 2
        await sh('echo after > "$1"', str(path))
        await wait_until(lambda: got.texts() == ["before", "after"])


async def test_stray_regular_file_is_replaced_by_a_fifo(tmp_path: Path) -> None:
    path = tmp_path / "in"
    path.write_text("written while the pipe was missing\n")
    async with reading(path) as (_, got):
        assert stat.S_ISFIFO(os.stat(path).st_mode)
        await sh('echo hi > "$1"', str(path))
        await wait_until(lambda: got.texts() == ["hi"])
