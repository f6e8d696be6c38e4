"""Scalar over WebSocket at /scalar (protocol §12): same sessions, limits and hub as TCP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
import pytest

from bridgehost.scalar.errors import RateLimited
from bridgehost.scalar.wire import MAX_FRAME
from bridgehost.testing import Running
from bridgehost.web.scalar_ws import READ_LIMIT
from tests.web.helpers import web_app


class Ws:
    """A raw WebSocket Scalar client: CBOR maps in and out, nothing else."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.rid = 0

    async def send(self, **m: Any) -> int:
        self.rid += 1
        await self.ws.send_bytes(cbor2.dumps({**m, "rid": self.rid}))
        return self.rid

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.BINARY, f"expected a binary frame, got {msg}"
        value = cbor2.loads(msg.data)
        assert isinstance(value, dict)
        return value

    async def call(self, **m: Any) -> dict[str, Any]:
        rid = await self.send(**m)
        while True:
            reply = await self.recv()
            if reply.get("rid") == rid:
                return reply

    async def closed(self, timeout: float = 5.0) -> None:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Running, str]]:
    async with web_app(tmp_path, {"server": {"limits": {"send_buffer": 65536}}}) as pair:
        yield pair


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def open_ws(http: aiohttp.ClientSession, base: str, **kwargs: Any) -> Ws:
    return Ws(await http.ws_connect(base.replace("http", "ws", 1) + "/scalar", **kwargs))


async def test_guest_chats_with_a_tcp_user(
    served: tuple[Running, str], http: aiohttp.ClientSession
) -> None:
    srv, base = served
    room = srv.channel("lobby")
    alice = await srv.client("alice")
    await alice.sub(room)
    ws = await open_ws(http, base, origin=base)
    welcome = await ws.call(t="ident", v=1)
    assert welcome["t"] == "ident" and welcome["id"].startswith("guest-")
    assert welcome["limits"]["frame"] == MAX_FRAME
    meta = await ws.call(t="sub", topic=room)
    assert meta["t"] == "meta" and meta["subscribers"] == 2
    echo = await ws.call(t="msg", topic=room, body="hello over websocket", nonce="n-1")
    assert echo["t"] == "event" and echo["seq"] == 1
    seen = await asyncio.wait_for(alice.__anext__(), 5)
    assert seen.body == "hello over websocket" and seen.sender == welcome["id"]
    await alice.publish(room, "hello back")
    event = await ws.recv()
    assert event["t"] == "event" and event["body"] == "hello back" and "rid" not in event
    history = await ws.call(t="catchup", topic=room)
    assert [e["body"] for e in history["events"]] == ["hello over websocket", "hello back"]


async def test_text_messages_are_bad_message_and_the_session_goes_on(
    served: tuple[Running, str], http: aiohttp.ClientSession
) -> None:
    _, base = served
    ws = await open_ws(http, base)
    await ws.ws.send_str('{"t": "ident"}')
    error = await ws.recv()
    assert error["t"] == "error" and error["code"] == "bad-message"
    assert (await ws.call(t="ident", v=1))["t"] == "ident"
    await ws.ws.send_bytes(b"\xa1\x61t\xc1\x00")  # a tag: refused, nothing built from it
    error = await ws.recv()
    assert error["code"] == "bad-message"
    assert (await ws.call(t="ping", time=5))["t"] == "pong"


@pytest.mark.parametrize("size", [0, MAX_FRAME + 1, READ_LIMIT - 1])
async def test_frames_outside_the_limit_are_bad_frame_then_bye(
    served: tuple[Running, str], http: aiohttp.ClientSession, size: int
) -> None:
    _, base = served
    ws = await open_ws(http, base)
    assert (await ws.call(t="ident", v=1))["t"] == "ident"
    await ws.ws.send_bytes(b"\xa0" * size)
    error = await ws.recv()
    assert (error["t"], error["code"]) == ("error", "bad-frame")
    bye = await ws.recv()
    assert bye == {"t": "bye", "reason": "bad-frame"}
    await ws.closed()


async def test_a_larger_message_is_refused_unread(
    served: tuple[Running, str], http: aiohttp.ClientSession
) -> None:
    srv, base = served
    ws = await open_ws(http, base)
    await ws.ws.send_bytes(b"\xa0" * (READ_LIMIT + 1))
    await ws.closed()
    assert ws.ws.close_code == 1009
    assert (await srv.client()).id.startswith("guest-"), "the server serves everyone else"


