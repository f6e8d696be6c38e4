"""One transport-neutral piece between any transport and a `Session` (§10, §12).

TCP, TLS and Unix sockets, in-process socket pairs, the WebSocket endpoint and
plugins on inherited stdio all run their sessions through a `SessionDriver`;
a transport only has to be a `Sink` and feed what it reads:

    why = server.refusal(remote)  # optional: ask before an upgrade (HTTP 503/429)
    driver = server.attach(sink, remote="203.0.113.5", kind="websocket")
    if driver is None:           # refused: server full, or too many from that address
        ...
    driver.feed(data)            # stream transports: bytes of length-prefixed frames
    driver.feed_body(body)       # message transports: one frame body (a binary WebSocket
                                 # message); the same 1..16382-byte limit holds
    driver.feed_error(BadMessage("text messages are not Scalar frames"))
    driver.drained()             # the sink's buffer fell (asyncio: resume_writing)
    driver.lost()                # the peer is gone
    await driver.finished.wait() # the session is over (its task belongs to the server)

The driver owns what makes one connection safe for everyone else:
- output is queued per connection and handed to the sink once per loop
  iteration (`Sink.write` gets complete length-prefixed frames, in order: strip
  the 2-byte prefix for a message transport);
- queued output counts against the slow-consumer bound as it is queued,
  replies included, plus what the sink still buffers; past the bound the peer
  gets `bye{reason:"slow-consumer"}` behind its backlog and a short grace;
- while output is above half the bound, no further request is handled and the
  sink is asked to stop reading; input waiting to be handled is bounded too
  (`pause_reading` above it), and stream input is decoded in slices, not all
  at once;
- requests are handled one at a time, yielding to the loop between frames.
A driver takes `feed` or `feed_body`, not both. `attach(..., public=False)` is for
connections the server makes itself (not counted against the public limits);
`preauth=ID` opens a session whose `ident` must name that reserved ID and needs no
secret (§12 stdio: `ScalarServer.connect_plugin` does this over a pipe pair, and
`connect_local` gives in-process adapters and bots a socket pair).
The WebSocket endpoint (web/scalar_ws.py, `WsSink`) is a complete example.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from typing import Protocol

from .errors import BadFrame, ScalarError
from .messages import Bye
from .session import Extension, Session, Shared
from .wire import CborMap, FrameDecoder, encode_frame

log = logging.getLogger(__name__)

SLOW_CONSUMER_GRACE = 2.0
"""Seconds a cut-off slow consumer has to read its backlog and the `bye`."""

DECODE_SLICE = 16384
"""Stream bytes decoded at a time: a burst of tiny frames is never decoded all at once."""
RAW_HIGH = 65536
"""Undecoded stream bytes held before the sink is asked to stop reading."""
ITEMS_HIGH = 256
"""Decoded frames waiting for the session before the sink is asked to stop reading."""


class Sink(Protocol):
    """The transport side of a driver."""

    def write(self, frames: list[bytes]) -> None:
        """Send complete length-prefixed frames, in order."""

    def buffered(self) -> int:
        """Bytes written and not yet sent."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None:
        """Close once what was written is sent."""

    def abort(self) -> None: ...


class Host(Protocol):
    """What a driver needs of the server that attached it."""

    @property
    def shared(self) -> Shared: ...

    slow_consumers: int

    def mark_dirty(self, driver: SessionDriver) -> None:
        """Call `driver.flush()` once, later in this loop iteration."""

    def forget(self, driver: SessionDriver) -> None: ...


