"""A plugin that speaks raw Scalar/1 frames on its stdin and stdout (no bridgehost
import): ident as argv[1] without a secret, then either subscribe, publish and wait for
one event from someone else (printed on stderr as JSON), or report the ident refusal."""

import json
import struct
import sys

import cbor2

out, inp = sys.stdout.buffer, sys.stdin.buffer


def send(**m: object) -> None:
    body = cbor2.dumps(m)
    out.write(struct.pack("<H", len(body)) + body)
    out.flush()


def recv() -> dict[str, object]:
    head = inp.read(2)
    if len(head) < 2:
        raise SystemExit("stdin closed")
    (size,) = struct.unpack("<H", head)
    value = cbor2.loads(inp.read(size))
    assert isinstance(value, dict)
    return value


def main() -> None:
    ident, topic = sys.argv[1], sys.argv[2]
    send(t="ident", v=1, id=ident, rid=1)
    welcome = recv()
    if welcome["t"] != "ident":
        bye = recv()
        print(json.dumps({"refused": welcome, "bye": bye}), file=sys.stderr, flush=True)
        return
    send(t="sub", topic=topic, rid=2)
    assert recv()["t"] == "meta"
    send(t="msg", topic=topic, body="hello from stdio", rid=3)
    echo = recv()
    print(json.dumps({"welcome": welcome["id"], "echo": echo["body"]}), file=sys.stderr, flush=True)
    while True:
        frame = recv()
        if frame["t"] == "ping":
            send(t="pong", **{k: frame[k] for k in ("time", "rid") if k in frame})
        elif frame["t"] == "event" and frame["from"] != welcome["id"]:
            print(json.dumps({"event": frame["body"]}), file=sys.stderr, flush=True)
            send(t="bye")
            return


if __name__ == "__main__":
    main()
