"""Reading lines from a named pipe that writers open and close at will.

The FIFO is opened O_RDONLY|O_NONBLOCK and watched with the loop's
`add_reader`, so nothing ever blocks the event loop. When the last writer
closes, the read end reports EOF for good (and would stay "readable"
forever, a 100 % CPU spin): the reader then opens a fresh read end *before*
closing the old one, so a writer arriving in between never waits, and a fresh
read end does not report EOF until a writer has come and gone. An EOF with no
data right after a reopen (what platforms without that rule would give) is
throttled, so even there the reader cannot spin.

Every few seconds the path is checked: if the pipe was removed or replaced
(`rm -r` of the directory), it is created again and reopened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from .files import ensure_dir, ensure_fifo
from .lines import MAX_LINE_BYTES, Line, LineSplitter

log = logging.getLogger(__name__)

READ_SIZE = 65536
CHECK_EVERY = 5.0
SPIN_GUARD = 0.05


def _open(path: Path) -> int:
    ensure_dir(path.parent)
    ensure_fifo(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a named pipe")
    return fd


def _same_file(path: Path, fd: int) -> bool:
    try:
        a, b = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class FifoReader:
    """Calls `handle` with each line written to the FIFO at `path`, in order.

    While `handle` runs nothing more is read, so a slow consumer fills the
    pipe and writers wait (the pipe's own back-pressure) instead of memory
    growing here.
    """

    def __init__(
        self,
        path: Path,
        handle: Callable[[Line], Awaitable[None]],
        *,
        limit: int = MAX_LINE_BYTES,
    ) -> None:
        self.path = path
        self.handle = handle
        self.limit = limit
        self.reopens = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        splitter = LineSplitter(self.limit)
        ready = asyncio.Event()
        fd = _open(self.path)
        loop.add_reader(fd, ready.set)
        opened, got = loop.time(), False
        try:
            while True:
                try:
                    async with asyncio.timeout(CHECK_EVERY):
                        await ready.wait()
                except TimeoutError:
                    if not _same_file(self.path, fd):
                        log.warning("%s was removed or replaced: creating it again", self.path)
                        fd = self._reopen(loop, fd, ready)
                        opened, got = loop.time(), False
                    continue
                ready.clear()
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    continue
                if data:
                    got = True
                    for line in splitter.feed(data):
                        await self.handle(line)
                    continue
                for line in splitter.end():
                    await self.handle(line)
                if not got and loop.time() - opened < SPIN_GUARD:
                    await asyncio.sleep(SPIN_GUARD)
                fd = self._reopen(loop, fd, ready)
                opened, got = loop.time(), False
        finally:
            loop.remove_reader(fd)
            os.close(fd)

    def _reopen(self, loop: asyncio.AbstractEventLoop, old: int, ready: asyncio.Event) -> int:
        """A fresh read end first, then close the old one: the pipe never lacks a reader."""
        fd = _open(self.path)
        loop.remove_reader(old)
        with contextlib.suppress(OSError):
            os.close(old)
        ready.clear()
        loop.add_reader(fd, ready.set)
        self.reopens += 1
        return fd
