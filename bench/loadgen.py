"""Load generator processes for bench/fanout.py: subscribers and one publisher.

Plain non-blocking sockets and epoll, no asyncio and no CBOR decoding on the
receive path, so one generator core keeps up with a server core: a
subscriber counts deliveries by counting a marker in the bytes it receives
(`bytes.count` / one regex, both in C) instead of parsing every frame.

Message bodies (~100 B) carry the marker:
- `BENCHT:<n>` — throughput phase (counted only);
- `BENCHL:<time.time_ns() at send>` — latency phase. Latency is measured per
  delivery at the subscriber, twice: against the kernel's receive timestamp
  of the segment (SO_TIMESTAMPNS, so a busy generator does not inflate it)
  and against the time the generator process read it (`app`, an upper bound).

Every worker reports through a multiprocessing queue as (kind, worker, data).
"""

from __future__ import annotations

import array
import contextlib
import os
import re
import resource
import selectors
import socket
import struct
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import cbor2

MARK_T = b"BENCHT:"
LAT_RE = re.compile(rb"BENCHL:(\d{19})")
_KEEP = len(b"BENCHL:") + 19 - 1
"""Bytes of a chunk's tail that may hold the start of a marker split across reads."""

_T_EVENT = b"\x61t\x65event"
"""`"t": "event"`, the first pair of every event map both servers send."""
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
BODY_LEN = 100
RECV = 1 << 18


def body_t(i: int) -> str:
    return f"BENCHT:{i:07d} ".ljust(BODY_LEN, "x")


def body_l() -> str:
    return f"BENCHL:{time.time_ns():019d} ".ljust(BODY_LEN, "x")


def frame(m: dict[str, Any]) -> bytes:
    data = cbor2.dumps(m)
    return len(data).to_bytes(2, "little") + data


@dataclass(frozen=True)
class Target:
    """Where to connect and how to say who we are."""

    host: str
    port: int
    topic: str
    pub_ident: dict[str, Any]
    """The publisher's ident (a reserved ID with a token, so no rate limit)."""
    cpus: frozenset[int] | None = None


def raise_nofile() -> None:
    """Soft limit on open files up to the hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def setup_process(target: Target) -> None:
    raise_nofile()
    if target.cpus:
        os.sched_setaffinity(0, target.cpus)


class FrameReader:
    """Blocking reads of whole frames, for handshakes only."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def read(self) -> dict[str, Any]:
        while True:
            if len(self.buf) >= 2:
                size = int.from_bytes(self.buf[:2], "little")
                if len(self.buf) >= 2 + size:
                    body, self.buf = self.buf[2 : 2 + size], self.buf[2 + size :]
                    m = cbor2.loads(body)
                    assert isinstance(m, dict)
                    return m
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection during the handshake")
            self.buf += data


def _until(reader: FrameReader, t: str, rid: int) -> dict[str, Any]:
    while True:
        m = reader.read()
        if m.get("t") == "error":
            raise RuntimeError(f"server refused: {m}")
        if m.get("t") == t and m.get("rid") == rid:
            return m


def open_subscribers(target: Target, n: int, topic: str) -> list[socket.socket]:
    """n guest connections subscribed to `topic`, handshakes pipelined in batches."""
    socks: list[socket.socket] = []
    hello = frame({"t": "ident", "v": 1, "rid": 1, "client": "bench"}) + frame(
        {"t": "sub", "topic": topic, "rid": 2}
    )
    for start in range(0, n, 200):
        batch = []
        for _ in range(min(200, n - start)):
            s = socket.create_connection((target.host, target.port), timeout=30)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(hello)
            batch.append(s)
        for s in batch:
            _until(FrameReader(s), "meta", 2)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setblocking(False)
        socks.extend(batch)
    return socks


@dataclass
class SubState:
    sock: socket.socket
    carry: bytes = b""
    n_t: int = 0
    n_l: int = 0
    done_t: int = 0
    closed: bool = False


@dataclass
class SubResults:
    done_t: list[int] = field(default_factory=list)
    lat_kernel: array.array[int] = field(default_factory=lambda: array.array("q"))
    lat_app: array.array[int] = field(default_factory=lambda: array.array("q"))
    sent: array.array[int] = field(default_factory=lambda: array.array("q"))


