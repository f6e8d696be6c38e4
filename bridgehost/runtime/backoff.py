"""When to retry: exponential backoff with jitter, quick after a healthy spell.

A connection that was healthy and then dropped is usually a restart or a
network blip that is over in seconds, so for `quick_for` seconds after such
a loss retries come every `quick` seconds (jittered: the first within half a
second, so a server that restarts in 5 s is reached again well within 2 s of
accepting connections). After that, and after anything that never became healthy (a
server that refuses us, one that accepts and kills us at once), delays grow
from `initial` by doubling up to `cap`. Jitter draws each delay from
[d/2, d] so that many clients of one server do not retry in step.
"""

from __future__ import annotations

import random

from .clock import SYSTEM_CLOCK, Timer


class Backoff:
    def __init__(
        self,
        initial: float,
        cap: float,
        *,
        jitter: bool = True,
        healthy_after: float = 30.0,
        quick: float = 0.5,
        quick_for: float = 15.0,
        clock: Timer = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0:
            raise ValueError("backoff needs initial > 0")
        self.initial, self.cap, self.jitter = initial, max(cap, initial), jitter
        self.healthy_after, self.quick, self.quick_for = healthy_after, quick, quick_for
        self.clock = clock
        self._random = rng or random.Random()
        self.failures = 0
        """Failures since the last reset that count towards the exponential delay."""
        self._up_since: float | None = None
        self._quick_until = float("-inf")

    def started(self) -> None:
        """It is up (connected, registered, running): healthy once it lasts
        `healthy_after`. Calling it again while up (every successful poll,
        say) changes nothing; `next()` marks it down."""
        if self._up_since is None:
            self._up_since = self.clock.monotonic()

    def succeeded(self) -> None:
        """It proved healthy now, however short it has been up."""
        self._up_since = self.clock.monotonic() - self.healthy_after

    def reset(self) -> None:
        """Forget past failures: the next delay is `initial` again."""
        self.failures = 0
        self._up_since = None
        self._quick_until = float("-inf")

    @property
    def healthy(self) -> bool:
        """Whether what `started()` has been up for `healthy_after` seconds."""
        up = self._up_since
        return up is not None and self.clock.monotonic() - up >= self.healthy_after

    def next(self) -> float:
        """It failed (or was lost): seconds to wait before the next try."""
        now = self.clock.monotonic()
        if self.healthy:
            self.failures = 0
            self._quick_until = now + self.quick_for
        self._up_since = None
        delay = min(self.cap, self.initial * 2.0**self.failures)
        if now < self._quick_until:
            delay = min(delay, self.quick)
        else:
            self.failures += 1
        if self.jitter:
            delay = self._random.uniform(delay / 2, delay)
        return delay

    async def wait(self) -> float:
        """Sleep `next()` seconds on the clock; returns how long that was."""
        delay = self.next()
        await self.clock.sleep(delay)
        return delay
