"""What every adapter shares: the Scalar side of a bridge, loop prevention,
bounded per-link queues, and health.

An adapter is a network client of the hub like any other: it connects
in-process as its reserved ID (`!irc-libera@example.com`), subscribes to the
bridged channels, and publishes what arrives from the remote network with
`nick` and `origin` set. The rules of design.md §3 live here once:

- an event is relayed to a link unless it came from that link (`origin`);
- presence events are never relayed;
- what a link cannot send now waits in a bounded queue, in order; overflow
  drops the oldest and is logged and counted, never silent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..config import Account, Bridge, Config, Link
from ..scalar.client import Client
from ..scalar.errors import ConnectionClosed, RateLimited, ScalarError
from ..scalar.events import Event
from ..scalar.store import KeyValue

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LinkStatus:
    """Health of one link, as `bridgehost status` and the log show it."""

    account: str
    target: str
    channel: str
    direction: str
    state: str = "starting"
    queued: int = 0
    dropped: int = 0
    relayed_in: int = 0
    relayed_out: int = 0
    last_error: str | None = None
    since: float = field(default_factory=time.time)

    def set(self, state: str, error: str | None = None) -> None:
        if state != self.state or (error and error != self.last_error):
            level = logging.WARNING if error else logging.INFO
            log.log(
                level,
                "link %s/%s <-> %s: %s%s",
                self.account,
                self.target,
                self.channel,
                state,
                f" ({error})" if error else "",
            )
            self.state, self.since = state, time.time()
        if error:
            self.last_error = error

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


class PublicLinks(Protocol):
    """Links people on remote networks can open (made by bridgehost.web.links)."""

    def media(self, server: str, media_id: str, filename: str) -> str | None:
        """A signed link to Matrix media `mxc://server/media_id`; None if malformed."""

    def message(self, event_id: bytes) -> str:
        """The page showing one event in full."""


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What the app hands an adapter: its account, its links, a way in."""

    config: Config
    account: Account
    reserved_id: str
    connect: Callable[[], Awaitable[Client]]
    """A new in-process Scalar session authenticated as `reserved_id`."""
    kv: KeyValue
    public: PublicLinks | None = None
    """Links to bridgehost's own HTTP side (long messages, media), when it has a public URL."""

    @property
    def links(self) -> list[tuple[Bridge, Link]]:
        return self.config.links_of(self.account.name)


class Adapter(Protocol):
    name: str

    async def run(self) -> None:
        """Run until cancelled; the app restarts it with backoff if it raises."""

    def status(self) -> list[LinkStatus]: ...


_POSITION = "position:"
"""kv key prefix: a link's delivery position (seq of the last event it sent)."""


def _relays(origin: str, event: Event) -> bool:
    """Whether the link named `origin` relays `event`: not presence, not its own."""
    return event.kind != "presence" and event.origin != origin


def origin_of(account: Account, target: str) -> str:
    """How a link names itself in `origin`, e.g. `irc:libera/#python`."""
    return f"{account.type}:{account.name}/{target}"


class OutQueue:
    """Bounded FIFO of events waiting for one link; peek, send, then pop."""

    def __init__(self, status: LinkStatus, maxlen: int) -> None:
        self.status = status
        self.maxlen = maxlen
        self._items: collections.deque[Event] = collections.deque()
        self._ready = asyncio.Event()
        self.delivered = 0
        """Seq of the newest event this link has sent (or given up on)."""

    def put(self, event: Event) -> None:
        if len(self._items) >= self.maxlen:
            lost = self._items.popleft()
            self.status.dropped += 1
            log.warning(
                "queue for %s/%s full (%d): dropped event seq %d of %s (%d dropped so far)",
                self.status.account,
                self.status.target,
                self.maxlen,
                lost.seq,
                lost.topic,
                self.status.dropped,
            )
        self._items.append(event)
        self.status.queued = len(self._items)
        self._ready.set()

    async def peek(self) -> Event:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items[0]

    def pop(self) -> None:
        event = self._items.popleft()
        self.delivered = max(self.delivered, event.seq)
        self.status.queued = len(self._items)

    def __len__(self) -> int:
        return len(self._items)