def _kernel_ns(anc: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return int(sec * 1_000_000_000 + nsec)
    return 0


def subscriber_worker(
    wid: int,
    target: Target,
    n: int,
    *,
    expect_t: int,
    expect_l: int,
    results: Queue[tuple[str, int, Any]],
    stop: Event,
) -> None:
    """n subscribers: count `expect_t` throughput events, then `expect_l` latency events.

    Reports ("ready"), ("tput", [done times]) once every connection has its
    throughput events, ("lat", None) once it has its latency events, and on
    stop ("final", {...}) with everything, partial if something went wrong.
    """
    setup_process(target)
    try:
        socks = open_subscribers(target, n, target.topic)
    except Exception as exc:
        results.put(("error", wid, f"{type(exc).__name__}: {exc}"))
        return
    results.put(("ready", wid, None))
    if expect_t == 0 and expect_l == 0:
        stop.wait()
        for s in socks:
            s.close()
        results.put(("final", wid, {"closed": 0}))
        return
    sel = selectors.DefaultSelector()
    states = [SubState(s) for s in socks]
    for state in states:
        sel.register(state.sock, selectors.EVENT_READ, state)
    out = SubResults()
    pending_t, pending_l = len(states), len(states)
    if expect_t == 0:
        results.put(("tput", wid, []))
    closed = 0
    lat_k, lat_a, lat_s = out.lat_kernel, out.lat_app, out.sent
    while not stop.is_set() and (pending_t or pending_l):
        for key, _ in sel.select(0.05):
            st: SubState = key.data
            try:
                data, anc, _flags, _addr = st.sock.recvmsg(RECV, 64)
            except BlockingIOError:
                continue
            except OSError:
                data, anc = b"", []
            now = time.time_ns()
            if not data:
                sel.unregister(st.sock)
                st.closed = True
                closed += 1
                if st.n_t < expect_t:
                    pending_t -= 1
                    if not pending_t:
                        results.put(("tput", wid, out.done_t))
                if st.n_l < expect_l:
                    pending_l -= 1
                    if not pending_l:
                        results.put(("lat", wid, None))
                continue
            buf = st.carry + data if st.carry else data
            keep_from = len(buf) - _KEEP
            c = buf.count(MARK_T)
            if c:
                keep_from = max(keep_from, buf.rfind(MARK_T) + len(MARK_T))
                before = st.n_t
                st.n_t += c
                if before < expect_t <= st.n_t:
                    st.done_t = now
                    out.done_t.append(now)
                    pending_t -= 1
                    if not pending_t:
                        results.put(("tput", wid, out.done_t))
            if st.n_t >= expect_t and b"BENCHL:" in buf:
                kernel = _kernel_ns(anc) or now
                end = 0
                for m in LAT_RE.finditer(buf):
                    sent = int(m.group(1))
                    lat_k.append(kernel - sent)
                    lat_a.append(now - sent)
                    lat_s.append(sent)
                    st.n_l += 1
                    end = m.end()
                    if st.n_l == expect_l:
                        pending_l -= 1
                        if not pending_l:
                            results.put(("lat", wid, None))
                keep_from = max(keep_from, end)
            st.carry = buf[max(keep_from, 0) :]
    if not pending_l and not stop.is_set():
        stop.wait()
    sel.close()
    counts_t = [st.n_t for st in states]
    counts_l = [st.n_l for st in states]
    for s in socks:
        s.close()
    results.put(
        (
            "final",
            wid,
            {
                "closed": closed,
                "done_t": out.done_t,
                "min_t": min(counts_t, default=0),
                "min_l": min(counts_l, default=0),
                "lat_kernel": out.lat_kernel.tobytes(),
                "lat_app": out.lat_app.tobytes(),
                "sent": out.sent.tobytes(),
            },
        )
    )


def publisher_worker(
    target: Target,
    count: int,
    rate: float | None,
    window: int,
    results: Queue[tuple[str, int, Any]],
) -> None:
    """Publish `count` messages, at full speed (at most `window` unacknowledged) or
    paced at `rate` per second; report ("pub", -1, {start, end, acked, errors})."""
    setup_process(target)
    try:
        s = socket.create_connection((target.host, target.port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(frame(target.pub_ident | {"rid": 0}))
        reader = FrameReader(s)
        _until(reader, "ident", 0)
    except Exception as exc:
        results.put(("error", -1, f"publisher: {type(exc).__name__}: {exc}"))
        return
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    topic = target.topic
    out = bytearray()
    inbuf = reader.buf
    sent = acked = 0
    errors: list[Any] = []
    start = time.time_ns()
    t0 = time.monotonic()
    deadline = t0 + 120 + (count / rate if rate else 0)
    writing = False
    while acked + len(errors) < count and time.monotonic() < deadline:
        now = time.monotonic()
        if rate is None:
            while sent < count and sent - acked < window:
                out += frame({"t": "msg", "rid": sent + 1, "topic": topic, "body": body_t(sent)})
                sent += 1
            timeout: float | None = 1.0
        else:
            due = t0 + sent / rate
            if sent < count and now >= due:
                out += frame({"t": "msg", "rid": sent + 1, "topic": topic, "body": body_l()})
                sent += 1
                due = t0 + sent / rate
            timeout = max(0.0, due - time.monotonic()) if sent < count else 1.0
        if out:
            try:
                n = s.send(out)
                del out[:n]
            except BlockingIOError:
                pass
        if out and not writing:
            sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
            writing = True
        elif not out and writing:
            sel.modify(s, selectors.EVENT_READ)
            writing = False
        if rate is None and out:
            timeout = 1.0
        for _key, mask in sel.select(timeout):
            if not mask & selectors.EVENT_READ:
                continue
            try:
                data = s.recv(RECV)
            except BlockingIOError:
                continue
            if not data:
                errors.append("connection closed")
                acked = count
                break
            inbuf += data
            pos = 0
            while len(inbuf) - pos >= 2:
                size = inbuf[pos] | (inbuf[pos + 1] << 8)
                if len(inbuf) - pos - 2 < size:
                    break
                body = inbuf[pos + 2 : pos + 2 + size]
                pos += 2 + size
                if body[1:9] == _T_EVENT:
                    acked += 1
                    continue
                m = cbor2.loads(body)
                if m.get("t") == "event":
                    acked += 1
                elif m.get("t") == "error":
                    errors.append(m)
            inbuf = inbuf[pos:]
    end = time.time_ns()
    s.close()
    results.put(
        (
            "pub",
            -1,
            {"start": start, "end": end, "sent": sent, "acked": acked, "errors": errors[:5]},
        )
    )
