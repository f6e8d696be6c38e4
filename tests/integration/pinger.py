"""A Scalar pinger in its own process (no bridgehost import): connects as a guest,
pings every 10 ms until its stdin closes, then prints each round trip (ms) on stdout.
Run apart from the test's event loop, it measures the server, not the test."""

import socket
import struct
import sys
import threading
import time

import cbor2


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""

    def call(request: dict[str, object]) -> None:
        nonlocal buf
        body = cbor2.dumps(request)
        sock.sendall(struct.pack("<H", len(body)) + body)
        while True:
            while len(buf) >= 2:
                size = struct.unpack("<H", buf[:2])[0]
                if len(buf) < 2 + size:
                    break
                reply, buf = cbor2.loads(buf[2 : 2 + size]), buf[2 + size :]
                if reply.get("rid") == request["rid"]:
                    return
            data = sock.recv(65536)
            if not data:
                raise SystemExit("the server closed the connection")
            buf += data

    call({"t": "ident", "v": 1, "rid": 1})
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print("ready", flush=True)
    rtts, rid = [], 1
    while not done.is_set():
        rid += 1
        start = time.perf_counter()
        call({"t": "ping", "rid": rid})
        rtts.append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)
    print(" ".join(f"{r:.2f}" for r in rtts), flush=True)


if __name__ == "__main__":
    main()
