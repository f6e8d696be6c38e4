"""Time, passed in: a `Clock` to read it, a `Timer` that can also wait.

Everything that paces, retries or measures takes one of these instead of
calling `time` or `asyncio.sleep` itself, so tests swap in a `FakeClock`
and step through hours of backoff in no time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in ms since the epoch (for stored timestamps)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for intervals)."""


class Timer(Clock, Protocol):
    """A clock that can also wait on itself."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that moves only when told (`advance`); `sleep` waits for that.

    Sleepers wake in deadline order once `advance` passes their deadline; a
    test lets the code under test run up to its next sleep with
    `await clock.sleeping()` and then moves time on.
    """

    def __init__(self, start: float = 1000.0, wall_ms: int = 1_700_000_000_000) -> None:
        self._now = start
        self._wall_offset_ms = wall_ms - int(start * 1000)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.slept: list[float] = []
        """Every duration passed to `sleep`, in call order."""

    def now_ms(self) -> int:
        return self._wall_offset_ms + int(self._now * 1000)

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time on by `seconds` and wake every sleeper whose deadline passed."""
        if seconds < 0:
            raise ValueError("time does not go back")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (cancelled ones not counted)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def sleeping(self, count: int = 1, *, max_yields: int = 1000) -> None:
        """Let other tasks run until `count` of them sleep on this clock."""
        for _ in range(max_yields):
            if self.sleepers >= count:
                return
            await asyncio.sleep(0)
        raise TimeoutError(f"{self.sleepers} sleeper(s) after {max_yields} loop turns")
