"""runtime.wait_for keeps a cancellation that races with completion (3.11's loses it)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bridgehost.runtime import wait_for


async def _waiter(ev: asyncio.Event, rounds: list[int]) -> None:
    """The shape that hung: a loop that waits for a signal or a timeout, forever."""
    while True:
        with contextlib.suppress(TimeoutError):
            await wait_for(ev.wait(), 30)
        ev.clear()
        rounds.append(1)


async def test_a_cancel_in_the_same_turn_as_completion_is_not_lost() -> None:
    ev, rounds = asyncio.Event(), []
    task = asyncio.create_task(_waiter(ev, rounds))
    await asyncio.sleep(0.01)
    ev.set()
    task.cancel()  # the same loop turn as the event completing the inner wait
    done, _ = await asyncio.wait([task], timeout=2)
    assert task in done, "the cancellation was swallowed and the loop waits again"
    assert task.cancelled()


async def test_result_and_timeout() -> None:
    async def later(value: int) -> int:
        await asyncio.sleep(0.01)
        return value

    assert await wait_for(later(3), 1) == 3
    assert await wait_for(later(4), None) == 4
    with pytest.raises(TimeoutError):
        await wait_for(asyncio.sleep(1), 0.01)
