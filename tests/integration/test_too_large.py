"""`too-large` is decided against the larger of the echo and a lone `history` frame
(§10, finding 6): everything a server accepts can be fetched again with `catchup`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cbor2
import pytest

from bridgehost.scalar import errors
from bridgehost.scalar.client import Client
from bridgehost.scalar.wire import FrameDecoder, frame
from bridgehost.testing import Running, running

FAST = {"server": {"limits": {"rate": 100000, "burst": 100000}}}


async def largest_rid_catchup(srv: Running, topic: str, **cursor: int) -> dict[str, Any]:
    """A `catchup` with the largest rid a request may carry, answered as raw CBOR."""
    host, port = srv.url.removeprefix("tcp://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    decoder = FrameDecoder()
    try:
        for body in (
            {"t": "ident", "v": 1},
            {"t": "catchup", "topic": topic, "limit": 1000, "rid": 2**32 - 1, **cursor},
        ):
            writer.write(frame(cbor2.dumps(body)))
        frames: list[Any] = []
        while not any(f.get("t") == "history" for f in frames):
            frames += decoder.feed(await asyncio.wait_for(reader.read(65536), 5))
        [history] = [f for f in frames if f.get("t") == "history"]
        return history  # type: ignore[no-any-return]
    finally:
        writer.close()


async def accepted(client: Client, topic: str, size: int) -> bool:
    try:
        await client.publish(topic, "x" * size)
    except errors.TooLarge:
        return False
    return True


async def test_a_16192_byte_body_is_refused_because_history_could_not_return_it(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, FAST) as srv:
        alice = await srv.client("alice")
        topic = srv.channel("big")
        await alice.sub(topic)
        with pytest.raises(errors.TooLarge):
            await alice.publish(topic, "x" * 16192)
        history = await largest_rid_catchup(srv, topic)
        assert history["events"] == [] and history["more"] is False  # nothing half-kept


async def test_the_largest_accepted_event_comes_back_alone_in_any_catchup(tmp_path: Path) -> None:
    async with running(tmp_path, FAST) as srv:
        alice = await srv.client("alice")
        topic = srv.channel("edge")
        await alice.sub(topic)
        low, high = 15000, 16300  # accepted, refused (and still a request the client can send)
        assert await accepted(alice, topic, low)
        assert not await accepted(alice, topic, high)
        while high - low > 1:
            mid = (low + high) // 2
            if await accepted(alice, topic, mid):
                low = mid
            else:
                high = mid
        last = await alice.publish(topic, "y" * low)
        for cursor in ({}, {"after": last.seq - 1}, {"before": last.seq + 1}):
            history = await largest_rid_catchup(srv, topic, **cursor)
            assert history["events"][-1]["body"] == "y" * low, cursor
            assert history["events"][-1]["seq"] == last.seq
        with pytest.raises(errors.TooLarge):
            await alice.publish(topic, "y" * high)
