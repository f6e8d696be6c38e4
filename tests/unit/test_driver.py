"""The transport-neutral session driver with a fake sink: output counted as it is
queued, reading paused above half the bound, slow consumers cut off, input decoded in
slices (no sockets)."""

import asyncio
from typing import Any

import cbor2
import pytest

from bridgehost.scalar import driver as driver_module
from bridgehost.scalar.driver import RAW_HIGH, SessionDriver
from bridgehost.scalar.session import Shared
from bridgehost.scalar.settings import Limits, ServerSettings
from bridgehost.scalar.wire import encode_frame
from bridgehost.testing.sessions import session_world

BOUND = 64 * 1024


class FakeSink:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.unsent = 0
        """What the fake transport says it still buffers."""
        self.reading = True
        self.closed = self.aborted = False

    def write(self, frames: list[bytes]) -> None:
        """A transport that sends nothing by itself: what it takes, it buffers."""
        self.frames += [cbor2.loads(f[2:]) for f in frames]
        self.unsent += sum(len(f) for f in frames)

    def buffered(self) -> int:
        return self.unsent

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class FakeHost:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.slow_consumers = 0
        self.forgotten: list[SessionDriver] = []

    def mark_dirty(self, driver: SessionDriver) -> None:
        asyncio.get_running_loop().call_soon(driver.flush)

    def forget(self, driver: SessionDriver) -> None:
        self.forgotten.append(driver)


def _settings() -> ServerSettings:
    return ServerSettings(
        domain="test.example", guests=True, limits=Limits(send_buffer=BOUND, rate=1000, burst=1000)
    )


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_replies_count_and_reading_stops_above_half_the_bound() -> None:
    async with session_world(_settings()) as world:
        sink, host = FakeSink(), FakeHost(world.shared)
        drv = SessionDriver(host, sink, "192.0.2.1", "test")
        task = asyncio.ensure_future(drv.run())
        drv.feed(encode_frame({"t": "ident", "v": 1, "rid": 1}))
        await _turns()
        assert sink.frames[0]["t"] == "ident"
        sink.unsent = BOUND // 2 + 1  # the peer stopped reading what we sent
        drv.feed(b"".join(encode_frame({"t": "ping", "rid": 10 + i}) for i in range(20)))
        await _turns()
        handled = len(sink.frames)
        drv.push(encode_frame({"t": "event-ish", "pad": "x" * 100}))  # anything queued
        await _turns(10)
        assert not sink.reading and len(sink.frames) <= handled + 2  # no more requests
        sink.unsent = 0
        drv.drained()
        await _turns(60)
        pongs = [f for f in sink.frames if f["t"] == "pong"]
        assert [p["rid"] for p in pongs] == list(range(10, 30))  # all, in order, once read
        assert sink.reading
        drv.lost()
        await asyncio.wait_for(task, 5)
        assert host.forgotten == [drv]


async def test_past_the_bound_the_peer_is_a_slow_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_module, "SLOW_CONSUMER_GRACE", 0.01)
    async with session_world(_settings()) as world:
        sink, host = FakeSink(), FakeHost(world.shared)
        drv = SessionDriver(host, sink, "192.0.2.1", "test")
        task = asyncio.ensure_future(drv.run())
        sink.unsent = BOUND - 100  # the transport holds almost the bound already,
        drv.flush()  # as the last flush saw
        drv.push(encode_frame({"t": "x", "pad": "y" * 200}))  # counted as it is queued
        assert drv.slow and host.slow_consumers == 1
        assert sink.frames[-1] == {"t": "bye", "reason": "slow-consumer"} and sink.closed
        drv.push(encode_frame({"t": "after"}))
        assert sink.frames[-1]["t"] == "bye"  # nothing after the bye
        await asyncio.wait_for(task, 5)
        await asyncio.sleep(0.05)
        assert sink.aborted  # the grace is over
        assert drv.session.closing


async def test_input_is_bounded_and_decoded_in_slices() -> None:
    async with session_world(_settings()) as world:
        sink, host = FakeSink(), FakeHost(world.shared)
        drv = SessionDriver(host, sink, "192.0.2.1", "test")
        ping = encode_frame({"t": "ping"})
        drv.feed(encode_frame({"t": "ident", "v": 1}) + ping * (RAW_HIGH // len(ping) + 100))
        assert not sink.reading  # more than RAW_HIGH waiting: stop reading
        assert len(drv._items) == 0  # nothing decoded yet
        task = asyncio.ensure_future(drv.run())
        await _turns(3)
        assert 0 < len(drv._items) < 2500  # one slice at a time
        for _ in range(20000):
            if sink.reading:
                break
            sink.unsent = 0  # the peer reads its pongs
            drv.drained()
            await asyncio.sleep(0)
        assert sink.reading  # drained below half: reading again
        drv.lost()
        await asyncio.wait_for(task, 5)


async def test_message_transports_get_bad_frame_for_a_bad_length() -> None:
    async with session_world(_settings()) as world:
        sink, host = FakeSink(), FakeHost(world.shared)
        drv = SessionDriver(host, sink, "192.0.2.1", "websocket")
        task = asyncio.ensure_future(drv.run())
        drv.feed_body(cbor2.dumps({"t": "ping", "rid": 1}))
        drv.feed_body(b"x" * 16383)
        drv.feed_body(cbor2.dumps({"t": "ping", "rid": 2}))
        await asyncio.wait_for(task, 5)
        assert [f["t"] for f in sink.frames] == ["pong", "error", "bye"]
        assert sink.frames[1]["code"] == "bad-frame" and sink.closed
