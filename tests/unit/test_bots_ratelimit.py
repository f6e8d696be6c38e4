"""The bot pacer: a burst goes at once, then one message per 1/rate seconds, in order."""

import pytest

from bridgehost.bots import ratelimit
from bridgehost.testing import FakeClock


def test_burst_then_paced_waits_grow_in_order() -> None:
    clock = FakeClock()
    pacer = ratelimit.pacer(rate=2.0, burst=3, clock=clock)
    assert [pacer.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert [pacer.reserve() for _ in range(3)] == [0.5, 1.0, 1.5]


def test_tokens_refill_with_time_up_to_burst() -> None:
    clock = FakeClock()
    pacer = ratelimit.pacer(rate=1.0, burst=2, clock=clock)
    pacer.reserve()
    pacer.reserve()
    clock.advance(100)
    assert [pacer.reserve() for _ in range(3)] == [0.0, 0.0, 1.0]


def test_refund_returns_a_cancelled_reservation() -> None:
    clock = FakeClock()
    pacer = ratelimit.pacer(rate=1.0, burst=1, clock=clock)
    pacer.reserve()
    assert pacer.reserve() == 1.0
    pacer.give_back()
    assert pacer.reserve() == 1.0


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ratelimit.pacer(rate=0, burst=1)
    with pytest.raises(ValueError):
        ratelimit.pacer(rate=1, burst=0)
