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
import contextlib
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..config import Account, Bridge, Config, Link
from ..runtime import SYSTEM_CLOCK, Backoff, Clock, wait_for
from ..scalar.client import Client, new_nonce
from ..scalar.errors import ConnectionClosed, RateLimited, ScalarError
from ..scalar.events import Event
from ..scalar.store import KeyValue
from .state import LinkState

log = logging.getLogger(__name__)


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


@runtime_checkable
class LocalKeyValue(KeyValue, Protocol):
    """A store that writes through at once (an adapter process's own file)."""

    def set_now(self, key: str, value: bytes) -> None:
        """Write and commit before returning: still there if the process is killed next."""


Settle = Callable[[Link, Event], Awaitable[bool | None]]
"""Whether an event a link was sending when the process died did reach the remote
side: True (it did), False (it did not) or None (cannot tell: it is sent again)."""


class Adapter(Protocol):
    name: str

    async def run(self) -> None:
        """Run until cancelled; the app restarts it with backoff if it raises."""

    def status(self) -> list[LinkState]: ...


_POSITION = "position:"
"""kv key prefix: a link's delivery position (seq of the last event it sent)."""
_SENDING = "sending:"
"""kv key prefix: the seq of the event a link began to send (with a `LocalKeyValue`)."""


def _relays(origin: str, event: Event) -> bool:
    """Whether the link named `origin` relays `event`: not presence, not its own."""
    return event.kind != "presence" and event.origin != origin


def origin_of(account: Account, target: str) -> str:
    """How a link names itself in `origin`, e.g. `irc:libera/#python`."""
    return f"{account.type}:{account.name}/{target}"


PUBLISH_ATTEMPTS = 50


def hub_backoff() -> Backoff:
    """Reconnecting to the in-process hub after a session ended."""
    return Backoff(0.5, 5.0, healthy_after=10.0)


async def publish_retrying(
    connected: asyncio.Event,
    current: Callable[[], Client | None],
    send: Callable[[Client], Awaitable[Event]],
) -> Event | None:
    """Publish through whichever hub session is current, waiting out a lost
    session (with backoff) and the hub's rate limit (as long as it says).

    None when the hub stayed unavailable for PUBLISH_ATTEMPTS tries; a refusal
    (any other ScalarError) propagates.
    """
    backoff = Backoff(0.1, 5.0, jitter=False)
    for _ in range(PUBLISH_ATTEMPTS):
        await connected.wait()
        client = current()
        if client is None:
            continue
        try:
            return await send(client)
        except RateLimited as exc:
            await asyncio.sleep(exc.retry_after / 1000)
        except ConnectionClosed:
            await backoff.wait()
    return None


class OutQueue:
    """Bounded FIFO of events waiting for one link; peek, send, then pop."""

    def __init__(
        self,
        status: LinkState,
        maxlen: int,
        on_done: Callable[[], None] | None = None,
        on_begin: Callable[[Event], None] | None = None,
    ) -> None:
        self.status = status
        self.maxlen = maxlen
        self.on_done = on_done
        """Called when the head event is done with (the link's position moved)."""
        self.on_begin = on_begin
        """Called with the head event when a sender takes it (it is about to go out)."""
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
        head = self._items[0]
        if self.on_begin is not None:
            self.on_begin(head)
        return head

    def head(self, count: int) -> list[Event]:
        """The first `count` events waiting (fewer when fewer wait), not removed."""
        return list(itertools.islice(self._items, count))

    def pop(self) -> None:
        """The head event is done with (sent, or given up on)."""
        event = self._items.popleft()
        self.delivered = max(self.delivered, event.seq)
        self.status.queued = len(self._items)
        if self.on_done is not None:
            self.on_done()

    def sent(self) -> None:
        """The head event went out: pop it and count it (with its latency)."""
        event = self._items[0]
        self.pop()
        self.status.relayed(event.time)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True, eq=False)
class BridgedLink:
    """One link of this adapter as the Scalar side routes to it."""

    bridge: Bridge
    link: Link
    status: LinkState
    queue: OutQueue


