"""`wait_for` that never loses a cancellation.

Python 3.11's `asyncio.wait_for` swallows a cancellation that arrives in the
same loop turn as the awaited thing completing (gh-86296, fixed in 3.12 by
building it on `asyncio.timeout`). A loop around it then waits again while
its task is "cancelling", and the TaskGroup that cancelled it waits forever:
that hung an adapter's shutdown under load. 3.12 builds it the same way
(without its special case for a timeout <= 0, which here still lets `aw` run
until its first pause).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """Await `aw`, raising TimeoutError after `timeout` seconds (None: no limit)."""
    async with asyncio.timeout(timeout):
        return await aw