async def test_foreign_origin_is_refused_before_the_upgrade(
    served: tuple[Running, str], http: aiohttp.ClientSession
) -> None:
    _, base = served
    url = base.replace("http", "ws", 1) + "/scalar"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, origin="https://evil.example")
    assert refused.value.status == 403
    # A site that rebinds its own name to our address still sends its own origin.
    port = base.rsplit(":", 1)[1]
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect(url, origin=f"http://rebound.example:{port}")
    for origin in (base, f"http://localhost:{port}"):
        ws = await open_ws(http, base, origin=origin)
        assert (await ws.call(t="ident", v=1))["t"] == "ident"


async def test_public_url_is_an_allowed_origin(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with web_app(tmp_path, public_url="https://chat.example.com") as (_, base):
        ws = await open_ws(http, base, origin="https://chat.example.com")
        assert (await ws.call(t="ident", v=1))["t"] == "ident"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await open_ws(http, base, origin="https://chat.example.com.evil.example")


async def test_failed_idents_share_the_allowance_with_tcp(
    served: tuple[Running, str], http: aiohttp.ClientSession
) -> None:
    srv, base = served
    user, _ = await srv.add_user("bob", "right password")
    codes = []
    for _ in range(7):
        ws = await open_ws(http, base)
        reply = await ws.call(t="ident", v=1, id=user, auth={"method": "password", "secret": "x"})
        codes.append(reply["code"])
        assert (await ws.recv())["t"] == "bye"
    assert codes[:5] == ["auth-failed"] * 5
    assert codes[5:] == ["rate-limited"] * 2
    with pytest.raises(RateLimited):
        await srv.client("bob", password="right password")


def _small_receive_buffer(addr_info: Any) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def test_slow_consumer_is_cut_off_and_others_are_served(
    served: tuple[Running, str],
) -> None:
    srv, base = served
    room = srv.channel("flood")
    connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer)
    async with aiohttp.ClientSession(connector=connector) as small:
        slow = await open_ws(small, base)
        await slow.call(t="ident", v=1)
        await slow.call(t="sub", topic=room)
        # Stop reading: the socket buffers and then the server's queue fill up.
        slow.ws._response.connection.transport.pause_reading()  # type: ignore[union-attr]
        bot = await srv.client("!flooder")
        reader = await srv.client("carol")
        await reader.sub(room)
        body = "x" * 4000
        assert srv.app.server is not None
        sent = 0
        while srv.app.server.slow_consumers == 0:
            assert sent < 2000, "the slow consumer was never cut off"
            await bot.publish(room, body)
            sent += 1
        for _ in range(10):
            await bot.publish(room, body)
        sent += 10
        received = 0
        while received < sent:
            event = await asyncio.wait_for(reader.__anext__(), 10)
            received += event.body == body
        slow.ws._response.connection.transport.resume_reading()  # type: ignore[union-attr]
        # It reads what was queued (maybe the bye, best effort), then the connection ends.
        while (await slow.ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
            pass
        assert len(srv.app.server.hub.topics[room].subs) == 1, "only carol is still subscribed"


async def test_shutdown_says_bye(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with web_app(tmp_path) as (srv, base):
        ws = await open_ws(http, base)
        await ws.call(t="ident", v=1)
        stopping = asyncio.ensure_future(srv.app.web.close())
        bye = await ws.recv()
        assert bye == {"t": "bye", "reason": "shutdown"}
        await ws.closed()
        await asyncio.wait_for(stopping, 10)


async def test_connections_per_address_are_bounded(tmp_path: Path) -> None:
    limits = {"server": {"limits": {"connections_per_address": 3}}}
    async with web_app(tmp_path, limits) as (_, base), aiohttp.ClientSession() as http:
        held = [await open_ws(http, base) for _ in range(3)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await open_ws(http, base)
        assert refused.value.status == 429
        await held[0].ws.close()
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            try:
                again = await open_ws(http, base)
                break
            except aiohttp.WSServerHandshakeError:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        assert (await again.call(t="ident", v=1))["t"] == "ident"
