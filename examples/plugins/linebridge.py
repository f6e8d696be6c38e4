#!/usr/bin/env python3
"""A bridgehost plugin in plain Python: bridges its Scalar channels to a TCP port
that speaks lines of text (try it with `nc 127.0.0.1 7700`).

No bridgehost import: everything it needs is the environment bridgehost sets
and Scalar/1 frames on stdin/stdout (docs/plugins.md). Needs `cbor2`.

    accounts:
      lines:
        type: exec
        command: [python3, examples/plugins/linebridge.py]
        config: {listen: "127.0.0.1:7700"}
    bridges:
      - channel: "#lobby@example.com"
        links: [{account: lines, target: tcp}]
"""

import asyncio
import itertools
import json
import os
import struct
import sys

import cbor2

MAX_FRAME = 16382


def log(level, text):
    """stderr is the plugin's log; a leading level word sets the level."""
    print(f"{level} {text}", file=sys.stderr, flush=True)


class Scalar:
    """One Scalar/1 session on stdin/stdout: requests matched by rid, events to a callback."""

    def __init__(self, reader, writer, on_event):
        self.reader, self.writer, self.on_event = reader, writer, on_event
        self.rids = itertools.count(1)
        self.pending = {}

    def send(self, message):
        body = cbor2.dumps(message)
        if len(body) > MAX_FRAME:
            raise ValueError("message too large for one frame")
        self.writer.write(struct.pack("<H", len(body)) + body)

    async def request(self, message):
        rid = next(self.rids)
        future = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        self.send({**message, "rid": rid})
        reply = await future
        if reply["t"] == "error":
            raise RuntimeError(f"{reply['code']}: {reply.get('text')}")
        return reply

    async def read(self):
        """Dispatch frames until bridgehost says bye or closes stdin."""
        while True:
            try:
                (length,) = struct.unpack("<H", await self.reader.readexactly(2))
                frame = cbor2.loads(await self.reader.readexactly(length))
            except asyncio.IncompleteReadError:
                return "stdin closed"
            kind = frame.get("t")
            if kind == "bye":
                return frame.get("reason", "bye")
            if kind == "ping":
                self.send({"t": "pong", "time": frame.get("time", 0)})
            elif frame.get("rid") in self.pending:
                self.pending.pop(frame["rid"]).set_result(frame)
            elif kind == "event":
                self.on_event(frame)
            elif kind == "error":
                log("WARNING", f"bridgehost: {frame.get('code')}: {frame.get('text')}")


async def stdio():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def main():
    me = os.environ["BRIDGEHOST_ID"]
    links = json.loads(os.environ["BRIDGEHOST_LINKS"])
    config = json.loads(os.environ.get("BRIDGEHOST_CONFIG") or "{}")
    host, _, port = config.get("listen", "127.0.0.1:7700").rpartition(":")
    peers = set()

    def on_event(frame):
        event = frame
        for link in links:
            if event["topic"] != link["channel"] or link["direction"] == "in":
                continue
            if event.get("origin") == link["origin"] or event.get("kind") == "presence":
                continue  # our own message coming back, or someone going on/offline
            who = event.get("nick") or event["from"].split("@")[0]
            for line in event.get("body", "").splitlines() or [""]:
                for peer in peers:
                    peer.write(f"<{who}> {line}\n".encode())

    session = Scalar(*await stdio(), on_event)
    reading = asyncio.ensure_future(session.read())
    welcome = await session.request({"t": "ident", "v": 1, "id": me})
    log("INFO", f"session open as {welcome['id']}")
    for channel in sorted({link["channel"] for link in links}):
        await session.request({"t": "sub", "topic": channel})

    async def serve(reader, writer):
        peers.add(writer)
        nick = "tcp-{}".format(writer.get_extra_info("peername")[1])
        try:
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                for link in links:
                    if text and link["direction"] != "out":
                        await session.request(
                            {
                                "t": "msg",
                                "topic": link["channel"],
                                "body": text,
                                "nick": nick,
                                "origin": link["origin"],
                            }
                        )
        except (ConnectionError, asyncio.CancelledError):
            pass  # the peer left, or the plugin is exiting
        finally:
            peers.discard(writer)
            writer.close()

    server = await asyncio.start_server(serve, host, int(port))
    log("INFO", f"listening on {host}:{port}")
    await session.request(
        {"t": "status", "links": [{"target": link["target"], "state": "up"} for link in links]}
    )
    reason = await reading
    log("INFO", f"session ended ({reason}); exiting")
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
