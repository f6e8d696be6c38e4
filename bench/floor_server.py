"""The floor: a minimal hand-written asyncio fan-out server, for comparison.

Same framing as Scalar/1 (u16-LE length + one CBOR map) and just enough of
the protocol for `bench/loadgen.py` to drive it like bridgehost: `ident`
(anything is accepted), `sub` -> `meta`, `msg` -> an `event` to every other
subscriber of the topic plus the echo (with `rid`) to the sender, `ping` ->
`pong`, `bye`. No auth, no history, no limits, no validation.

It does what a straightforward server does: encode the event once and call
`transport.write` once per delivery, i.e. one `send` syscall per subscriber
per message. That is the cost bridgehost's coalesced fan-out is measured
against. Uses uvloop when installed, as bridgehost does.

    python bench/floor_server.py --port 7700
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import socket
import time
from typing import Any

import cbor2

MAX_FRAME = 16382


def frame(body: dict[str, Any]) -> bytes:
    data = cbor2.dumps(body)
    return len(data).to_bytes(2, "little") + data


class Topic:
    __slots__ = ("name", "seq", "subs")

    def __init__(self, name: str) -> None:
        self.name = name
        self.seq = 0
        self.subs: dict[Conn, None] = {}


class Floor:
    def __init__(self) -> None:
        self.topics: dict[str, Topic] = {}
        self.guests = 0

    def topic(self, name: str) -> Topic:
        t = self.topics.get(name)
        if t is None:
            t = self.topics[name] = Topic(name)
        return t


class Conn(asyncio.Protocol):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.id = ""
        self.subs: list[Topic] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        for t in self.subs:
            t.subs.pop(self, None)
        self.subs = []

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            size = buf[pos] | (buf[pos + 1] << 8)
            if size == 0 or size > MAX_FRAME:
                assert self.transport is not None
                self.transport.close()
                return
            if end - pos - 2 < size:
                break
            try:
                m = cbor2.loads(bytes(buf[pos + 2 : pos + 2 + size]))
            except Exception:
                m = None
            pos += 2 + size
            if isinstance(m, dict):
                self.handle(m)
        del buf[:pos]

    def reply(self, m: dict[str, Any], rid: Any) -> None:
        if rid is not None:
            m["rid"] = rid
        assert self.transport is not None
        self.transport.write(frame(m))

    def handle(self, m: dict[str, Any]) -> None:
        t, rid = m.get("t"), m.get("rid")
        if t == "msg":
            self.msg(m, rid)
        elif t == "ident":
            ident = m.get("id")
            if not isinstance(ident, str):
                self.floor.guests += 1
                ident = f"guest-{self.floor.guests:08x}@localhost"
            self.id = ident
            self.reply({"t": "ident", "v": 1, "id": ident, "server": "floor"}, rid)
        elif t == "sub":
            topic = self.floor.topic(str(m.get("topic")))
            if self not in topic.subs:
                topic.subs[self] = None
                self.subs.append(topic)
            meta = {"t": "meta", "topic": topic.name, "seq": topic.seq}
            self.reply(meta | {"subscribers": len(topic.subs), "history": False}, rid)
        elif t == "ping":
            self.reply({"t": "pong", "time": m.get("time")}, rid)
        elif t == "bye" and self.transport is not None:
            self.transport.close()

    def msg(self, m: dict[str, Any], rid: Any) -> None:
        topic = self.floor.topic(str(m.get("topic")))
        topic.seq += 1
        core = {
            "topic": topic.name,
            "seq": topic.seq,
            "from": self.id,
            "time": time.time_ns() // 1_000_000,
            "kind": "text",
            "body": m.get("body"),
        }
        core["id"] = hashlib.sha256(cbor2.dumps(core)).digest()
        data = frame({"t": "event"} | core)
        for sub in topic.subs:
            if sub is not self and sub.transport is not None:
                sub.transport.write(data)  # one write (one send syscall) per delivery
        self.reply({"t": "event"} | core, rid)


async def serve(host: str, port: int) -> None:
    floor = Floor()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Conn(floor), host, port, reuse_address=True, backlog=1024
    )
    print(f"floor listening on tcp://{host}:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7700)
    args = p.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
