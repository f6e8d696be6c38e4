"""One token bucket for everything that paces: Scalar requests per session,
lines to an IRC server, what a bot publishes.

`rate` tokens per second refill up to `burst`. Callers either ask first
(`wait_ms`, `try_take`) and are refused, or `reserve` a token on credit and
wait the time it says; reservations are made in call order, so callers that
wait are served in order without a lock.
"""

from __future__ import annotations

import asyncio
import math

from .clock import SYSTEM_CLOCK, Clock

NEVER_MS = 2**31
"""`wait_ms` of a bucket that never refills (rate 0)."""


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Clock = SYSTEM_CLOCK) -> None:
        """`rate` = tokens per second (0: never refills; `math.inf`: no limit)."""
        if rate < 0 or burst < 1:
            raise ValueError("a token bucket needs rate >= 0 and burst >= 1")
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.stamp = clock.monotonic()

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.rate)

    def _refill(self) -> None:
        now = self.clock.monotonic()
        if self.unlimited:
            self.tokens = float(self.burst)
        elif now > self.stamp:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_ms(self) -> int:
        """0 when a token is available now, else ms until one is."""
        self._refill()
        if self.tokens >= 1:
            return 0
        if self.rate <= 0:
            return NEVER_MS
        return max(1, math.ceil((1 - self.tokens) / self.rate * 1000))

    def take(self, count: int = 1) -> None:
        """Spend `count` tokens now, into debt if need be (e.g. lines that
        already went out unpaced, which the other side counts all the same)."""
        self._refill()
        if not self.unlimited:
            self.tokens -= count

    def try_take(self) -> bool:
        """Take a token if one is available now."""
        if self.wait_ms():
            return False
        self.take()
        return True

    def give_back(self, count: int = 1) -> None:
        """Return tokens taken for something that did not happen."""
        self.tokens = min(float(self.burst), self.tokens + count)

    def reserve(self) -> float:
        """Take one token now, on credit: seconds to wait before using it (0 = at once)."""
        self.take()
        if self.tokens >= 0 or self.unlimited:
            return 0.0
        if self.rate <= 0:
            return math.inf
        return -self.tokens / self.rate

    async def acquire(self) -> None:
        """Wait for a token in call order (always yields to the loop once)."""
        delay = self.reserve()
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.give_back()
            raise
