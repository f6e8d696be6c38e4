"""Hostile input against a real `bridgehost run` process (§10 "Input that a server never
expands"): one frame never holds the server up, and nothing hostile reaches a traceback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest

from bridgehost.scalar.client import connect
from bridgehost.scalar.wire import FrameDecoder, frame

from .proc import BridgehostProcess


@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgehostProcess]:
    p = BridgehostProcess(tmp_path_factory.mktemp("input"))
    p.start()
    yield p
    p.stop()


class Raw:
    """A connection that sends exactly the bytes it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.frames: list[Any] = []

    @classmethod
    async def open(cls, proc: BridgehostProcess) -> Raw:
        return cls(*await asyncio.open_connection("127.0.0.1", proc.port))

    async def send(self, body: bytes) -> None:
        self.writer.write(frame(body))
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> Any:
        while not self.frames:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            assert data, "connection closed"
            self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def sharing_bomb(levels: int = 15, width: int = 4) -> bytes:
    """A {"t": "ping"} whose `x` nests CBOR shared values width**levels paths deep."""

    def level(k: int) -> bytes:
        if k == 0:
            return b"\xd8\x1c\x80"
        ref = b"\xd8\x1d" + cbor2.dumps(levels - k)
        return b"\xd8\x1c" + bytes([0x80 | width]) + level(k - 1) + ref * (width - 1)

    return b"\xa3\x61t\x64ping\x63rid\x07\x61x" + level(levels - 1)


async def test_a_value_sharing_bomb_before_ident_holds_up_nobody(proc: BridgehostProcess) -> None:
    bystander = await connect(proc.url)
    attacker = await Raw.open(proc)
    try:
        for _ in range(20):
            await attacker.send(sharing_bomb())
        started = time.monotonic()
        await bystander.ping()  # answered while (or after) the bombs are refused
        assert time.monotonic() - started < 5.0  # (the old server never answered)
        for _ in range(20):
            reply = await attacker.recv()
            assert reply.get("t") == "error" and reply["code"] == "bad-message", reply
            assert reply["rid"] == 7
        await attacker.send(cbor2.dumps({"t": "ping", "rid": 8}))
        assert await attacker.recv() == {"t": "pong", "rid": 8}  # the connection stays usable
    finally:
        await attacker.close()
        await bystander.close()


@pytest.mark.parametrize(
    ("request_map", "why"),
    [
        ({"t": "catchup", "topic": "#c@test.example", "after": 2**64 - 1}, "64 bits"),
        ({"t": "catchup", "topic": "#c@test.example", "before": 2**63}, "64 bits"),
        ({"t": "catchup", "topic": "#c@test.example", "since": -(2**63) - 1}, "64 bits"),
        ({"t": "ping", "time": cbor2.CBORTag(2, b"\x01" * 12)}, "tags"),
        ({"t": "ping", "time": 10**30}, "tags"),  # cbor2 encodes it as a bignum
        ({"t": "ping", "time": 1.0}, "floats"),
    ],
)
async def test_out_of_range_and_tagged_values_are_bad_message(
    proc: BridgehostProcess, request_map: dict[str, Any], why: str
) -> None:
    raw = await Raw.open(proc)
    try:
        await raw.send(cbor2.dumps({"t": "ident", "v": 1}))
        assert (await raw.recv())["t"] == "ident"
        await raw.send(cbor2.dumps({**request_map, "rid": 5}))
        reply = await raw.recv()
        assert reply["t"] == "error" and reply["code"] == "bad-message", reply
        assert reply["rid"] == 5 and why in reply["text"]
    finally:
        await raw.close()
    assert "internal error" not in proc.log() and "Traceback" not in proc.log()


async def test_the_largest_integers_allowed_still_work(proc: BridgehostProcess) -> None:
    client = await connect(proc.url)
    try:
        topic = "#edge@test.example"
        await client.sub(topic)
        event = await client.publish(topic, "one")
        assert [e.body async for e in client.history_after(topic, 0)] == ["one"]
        page = await client.catchup(topic, after=2**63 - 1)
        assert page.events == () and event.seq == 1
    finally:
        await client.close()
