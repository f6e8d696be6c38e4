"""Per-bot pacing of what a bot publishes: a token bucket that makes callers
wait in order instead of failing (the server exempts reserved IDs from its
own limit, so a bot framework must limit itself)."""

from __future__ import annotations

from ..runtime import SYSTEM_CLOCK, Clock, TokenBucket


def pacer(rate: float, burst: int, clock: Clock = SYSTEM_CLOCK) -> TokenBucket:
    """`burst` messages at once, then `rate` per second (`acquire()` waits in order)."""
    if rate <= 0 or burst < 1:
        raise ValueError("rate must be > 0 and burst >= 1")
    return TokenBucket(rate, burst, clock)