class ScalarSide:
    """The adapter's session with the hub: subscribe to bridged channels, route
    events to per-link queues, publish what comes from the remote side."""

    def __init__(
        self,
        ctx: AdapterContext,
        queue_size: int,
        *,
        settle: Settle | None = None,
        own_too: bool = False,
    ) -> None:
        self.ctx = ctx
        self.settle = settle
        self.own_too = own_too
        """Its links also show what they published themselves (the fs adapter's `out`
        log): after a restart, a link's own events it had not shown are sent too."""
        """How this adapter tells whether an event it was sending when it died went out."""
        self._local = ctx.kv if isinstance(ctx.kv, LocalKeyValue) else None
        """With a store that writes through (an adapter process), a link's position is
        written right after each send and the event it begins right before: a kill
        leaves at most that one event in doubt, which `settle` then decides."""
        self._sending: dict[str, int] = {}
        self.client: Client | None = None
        self.links: dict[str, BridgedLink] = {}
        """By origin (see `origin_of`)."""
        self._moved = asyncio.Event()
        """A link's position moved: save it now, so a crash right after a send does
        not send it again (a child process killed mid-stream resumes where it was)."""
        for bridge, link in ctx.links:
            st = LinkState(ctx.account.name, link.target, bridge.channel, link.direction)
            origin = origin_of(ctx.account, link.target)
            self.links[origin] = BridgedLink(
                bridge,
                link,
                st,
                OutQueue(
                    st,
                    queue_size,
                    functools.partial(self._done, origin),
                    functools.partial(self._begin, origin),
                ),
            )
        self.clock: Clock = SYSTEM_CLOCK
        self._last_seq: dict[str, int] = {}
        """Per channel, the seq of the last delivery routed (the replay check)."""
        self._own_seqs: dict[str, set[int]] = {}
        """Per channel, seqs of our own events routed but not yet passed by a delivery."""
        self._saved: dict[str, int] = {}
        self._connected = asyncio.Event()

    def origin(self, link: Link) -> str:
        return origin_of(self.ctx.account, link.target)

    def queue(self, link: Link) -> OutQueue:
        return self.links[self.origin(link)].queue

    def status_of(self, link: Link) -> LinkState:
        return self.links[self.origin(link)].status

    def statuses(self) -> list[LinkState]:
        return [entry.status for entry in self.links.values()]

    async def run(self) -> None:
        """Hold a session to the hub; re-subscribe and catch up after any loss.

        Each link's delivery position is saved in the adapter's state, so that
        what a link had not sent when the process stopped (its remote side was
        down, say) is sent after the next start instead of being lost.
        """
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._save_positions_when_moved(1.0))
                await self._hold_session()
        finally:
            await self._save_positions()

    async def _hold_session(self) -> None:
        backoff = hub_backoff()
        while True:
            client = await self.ctx.connect()
            try:
                channels = sorted(
                    {e.bridge.channel for e in self.links.values() if e.link.outbound}
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
                backoff.started()
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
            await backoff.wait()

    async def _resume_links(self, client: Client, channel: str, head: int) -> None:
        """First session of this process: queue what each link of `channel` missed
        since its saved position (none saved: a first start replays nothing)."""
        for origin, entry in self.links.items():
            if entry.bridge.channel != channel or not entry.link.outbound:
                continue
            queue = entry.queue
            raw = await self.ctx.kv.get(_POSITION + origin)
            saved = int(raw) if raw else head
            if raw is None:  # a first start: from here on, nothing may be lost
                await self.ctx.kv.set(_POSITION + origin, str(head).encode())
                self._saved[origin] = head
            raw_sending = await self.ctx.kv.get(_SENDING + origin)
            in_doubt = int(raw_sending) if raw_sending else 0
            queue.delivered = max(queue.delivered, saved)
            if saved >= head:
                continue
            missed = 0
            async for event in client.history_after(channel, saved):
                if event.seq > head:
                    break
                if not (_relays(origin, event) or (self.own_too and event.origin == origin)):
                    continue
                if event.seq == in_doubt and await self._went_out(entry, event):
                    queue.delivered = max(queue.delivered, event.seq)
                    continue
                queue.put(event)
                missed += 1
            if missed:
                log.info("link %s: %d message(s) from before the restart to send", origin, missed)

    def _begin(self, origin: str, event: Event) -> None:
        if self._local is not None and self._sending.get(origin) != event.seq:
            self._local.set_now(_SENDING + origin, str(event.seq).encode())
            self._sending[origin] = event.seq

    def _done(self, origin: str) -> None:
        if self._local is None:
            self._moved.set()
            return
        position = self._position(origin)
        if self._saved.get(origin) != position:
            self._local.set_now(_POSITION + origin, str(position).encode())
            self._saved[origin] = position

    async def _went_out(self, entry: BridgedLink, event: Event) -> bool:
        """The event a link was sending when the process died: did it go out?"""
        went = await self.settle(entry.link, event) if self.settle is not None else None
        log.info(
            "link %s: seq %d was being sent when the adapter stopped: %s",
            self.origin(entry.link),
            event.seq,
            {True: "it went out", False: "sending it", None: "cannot tell, sending it again"}[went],
        )
        return bool(went)

    def _position(self, origin: str) -> int:
        """How far a link is done: its last sent event, or, when nothing waits for
        it, everything routed so far (the rest was not for this link)."""
        entry = self.links[origin]
        if len(entry.queue):
            return entry.queue.delivered
        return max(entry.queue.delivered, self._last_seq.get(entry.bridge.channel, 0))

    async def _save_positions(self) -> None:
        for origin, entry in self.links.items():
            position = self._position(origin)
            if entry.link.outbound and position and self._saved.get(origin) != position:
                await self.ctx.kv.set(_POSITION + origin, str(position).encode())
                self._saved[origin] = position

    async def _save_positions_when_moved(self, seconds: float) -> None:
        """Save as soon as a link sent something (one write at a time: what moves
        meanwhile goes in the next), and every `seconds` for what moved silently."""
        while True:
            with contextlib.suppress(TimeoutError):
                await wait_for(self._moved.wait(), seconds)
            self._moved.clear()
            await self._save_positions()

    def _route(self, event: Event, *, own: bool = False) -> None:
        """Queue an event for every outbound link of its channel but the one it came from.

        `own` marks the echo of our own publish, which the hub does not send
        back as a delivery but other links of this adapter still need. Echoes
        and deliveries reach us by different paths (a reply and the event
        stream), so an echo may come before a delivery with a lower seq: the
        replay check (`_last_seq`) follows deliveries only, and our own seqs
        are remembered apart so that a catch-up after a lost session does not
        relay them twice.
        """
        if event.seq == 0:
            return
        topic, seq = event.topic, event.seq
        last = self._last_seq.get(topic, 0)
        if seq <= last:
            return  # routed already (a catch-up overlapping deliveries)
        mine = self._own_seqs.setdefault(topic, set())
        if own:
            mine.add(seq)
        elif seq in mine:
            mine.discard(seq)  # our own event again, in a catch-up: routed when published
            self._last_seq[topic] = seq
            return
        else:
            self._last_seq[topic] = seq
        last = self._last_seq.get(topic, 0)
        while last + 1 in mine:  # nothing of others can come between: move on
            last += 1
        self._last_seq[topic] = last
        mine.difference_update([s for s in mine if s <= last])
        for origin, entry in self.links.items():
            link = entry.link
            if entry.bridge.channel == topic and link.outbound and _relays(origin, event):
                entry.queue.put(event)

    async def publish(
        self,
        link: Link,
        *,
        nick: str,
        body: str,
        kind: str = "text",
        ctype: str | None = None,
        reply_to: bytes | None = None,
        target: bytes | None = None,
        received: float | None = None,
        nonce: str | None = None,
        retry: bool = True,
    ) -> Event | None:
        """Relay one remote message into the bridged channel (waits for the hub).

        `received` is when it arrived from the remote side (the clock's
        `monotonic()`; default now), for the link's inbound latency. `nonce`
        names the message for the hub (§10): the same remote message relayed
        twice (a replay after a restart) is published once, and so is one
        retried after a lost session. Returns the stored event, or None when
        it could not be published (logged). With `retry=False` a lost or
        missing session raises `ConnectionClosed` (the hub's rate limit
        `RateLimited`) at once, for a caller that keeps several publishes in
        flight and retries them in order.
        """
        entry = self.links[self.origin(link)]
        bridge, st = entry.bridge, entry.status
        if received is None:
            received = self.clock.monotonic()
        if not link.inbound:
            return None
        nick = nick[:64] or "?"
        origin = self.origin(link)
        nonce = nonce or new_nonce()  # the same on every try: published once (§10)

        def send(client: Client) -> Awaitable[Event]:
            return client.publish(
                bridge.channel,
                body,
                kind=kind,
                ctype=ctype,
                reply_to=reply_to,
                nick=nick,
                origin=origin,
                target=target,
                nonce=nonce,
            )

        try:
            if retry:
                event = await publish_retrying(self._connected, lambda: self.client, send)
            else:
                client = self.client
                if client is None:
                    raise ConnectionClosed("no session with the hub")
                event = await send(client)
        except (ConnectionClosed, RateLimited):
            raise
        except ScalarError as exc:
            st.error(f"hub refused a message from {nick}: {exc.code}: {exc.text}")
            return None
        if event is None:
            st.error(f"could not publish a message from {nick}: hub unavailable")
            return None
        st.published(self.clock.monotonic() - received)
        self._route(event, own=True)
        return event
