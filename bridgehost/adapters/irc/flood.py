"""Outgoing pacing for one IRC connection: a token bucket.

Servers count every line a client sends and kill ("Excess Flood") or stall
(fakelag) one that sends too fast. The bucket lets `burst` lines out at once
and then one per `interval` seconds; the defaults (4, 0.7 s) are what
Libera tolerates. Tokens are reserved in call order, so lines from several
links sharing a connection go out fairly and each link keeps its own order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, burst: int, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = max(1, burst)
        self.interval = interval
        self.clock = clock
        self.tokens = float(self.burst)
        self.stamp = clock()

    def reserve(self) -> float:
        """Take one token now; return how long to wait before using it (0 = at once)."""
        if self.interval <= 0:
            return 0.0
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) / self.interval)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens * self.interval

    def spend(self, lines: int) -> None:
        """Account for lines that went out unpaced (registration, PONG)."""
        if self.interval > 0:
            self.reserve()
            self.tokens -= lines - 1

    async def take(self) -> None:
        """Wait for a token (always yields to the loop, even with pacing off)."""
        await asyncio.sleep(self.reserve())
