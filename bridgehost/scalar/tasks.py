"""Task ownership: every background task belongs to a `TaskSet` that logs its
failure and cancels it on shutdown. No fire-and-forget `create_task`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """Owns tasks that may come and go (connections, handlers, relays)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failures += 1
            log.error("%s: task %s failed", self.name, task.get_name(), exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the current tasks to end by themselves."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        """Cancel every task and wait until all are gone."""
        while self._tasks:
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    initial: float = 1.0,
    cap: float = 60.0,
    healthy_after: float = 30.0,
    on_error: Callable[[BaseException], None] | None = None,
) -> None:
    """Run `run()` forever: log each failure, restart after exponential backoff
    with full jitter (capped); a run that lasted `healthy_after` s resets it."""
    delay = initial
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await run()
            log.warning("%s ended; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("%s failed: %s", name, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            if on_error is not None:
                with contextlib.suppress(Exception):
                    on_error(exc)
        if loop.time() - started >= healthy_after:
            delay = initial
        await asyncio.sleep(random.uniform(delay / 2, delay))
        delay = min(cap, delay * 2)