class SessionDriver:
    def __init__(
        self,
        host: Host,
        sink: Sink,
        remote: str,
        kind: str,
        *,
        public: bool = True,
        preauth: str | None = None,
        extensions: Mapping[str, Extension] | None = None,
    ) -> None:
        self.host = host
        self.sink = sink
        self.remote = remote
        self.kind = kind
        self.public = public
        """Counts against `limits.connections` and `connections_per_address`."""
        limits = host.shared.settings.limits
        self.bound = limits.send_buffer
        self._half = limits.send_buffer // 2
        self.decoder = FrameDecoder(limits.frame)
        self._raw = bytearray()
        self._items: deque[CborMap | ScalarError] = deque()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._sink_bytes = 0
        """What the sink buffered at the last flush (it only shrinks until the next)."""
        self._dirty = False
        self._closing = False
        self._lost = False
        self.slow = False
        self._reading = True
        self._wake = asyncio.Event()
        self._low = asyncio.Event()
        """Set while output is at most half the bound (or the connection is over)."""
        self._low.set()
        self.finished = asyncio.Event()
        self.session = Session(host.shared, self, preauth=preauth, extensions=extensions)

    # --- Peer and Conn (what the session and the hub see) ---------------------------------

    @property
    def id(self) -> str:
        return self.session.id

    @property
    def gone(self) -> bool:
        """The transport reported the connection lost."""
        return self._lost

    @property
    def output(self) -> int:
        """Bytes queued for this peer and not sent yet (ours plus the sink's)."""
        return self._out_bytes + self._sink_bytes

    def push(self, data: bytes) -> None:
        """Queue one complete frame; it counts against the bound at once (§10)."""
        if self._closing or self._lost:
            return
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._dirty:
            self._dirty = True
            self.host.mark_dirty(self)
        if self.output > self._half:
            self._low.clear()
            if self.output > self.bound:
                self._write_out()  # what the transport takes at once is not unsent
                if self.output > self.bound:
                    self._slow_consumer()

    def close(self) -> None:
        """Send what is queued, then close."""
        self._closing = True
        self._low.set()
        self._wake.set()
        if not self._dirty:
            self._dirty = True
            self.host.mark_dirty(self)

    def flush(self) -> None:
        """Hand queued frames to the sink (the server calls this once per loop turn)."""
        self._dirty = False
        if self._lost:
            return
        self._write_out()
        if self._closing:
            self.sink.close()
            return
        if self.output > self.bound:
            self._slow_consumer()
        elif self.output <= self._half:
            self._below_half()

    def _write_out(self) -> None:
        if self._out:
            frames, self._out, self._out_bytes = self._out, [], 0
            self.sink.write(frames)
        self._sink_bytes = self.sink.buffered()

    def _slow_consumer(self) -> None:
        """Cut the peer off. Called from `push`, which may run inside the hub's fan-out
        over a topic's subscribers, so the session is closed on the next loop turn."""
        if self.slow:
            return
        log.warning(
            "disconnecting slow consumer %s (%s, %s)", self.id or "-", self.remote, self.kind
        )
        self.slow = True
        self.session.bye_reason = "slow-consumer"
        self.host.slow_consumers += 1
        # Best effort: the bye goes behind the backlog the peer is not reading, and the
        # peer gets a short grace to read it; nothing more is queued meanwhile.
        frames, self._out, self._out_bytes = self._out, [], 0
        frames.append(encode_frame(Bye(reason="slow-consumer").to_map()))
        self.sink.write(frames)
        self._closing = True
        loop = asyncio.get_running_loop()
        loop.call_soon(self.session.closed)
        self.sink.close()
        loop.call_later(SLOW_CONSUMER_GRACE, self.sink.abort)
        self._low.set()
        self._wake.set()

    # --- what the transport tells us ------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from a stream transport."""
        if self._lost or self._closing or self.decoder.failed:
            return
        self._raw += data
        if len(self._raw) > RAW_HIGH:
            self._pause()
        self._wake.set()

    def feed_body(self, body: bytes) -> None:
        """One frame body from a message transport (a binary WebSocket message)."""
        if self._lost or self._closing or self.decoder.failed:
            return
        limit = self.host.shared.settings.limits.frame
        if not 1 <= len(body) <= limit:
            self.decoder.failed = True
            self._items.append(BadFrame(f"a frame body is 1 to {limit} bytes, not {len(body)}"))
        else:
            self._items.extend(self.decoder.feed(len(body).to_bytes(2, "little") + body))
        if len(self._items) > ITEMS_HIGH:
            self._pause()
        self._wake.set()

    def feed_error(self, error: ScalarError) -> None:
        """Something the transport could not turn into a frame (answered like one)."""
        if not (self._lost or self._closing):
            self._items.append(error)
            self._wake.set()

    def drained(self) -> None:
        """The sink's buffer fell: we may read again."""
        if self._lost:
            return
        self._sink_bytes = self.sink.buffered()
        if self.output <= self._half:
            self._below_half()

    def lost(self) -> None:
        """The peer is gone; the session ends."""
        if self._lost:
            return
        self._lost = True
        self._low.set()
        self._wake.set()
        self.host.forget(self)

    def _below_half(self) -> None:
        if not self._low.is_set():
            self._low.set()
            self._wake.set()

    def _pause(self) -> None:
        if self._reading:
            self._reading = False
            self.sink.pause_reading()

    def _maybe_resume(self) -> None:
        if (
            not self._reading
            and self._low.is_set()
            and len(self._raw) <= RAW_HIGH // 2
            and len(self._items) <= ITEMS_HIGH // 2
            and not (self._lost or self._closing)
        ):
            self._reading = True
            self.sink.resume_reading()

    # --- the session's task -----------------------------------------------------------------

    def _next(self) -> CborMap | ScalarError | None:
        if not self._items and self._raw and not self.decoder.failed:
            chunk = bytes(self._raw[:DECODE_SLICE])
            del self._raw[:DECODE_SLICE]
            decoded = self.decoder.feed(chunk)
            self._items.extend(decoded)
            if decoded and isinstance(decoded[-1], BadFrame):
                self._raw.clear()  # nothing after a bad header can be read
        return self._items.popleft() if self._items else None

    def _over(self) -> bool:
        return self._lost or self._closing or self.session.closing

    async def run(self) -> None:
        """Handle requests until the session or the connection ends."""
        session = self.session
        try:
            while not self._over():
                if not self._low.is_set():
                    self._pause()  # above half the bound: read no further requests
                    await self._low.wait()
                    continue
                item = self._next()
                if item is None:
                    self._maybe_resume()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await session.handle(item)
                self._maybe_resume()
                await asyncio.sleep(0)  # one connection never holds the loop
        finally:
            session.closed()
            if not self._lost:
                self.close()
            self.finished.set()
            log.debug("%s connection from %s ended", self.kind, self.remote)
