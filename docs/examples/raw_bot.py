"""A Scalar bot in plain Python: no bridgehost, just a socket and CBOR.
Usage: python raw_bot.py HOST PORT '!mybot@example.com' TOKEN '#lobby@example.com'"""

import json
import socket
import struct
import sys

import cbor2

host, port, ident, token, *topics = sys.argv[1:]
sock = socket.create_connection((host, int(port)))
stream = sock.makefile("rb")


def send(**msg):  # one frame: u16 little-endian length, then a CBOR map
    body = cbor2.dumps(msg)
    sock.sendall(struct.pack("<H", len(body)) + body)


def recv():
    head = stream.read(2)
    if len(head) < 2:
        sys.exit("connection closed")
    return cbor2.loads(stream.read(struct.unpack("<H", head)[0]))


send(t="ident", v=1, id=ident, auth={"method": "token", "secret": token})
if (reply := recv())["t"] != "ident":
    sys.exit(f"login refused: {reply.get('text')}")
for topic in topics:
    send(t="sub", topic=topic)
manifest = {
    "scalar-bot": 1,
    "prefix": "!",
    "topics": topics,
    "commands": [{"name": "ping", "help": "answers pong"}],
}  # for !help
send(t="msg", topic="!bots@" + ident.split("@")[1], kind="notice", body=json.dumps(manifest))
while True:
    m = recv()
    if m["t"] == "ping":  # the server checks we are alive
        send(t="pong", **{k: m[k] for k in ("time", "rid") if k in m})
    elif m["t"] != "event" or m["kind"] != "text" or m["from"] == ident.lower():
        continue  # notices, our own events and other frames are never answered
    elif m["body"].strip() == "!ping":
        send(t="msg", topic=m["topic"], body="pong", kind="notice", reply_to=m["id"])
