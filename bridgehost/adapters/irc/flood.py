"""Outgoing pacing for one IRC connection: the runtime's token bucket.

Servers count every line a client sends and kill ("Excess Flood") or stall
(fakelag) one that sends too fast. The bucket lets `burst` lines out at once
and then one per `interval` seconds; the defaults (4, 0.7 s) are what
Libera tolerates. Tokens are reserved in call order, so lines from several
links sharing a connection go out fairly and each link keeps its own order.
Lines that go out unpaced (registration, PONG) are `take`n all the same.
"""

from __future__ import annotations

import math

from ...runtime import SYSTEM_CLOCK, Clock, TokenBucket


def flood_bucket(burst: int, interval: float, clock: Clock = SYSTEM_CLOCK) -> TokenBucket:
    """`burst` lines at once, then one per `interval` s; an interval of 0 paces nothing."""
    rate = 1 / interval if interval > 0 else math.inf
    return TokenBucket(rate, max(1, burst), clock)
