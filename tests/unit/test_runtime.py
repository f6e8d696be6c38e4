"""The runtime toolkit against a FakeClock: bucket, backoff, supervise, histogram."""

from __future__ import annotations

import asyncio
import logging
import math
import random

import pytest

from bridgehost.runtime import Backoff, Fatal, Histogram, TaskSet, TokenBucket, supervise
from bridgehost.testing import FakeClock

# --- FakeClock ----------------------------------------------------------------------


async def test_fake_clock_sleepers_wake_in_deadline_order_when_advanced() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def nap(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(nap("long", 5))
        tg.create_task(nap("short", 1))
        await clock.sleeping(2)
        clock.advance(0.5)
        await asyncio.sleep(0)
        assert woke == []
        clock.advance(0.5)
        await clock.sleeping(1)
        await asyncio.sleep(0)
        assert woke == ["short"]
        clock.advance(10)
    assert woke == ["short", "long"]
    assert clock.slept == [5, 1]


def test_fake_clock_wall_time_moves_with_monotonic() -> None:
    clock = FakeClock(start=10.0, wall_ms=5_000)
    clock.advance(1.5)
    assert (clock.monotonic(), clock.now_ms()) == (11.5, 6_500)
    with pytest.raises(ValueError):
        clock.advance(-1)


# --- TokenBucket --------------------------------------------------------------------


def test_bucket_burst_then_refused_until_refilled() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_ms() == 500
    clock.advance(0.25)
    assert bucket.wait_ms() == 250
    clock.advance(0.25)
    assert bucket.wait_ms() == 0 and bucket.try_take() and not bucket.try_take()
    clock.advance(3600)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]


def test_bucket_take_goes_into_debt_and_give_back_refunds() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    bucket.take(4)
    assert bucket.wait_ms() == 3000
    bucket.give_back(2)
    assert bucket.wait_ms() == 1000
    bucket.give_back(100)
    assert bucket.tokens == 2  # never above the burst


def test_bucket_reservations_are_served_in_order() -> None:
    bucket = TokenBucket(rate=4, burst=1, clock=FakeClock())
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]


def test_bucket_rate_zero_never_refills_and_inf_never_limits() -> None:
    clock = FakeClock()
    closed = TokenBucket(rate=0, burst=1, clock=clock)
    assert closed.try_take()
    clock.advance(1e6)
    assert not closed.try_take() and closed.wait_ms() == 2**31
    assert closed.reserve() == math.inf
    open_ = TokenBucket(rate=math.inf, burst=1, clock=clock)
    assert all(open_.try_take() for _ in range(1000))
    assert open_.reserve() == 0.0 and open_.wait_ms() == 0


def test_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=-1, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0)


async def test_bucket_acquire_cancelled_gives_its_token_back() -> None:
    bucket = TokenBucket(rate=1, burst=1, clock=FakeClock())
    await bucket.acquire()
    waiting = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert bucket.reserve() == 1.0  # the cancelled reservation was returned