class ScalarSide:
    """The adapter's session with the hub: subscribe to bridged channels, route
    events to per-link queues, publish what comes from the remote side."""

    def __init__(self, ctx: AdapterContext, queue_size: int) -> None:
        self.ctx = ctx
        self.client: Client | None = None
        self.links: dict[str, tuple[Bridge, Link, LinkStatus, OutQueue]] = {}
        for bridge, link in ctx.links:
            st = LinkStatus(ctx.account.name, link.target, bridge.channel, link.direction)
            self.links[origin_of(ctx.account, link.target)] = (
                bridge,
                link,
                st,
                OutQueue(st, queue_size),
            )
        self._last_seq: dict[str, int] = {}
        self._saved: dict[str, int] = {}
        self._connected = asyncio.Event()

    def origin(self, link: Link) -> str:
        return origin_of(self.ctx.account, link.target)

    def queue(self, link: Link) -> OutQueue:
        return self.links[self.origin(link)][3]

    def status_of(self, link: Link) -> LinkStatus:
        return self.links[self.origin(link)][2]

    def statuses(self) -> list[LinkStatus]:
        return [entry[2] for entry in self.links.values()]

    async def run(self) -> None:
        """Hold a session to the hub; re-subscribe and catch up after any loss.

        Each link's delivery position is saved in the adapter's state, so that
        what a link had not sent when the process stopped (its remote side was
        down, say) is sent after the next start instead of being lost.
        """
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._save_positions_every(1.0))
                await self._hold_session()
        finally:
            await self._save_positions()

    async def _hold_session(self) -> None:
        while True:
            client = await self.ctx.connect()
            try:
                channels = sorted(
                    {b.channel for b, link, _, _ in self.links.values() if link.outbound}
                )
                for channel in channels:
                    meta = await client.sub(channel)
                    last = self._last_seq.get(channel)
                    if last is None:
                        self._last_seq[channel] = meta.seq
                        await self._resume_links(client, channel, meta.seq)
                    elif last < meta.seq:
                        async for event in client.history_after(channel, last):
                            self._route(event)
                self.client = client
                self._connected.set()
                async for event in client:
                    self._route(event)
                log.warning(
                    "%s: Scalar session ended (%s); reconnecting",
                    self.ctx.reserved_id,
                    client.close_reason,
                )
            finally:
                self._connected.clear()
                self.client = None
                await client.close()
            await asyncio.sleep(0.5)

    async def _resume_links(self, client: Client, channel: str, head: int) -> None:
        """First session of this process: queue what each link of `channel` missed
        since its saved position (none saved: a first start replays nothing)."""
        for origin, (bridge, link, _st, queue) in self.links.items():
            if bridge.channel != channel or not link.outbound:
                continue
            raw = await self.ctx.kv.get(_POSITION + origin)
            saved = int(raw) if raw else head
            queue.delivered = max(queue.delivered, saved)
            if saved >= head:
                continue
            missed = 0
            async for event in client.history_after(channel, saved):
                if event.seq > head:
                    break
                if _relays(origin, event):
                    queue.put(event)
                    missed += 1
            if missed:
                log.info("link %s: %d message(s) from before the restart to send", origin, missed)

    def _position(self, origin: str) -> int:
        """How far a link is done: its last sent event, or, when nothing waits for
        it, everything routed so far (the rest was not for this link)."""
        bridge, _, _, queue = self.links[origin]
        if len(queue):
            return queue.delivered
        return max(queue.delivered, self._last_seq.get(bridge.channel, 0))

    async def _save_positions(self) -> None:
        for origin, (_, link, _, _) in self.links.items():
            position = self._position(origin)
            if link.outbound and position and self._saved.get(origin) != position:
                await self.ctx.kv.set(_POSITION + origin, str(position).encode())
                self._saved[origin] = position

    async def _save_positions_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self._save_positions()

    def _route(self, event: Event, *, own: bool = False) -> None:
        """Queue an event for every outbound link of its channel but the one it came from.

        `own` marks the echo of our own publish, which the hub does not send
        back as a delivery but other links of this adapter still need; it can
        arrive after later deliveries, so it skips the replay check.
        """
        if event.seq == 0:
            return
        last = self._last_seq.get(event.topic, 0)
        if event.seq <= last and not own:
            return
        self._last_seq[event.topic] = max(last, event.seq)
        for origin, (bridge, link, _st, queue) in self.links.items():
            if bridge.channel == event.topic and link.outbound and _relays(origin, event):
                queue.put(event)

    async def publish(
        self,
        link: Link,
        *,
        nick: str,
        body: str,
        kind: str = "text",
        ctype: str | None = None,
        reply_to: bytes | None = None,
    ) -> Event | None:
        """Relay one remote message into the bridged channel (waits for the hub).

        Returns the stored event, or None when it could not be published (logged).
        """
        bridge, _, st, _ = self.links[self.origin(link)]
        if not link.inbound:
            return None
        nick = nick[:64] or "?"
        for attempt in range(50):
            await self._connected.wait()
            client = self.client
            if client is None:
                continue
            try:
                event = await client.publish(
                    bridge.channel,
                    body,
                    kind=kind,
                    ctype=ctype,
                    reply_to=reply_to,
                    nick=nick,
                    origin=self.origin(link),
                )
            except RateLimited as exc:
                await asyncio.sleep(exc.retry_after / 1000)
            except ConnectionClosed:
                await asyncio.sleep(0.1 * (attempt + 1))
            except ScalarError as exc:
                st.set(st.state, f"hub refused a message from {nick}: {exc.code}: {exc.text}")
                return None
            else:
                st.relayed_in += 1
                self._route(event, own=True)
                return event
        st.set(st.state, f"could not publish a message from {nick}: hub unavailable")
        return None
