"""A tiny standalone Scalar/1 client, written from the protocol contract only.

Standard library + cbor2. It deliberately shares no code with bridgehost: the
black-box suite uses it to prove that a client written from the spec alone
interoperates with the server.

Framing (spec §1): u16 little-endian length L (1..16382), then L bytes of one
CBOR map with text keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import socket
import struct
import time
from typing import Any

import cbor2

MAX_FRAME = 16382
DEFAULT_TIMEOUT = 5.0

_EOF = object()


class Closed(Exception):
    """The server closed the connection."""


class ProtocolViolation(AssertionError):
    """The server sent something the spec forbids it to send."""


def now_ms() -> int:
    return int(time.time() * 1000)


def encode(msg: dict[str, Any]) -> bytes:
    """CBOR-encode a message body (definite lengths, no floats expected)."""
    return cbor2.dumps(msg)


def frame(body: bytes) -> bytes:
    if not 0 <= len(body) <= 0xFFFF:
        raise ValueError("body does not fit a u16 length")
    return struct.pack("<H", len(body)) + body


def decode_body(body: bytes) -> Any:
    """Decode exactly one CBOR item; trailing bytes are an error."""
    fp = io.BytesIO(body)
    dec = cbor2.CBORDecoder(fp)
    item = dec.decode()
    if fp.tell() != len(body):
        raise ProtocolViolation(f"trailing bytes after CBOR item in server frame: {body!r}")
    return item


def check_wire_encoding(body: bytes) -> None:
    """Servers never send floats, tags or indefinite lengths (spec §1, §9): walk the
    raw CBOR and reject them (cbor2 would silently accept all three)."""

    def item(pos: int, depth: int) -> int:
        if depth > 64:
            raise ProtocolViolation("CBOR nested too deep")
        ib = body[pos]
        major, ai = ib >> 5, ib & 0x1F
        pos += 1
        if ai == 31:
            raise ProtocolViolation(f"server sent an indefinite-length item: {body!r}")
        if major == 6:
            raise ProtocolViolation(f"server sent a CBOR tag: {body!r}")
        if major == 7 and ai in (25, 26, 27):
            raise ProtocolViolation(f"server sent a float: {body!r}")
        if ai < 24:
            arg = ai
        elif ai in (24, 25, 26, 27):
            n = 1 << (ai - 24)
            arg = int.from_bytes(body[pos : pos + n], "big")
            pos += n
        else:
            raise ProtocolViolation(f"reserved additional info in server frame: {body!r}")
        if major in (2, 3):
            return pos + arg
        if major == 4:
            for _ in range(arg):
                pos = item(pos, depth + 1)
        elif major == 5:
            for _ in range(2 * arg):
                pos = item(pos, depth + 1)
        return pos

    end = item(0, 0)
    if end != len(body):
        raise ProtocolViolation(f"trailing bytes after CBOR item in server frame: {body!r}")


def _check_types(value: Any, path: str = "$") -> None:
    """Servers never send floats, tags or undefined (spec §1, §9)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, str, bytes)):
        return
    if isinstance(value, float):
        raise ProtocolViolation(f"server sent a float at {path}: {value!r}")
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_types(v, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ProtocolViolation(f"server sent a non-text map key at {path}: {k!r}")
            _check_types(v, f"{path}.{k}")
        return
    raise ProtocolViolation(f"server sent an unexpected CBOR type at {path}: {value!r}")


def event_core(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k not in ("id", "t", "rid")}


def compute_event_id(ev: dict[str, Any]) -> bytes:
    """SHA-256 of the core-deterministic CBOR of the event without id/t/rid."""
    return hashlib.sha256(cbor2.dumps(event_core(ev), canonical=True)).digest()


EVENT_KEYS = {
    "id",
    "topic",
    "seq",
    "from",
    "nick",
    "time",
    "kind",
    "body",
    "reply_to",
    "ctype",
    "origin",
}


def check_event(ev: dict[str, Any]) -> None:
    """Assert the structural rules of §4/§9 for one event map (frame or history item)."""
    for key in ("id", "topic", "seq", "from", "time", "kind", "body"):
        assert key in ev, f"event lacks required key {key!r}: {ev!r}"
    for k, v in ev.items():
        assert v is not None, f"event has a null {k!r} (absent optionals must be omitted): {ev!r}"
    assert isinstance(ev["id"], bytes) and len(ev["id"]) == 32, f"bad event id: {ev!r}"
    assert isinstance(ev["topic"], str), ev
    assert isinstance(ev["seq"], int) and not isinstance(ev["seq"], bool) and ev["seq"] >= 0, ev
    assert isinstance(ev["from"], str), ev
    assert isinstance(ev["time"], int) and not isinstance(ev["time"], bool), ev
    assert ev["kind"] in ("text", "action", "notice", "presence"), ev
    assert isinstance(ev["body"], str), ev
    if "reply_to" in ev:
        assert isinstance(ev["reply_to"], bytes) and len(ev["reply_to"]) == 32, ev
    if "ctype" in ev:
        assert ev["ctype"] != "text/plain", f"ctype text/plain must be omitted: {ev!r}"
    got = compute_event_id(ev)
    assert ev["id"] == got, (
        f"event id mismatch: sent {ev['id'].hex()} computed {got.hex()} for {ev!r}"
    )


class Conn:
    """One Scalar connection with a background frame reader."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, autoread: bool = True
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.backlog: list[Any] = []
        self._rids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.truncated = False
        self.id: str | None = None
        self.ident_reply: dict[str, Any] | None = None
        self._go = asyncio.Event()
        self._go.set()
        if autoread:
            self.start_reading()

    # -- reading -------------------------------------------------------
    def start_reading(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._read_loop())

    def pause(self) -> None:
        """Stop reading from the socket after the current frame (simulates a stuck client)."""
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    async def _read_loop(self) -> None:
        try:
            while True:
                await self._go.wait()
                try:
                    hdr = await self.reader.readexactly(2)
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        self.queue.put_nowait(
                            ProtocolViolation(
                                f"connection closed inside a frame header: {e.partial!r}"
                            )
                        )
                    break
                (length,) = struct.unpack("<H", hdr)
                if not 1 <= length <= MAX_FRAME:
                    self.queue.put_nowait(ProtocolViolation(f"server sent a frame with L={length}"))
                    break
                try:
                    body = await self.reader.readexactly(length)
                except asyncio.IncompleteReadError:
                    self.queue.put_nowait(
                        ProtocolViolation("connection closed inside a frame body")
                    )
                    break
                try:
                    msg = decode_body(body)
                    check_wire_encoding(body)
                    if not isinstance(msg, dict):
                        raise ProtocolViolation(f"server frame is not a map: {msg!r}")
                    _check_types(msg)
                    if not isinstance(msg.get("t"), str):
                        raise ProtocolViolation(f"server frame without text 't': {msg!r}")
                except Exception as e:
                    self.queue.put_nowait(
                        e
                        if isinstance(e, AssertionError)
                        else ProtocolViolation(f"undecodable frame: {e}")
                    )
                    continue
                self.queue.put_nowait(msg)
        except (ConnectionError, OSError):
            pass
        finally:
            self.queue.put_nowait(_EOF)

    async def _next_raw(self, timeout: float) -> Any:
        if self.backlog:
            return self.backlog.pop(0)
        if self.closed:
            raise Closed("connection already closed")
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no frame within {timeout}s") from None
        return item

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Next frame from the server; raises Closed on EOF, TimeoutError on silence."""
        item = await self._next_raw(timeout)
        if item is _EOF:
            self.closed = True
            raise Closed("server closed the connection")
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    async def recv_type(self, t: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        msg = await self.recv(timeout)
        assert msg["t"] == t, f"expected a {t!r} frame, got {msg!r}"
        return msg

    async def recv_event(
        self, timeout: float = DEFAULT_TIMEOUT, skip_presence: bool = True
    ) -> dict[str, Any]:
        """Next event frame (optionally skipping presence events), checked."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.01, deadline - time.monotonic())
            msg = await self.recv(left)
            assert msg["t"] == "event", f"expected an event, got {msg!r}"
            check_event(msg)
            if skip_presence and msg["kind"] == "presence":
                continue
            return msg

    async def expect_quiet(self, timeout: float = 0.3) -> None:
        """Assert that nothing arrives within `timeout` seconds."""
        try:
            item = await self._next_raw(timeout)
        except TimeoutError:
            return
        except Closed:
            raise AssertionError("connection closed while expecting silence") from None
        if item is _EOF:
            self.closed = True
            raise AssertionError("connection closed while expecting silence")
        raise AssertionError(f"expected no frame, got {item!r}")

    async def expect_close(
        self, timeout: float = DEFAULT_TIMEOUT, allow_truncated: bool = False
    ) -> list[dict[str, Any]]:
        """Read until EOF; return the frames seen before it. Fails on timeout.

        With allow_truncated, a last frame cut off by the close is tolerated (a server
        that drops a client hard may abort in the middle of a frame)."""
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection not closed within {timeout}s; saw {frames!r}")
            try:
                frames.append(await self.recv(left))
            except Closed:
                return frames
            except ProtocolViolation as e:
                if allow_truncated and "closed inside a frame" in str(e):
                    self.truncated = True
                    continue
                raise
            except TimeoutError:
                raise AssertionError(
                    f"connection not closed within {timeout}s; saw {frames!r}"
                ) from None

    # -- writing -------------------------------------------------------
    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_body(self, body: bytes) -> None:
        await self.send_raw(frame(body))

    async def send(self, msg: dict[str, Any]) -> None:
        body = encode(msg)
        assert 1 <= len(body) <= MAX_FRAME, f"test bug: frame of {len(body)} bytes"
        await self.send_body(body)

    def next_rid(self) -> int:
        return next(self._rids)

    async def request(
        self, msg: dict[str, Any], timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Send msg with a fresh rid (unless given) and return the frame carrying that rid.

        Other frames that arrive meanwhile are kept, in order, for recv().
        """
        msg = dict(msg)
        if "rid" not in msg:
            msg["rid"] = self.next_rid()
        rid = msg["rid"]
        await self.send(msg)
        deadline = time.monotonic() + timeout
        seen: list[Any] = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply to {msg!r} within {timeout}s; saw {seen!r}")
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    raise TimeoutError(
                        f"no reply to {msg!r} within {timeout}s; saw {seen!r}"
                    ) from None
                if item is _EOF:
                    self.closed = True
                    raise Closed(f"closed while waiting for reply to {msg!r}; saw {seen!r}")
                if isinstance(item, BaseException):
                    raise item
                if item.get("rid") == rid:
                    return item  # type: ignore[no-any-return]
                seen.append(item)
        finally:
            self.backlog.extend(seen)

    async def call(
        self, msg: dict[str, Any], expect: str, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """request() and assert the reply type (an error reply fails the test)."""
        reply = await self.request(msg, timeout)
        assert reply["t"] == expect, f"{msg!r} -> expected {expect!r}, got {reply!r}"
        return reply

    async def error(
        self, msg: dict[str, Any], code: str, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """request() and assert an error with `code` (and the same rid)."""
        reply = await self.request(msg, timeout)
        assert reply["t"] == "error", f"{msg!r} -> expected error {code!r}, got {reply!r}"
        assert reply.get("code") == code, f"{msg!r} -> expected error {code!r}, got {reply!r}"
        assert isinstance(reply.get("text"), str), f"error without text: {reply!r}"
        return reply

    # -- protocol helpers ---------------------------------------------
    async def ident(
        self,
        id: str | None = None,
        secret: str | None = None,
        method: str = "password",
        **extra: Any,
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {"t": "ident", "v": 1}
        if id is not None:
            msg["id"] = id
        if secret is not None:
            msg["auth"] = {"method": method, "secret": secret}
        msg.update(extra)
        reply = await self.request(msg)
        if reply["t"] == "ident":
            self.id = reply.get("id")
            self.ident_reply = reply
        return reply

    async def login(
        self, id: str | None = None, secret: str | None = None, method: str = "password"
    ) -> dict[str, Any]:
        reply = await self.ident(id, secret, method)
        assert reply["t"] == "ident", f"ident as {id!r} failed: {reply!r}"
        return reply

    async def sub(self, topic: str) -> dict[str, Any]:
        return await self.call({"t": "sub", "topic": topic}, "meta")

    async def pub(self, topic: str, body: str, **extra: Any) -> dict[str, Any]:
        """Publish and return the echo (asserting it is an event with our rid)."""
        msg = {"t": "msg", "topic": topic, "body": body, **extra}
        reply = await self.request(msg)
        assert reply["t"] == "event", f"publish {msg!r} -> {reply!r}"
        check_event(reply)
        return reply

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError, TimeoutError, ConnectionError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def __aenter__(self) -> Conn:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


async def connect(
    host: str,
    port: int,
    *,
    local_host: str | None = None,
    rcvbuf: int | None = None,
    autoread: bool = True,
    limit: int = 1 << 20,
    timeout: float = DEFAULT_TIMEOUT,
) -> Conn:
    """Open a TCP connection; optionally from a given loopback source address and
    with a small receive buffer (to simulate a slow consumer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if local_host is not None:
            sock.bind((local_host, 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
    except BaseException:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
    return Conn(reader, writer, autoread=autoread)