# --- Backoff ------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(1, 10, jitter=False, clock=FakeClock())
    assert [backoff.next() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    backoff.reset()
    assert backoff.next() == 1


def test_backoff_jitter_stays_within_half_to_full_delay() -> None:
    backoff = Backoff(2, 300, clock=FakeClock(), rng=random.Random(7))
    for step in range(12):
        delay = backoff.next()
        full = min(300, 2 * 2**step)
        assert full / 2 <= delay <= full


def test_backoff_short_lived_connection_keeps_growing() -> None:
    clock = FakeClock()
    backoff = Backoff(2, 300, jitter=False, healthy_after=30, clock=clock)
    assert backoff.next() == 2
    backoff.started()
    clock.advance(5)  # accepted, then dropped before it was healthy
    assert backoff.next() == 4


def test_backoff_first_retry_after_a_healthy_connection_is_within_a_second() -> None:
    clock = FakeClock()
    backoff = Backoff(
        2, 300, healthy_after=30, quick=1.0, quick_for=15, clock=clock, rng=random.Random(1)
    )
    for _ in range(5):
        backoff.next()  # a long outage before: delays had grown towards the cap
    backoff.started()
    clock.advance(31)  # up and healthy, then lost
    delays: list[float] = []
    while sum(delays) < 15:  # the server stays down: a retry about every second
        delays.append(backoff.next())
        clock.advance(delays[-1])
    assert 0.5 <= delays[0] <= 1.0
    assert all(d <= 1.0 for d in delays) and len(delays) >= 15
    later = [backoff.next() for _ in range(3)]  # then the usual growth from `initial`
    assert 1 <= later[0] <= 2 and 2 <= later[1] <= 4 and 4 <= later[2] <= 8


def test_backoff_started_again_while_up_keeps_the_first_time() -> None:
    clock = FakeClock()
    backoff = Backoff(2, 300, jitter=False, healthy_after=30, quick=1.0, clock=clock)
    backoff.next()
    backoff.started()
    for _ in range(4):  # every successful poll says "up" again
        clock.advance(10)
        backoff.started()
    assert backoff.healthy and backoff.next() == 1.0
    backoff.started()  # up again after the loss: a new spell, not healthy yet
    clock.advance(5)
    assert not backoff.healthy


def test_backoff_succeeded_counts_as_healthy_at_once() -> None:
    clock = FakeClock()
    backoff = Backoff(4, 300, jitter=False, healthy_after=30, quick=1.0, clock=clock)
    backoff.next()
    backoff.next()
    backoff.succeeded()
    assert backoff.healthy
    assert backoff.next() == 1.0


def test_backoff_quick_never_slower_than_initial() -> None:
    clock = FakeClock()
    backoff = Backoff(0.2, 1, jitter=False, healthy_after=1, quick=1.0, clock=clock)
    backoff.started()
    clock.advance(2)
    assert backoff.next() == 0.2


async def test_backoff_wait_sleeps_on_its_clock() -> None:
    clock = FakeClock()
    backoff = Backoff(3, 30, jitter=False, clock=clock)
    waiting = asyncio.create_task(backoff.wait())
    await clock.sleeping()
    clock.advance(3)
    assert await waiting == 3
    assert clock.slept == [3]


# --- supervise ----------------------------------------------------------------------


class AuthRefused(Fatal):
    pass


async def test_supervise_restarts_failures_with_backoff() -> None:
    clock = FakeClock()
    runs = 0
    errors: list[BaseException] = []

    async def run() -> None:
        nonlocal runs
        runs += 1
        raise ConnectionError(f"down {runs}")

    backoff = Backoff(1, 8, jitter=False, clock=clock)
    task = asyncio.create_task(supervise("part", run, backoff=backoff, on_error=errors.append))
    for _ in range(5):
        await clock.sleeping()
        clock.advance(clock.slept[-1])
    await clock.sleeping()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 6
    assert clock.slept == [1, 2, 4, 8, 8, 8]
    assert [str(e) for e in errors] == [f"down {i}" for i in range(1, 7)]


async def test_fatal_stops_a_supervised_task_and_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    clock = FakeClock()
    runs = 0
    fatal: list[Fatal] = []

    async def run() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ConnectionError("transient")
        raise AuthRefused("the server refused the password")

    backoff = Backoff(1, 8, jitter=False, clock=clock)
    task = asyncio.create_task(supervise("part", run, backoff=backoff, on_fatal=fatal.append))
    for _ in range(2):
        await clock.sleeping()
        clock.advance(10)
    async with asyncio.timeout(5):
        await task  # returns: not restarted
    assert runs == 3 and clock.sleepers == 0
    assert [str(f) for f in fatal] == ["the server refused the password"]
    stopped = [r for r in caplog.records if "not restarted" in r.getMessage()]
    assert len(stopped) == 1 and "refused the password" in stopped[0].getMessage()


async def test_fatal_inside_a_task_group_also_stops() -> None:
    fatal: list[Fatal] = []

    async def run() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(asyncio.sleep(3600))
            tg.create_task(_raise(AuthRefused("registration refused")))

    async with asyncio.timeout(5):
        await supervise("group", run, on_fatal=fatal.append)
    assert [str(f) for f in fatal] == ["registration refused"]


async def _raise(exc: BaseException) -> None:
    raise exc


async def test_a_run_that_was_healthy_restarts_within_a_second() -> None:
    clock = FakeClock()
    runs = 0
    up = asyncio.Event()

    async def run() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            await clock.sleep(60)  # healthy for a minute, then lost
        raise ConnectionError("lost")

    backoff = Backoff(2, 300, healthy_after=30, clock=clock)
    task = asyncio.create_task(supervise("part", run, backoff=backoff, on_error=lambda _: up.set()))
    await clock.sleeping()
    clock.advance(60)
    await up.wait()
    await clock.sleeping()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.slept[0] == 60 and clock.slept[1] <= 1.0


async def test_callback_errors_do_not_stop_the_supervisor() -> None:
    clock = FakeClock()
    runs = 0

    async def run() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("bad")

    def broken(_: BaseException) -> None:
        raise RuntimeError("callback bug")

    backoff = Backoff(1, 1, jitter=False, clock=clock)
    task = asyncio.create_task(supervise("part", run, backoff=backoff, on_error=broken))
    await clock.sleeping()
    clock.advance(1)
    await clock.sleeping()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 2


# --- TaskSet ------------------------------------------------------------------------


async def test_taskset_logs_failures_and_cancels_the_rest_on_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = TaskSet("test")
    forever = tasks.spawn(asyncio.sleep(3600), name="forever")
    tasks.spawn(_raise(ValueError("boom")), name="boom")
    await asyncio.sleep(0.01)
    assert tasks.failures == 1 and "task boom failed" in caplog.text
    assert len(tasks) == 1
    await tasks.close()
    assert forever.cancelled() and len(tasks) == 0


# --- Histogram ----------------------------------------------------------------------


def test_histogram_counts_cumulatively_like_prometheus() -> None:
    h = Histogram([0.1, 1.0])
    for value in (0.05, 0.1, 0.5, 3.0):
        h.observe(value)
    snap = h.snapshot()
    assert snap.bounds == (0.1, 1.0)
    assert snap.counts == (2, 3, 4)
    assert (snap.count, round(snap.sum, 6)) == (4, 3.65)
    assert snap.as_dict()["buckets"] == {"0.1": 2, "1.0": 3, "+Inf": 4}


def test_histogram_default_buckets_and_bad_bounds() -> None:
    h = Histogram()
    h.observe(0.002)
    assert h.snapshot().counts[0] == 0 and h.snapshot().counts[1] == 1
    with pytest.raises(ValueError):
        Histogram([1.0, 0.5])
    with pytest.raises(ValueError):
        Histogram([])
