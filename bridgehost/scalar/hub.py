"""Topic routing and fan-out: the delivery service.

An event is encoded once; each subscriber gets the same bytes appended to its
output buffer (`Peer.push`), and the server flushes every buffer once per
loop iteration. Commit, then deliver (§10): a published event gets the
topic's next seq at once, but it is fanned out, and echoed to its publisher,
only when its group commit is done (`journal.GroupCommit`), in seq order
together with everything else of that commit. A failed commit is never
delivered: its publishers get `internal`, and the seqs it would have used are
given out again. `Topic.seq` is what subscribers have seen (committed);
`Topic.assigned` runs ahead of it by the events in flight. Fan-out itself
never awaits, so one slow subscriber never holds back anyone else.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import cbor2

from . import ids
from .events import EncodedEvent, Event
from .ids import Kind
from .journal import GroupCommit, Journal, Pending, StoredEvent
from .messages import Meta, Msg, TopicInfo
from .nonces import NonceMap
from .settings import Clock, ServerSettings
from .wire import frame

Ack = Callable[[EncodedEvent | None], None]
"""How a publisher hears of its event: called once, in seq order with the fan-out,
with the committed event (to echo) or None when it could not be stored."""


def is_guest(ident: str) -> bool:
    """Guests are `guest-<hex>@domain`; user names starting with `guest-` are refused."""
    return ident.startswith("guest-")


class Peer(Protocol):
    """One connection as the hub sees it."""

    @property
    def id(self) -> str: ...

    def push(self, data: bytes) -> None:
        """Queue one complete frame for this connection (flushed once per tick)."""


@dataclass(slots=True, eq=False)
class Topic:
    name: str
    kind: Kind
    seq: int = 0
    """The last committed seq: what subscribers have seen and `meta` says."""
    assigned: int = 0
    """The last seq given to an event, committed or still in flight (>= seq)."""
    title: str | None = None
    subs: dict[Peer, None] = field(default_factory=dict)
    """Subscribed connections in subscription order (an ordered set)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A `msg` turned into its event, not yet sequenced into the topic."""

    topic: Topic
    event: EncodedEvent
    time: int
    echo: bytes
    sender: str = ""
    nonce: str | None = None
    title: str | None = None
    """The channel's new title when this is a `topic` event (§11)."""
    seq: int = 0
    """The seq the event was built with: the topic's next when it was prepared."""


@dataclass(slots=True)
class Publication:
    """What a (sender, nonce) became (§10): the event, or where it is kept on disk."""

    topic: str
    seq: int
    event: EncodedEvent | None
    """The event's bytes while they are not on disk yet (or never will be)."""
    committed: asyncio.Future[None] | None
    """The commit still running; None once it is done."""


class Hub:
    def __init__(self, settings: ServerSettings, store: Journal, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.commits = GroupCommit(store)
        self.nonces: NonceMap[Publication] = NonceMap()
        self.topics: dict[str, Topic] = {}
        self._channels: list[str] = []
        """Sorted channel names, for `topics` listings."""
        self._online: dict[str, int] = {}
        self.published = 0
        self.delivered = 0

    async def load(self) -> None:
        for name, (seq, title) in (await self.store.load_topics()).items():
            if not seq and title is None:
                continue  # an empty channel an older version kept for a mere `sub`
            if is_guest(name):
                continue  # a past guest's direct messages: that ID is gone for good
            topic = self._topic(name)
            topic.seq = topic.assigned = seq
            topic.title = title
        for name, title in self.settings.titles:
            await self._configured_title(self._topic(name), title)
        await self._load_nonces()
        self.commits.start()

    async def flush(self) -> None:
        """Wait until every event published so far is committed (and delivered) or failed."""
        await self.commits.flush()

    async def close(self) -> None:
        """Commit and deliver what is in flight, then stop the commit writer."""
        await self.commits.close()

    async def _load_nonces(self) -> None:
        """Publishes of the last minutes, so a client re-sending after our restart finds
        its event (§10); the events themselves are read from disk when asked for."""
        now_ms, mono = self.clock.now_ms(), self.clock.monotonic()
        rows = await self.store.recent_nonces(
            now_ms - int(self.nonces.ttl * 1000), self.nonces.total
        )
        for sender, nonce, topic, seq, time in reversed(rows):
            age = max(0.0, (now_ms - time) / 1000)
            self.nonces.put(sender, nonce, Publication(topic, seq, None, None), mono - age)

    async def _configured_title(self, topic: Topic, title: str) -> None:
        """A title from the config is where a channel starts; a `topic` event may change
        it later, and that change survives restarts until the config's title changes."""
        key = f"config-title:{topic.name}"
        applied = await self.store.kv_get("hub", key)
        if applied == title.encode() and topic.title is not None:
            return
        topic.title = title
        await self.store.ensure_topic(topic.name, title)
        await self.store.kv_set("hub", key, title.encode())

    def _topic(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            topic = self._adopt(Topic(name, ids.parse(name).kind))
        return topic

    def _adopt(self, topic: Topic) -> Topic:
        """Keep a new topic in memory (and in the channel listing)."""
        self.topics[topic.name] = topic
        if topic.kind is Kind.CHANNEL:
            bisect.insort(self._channels, topic.name)
        return topic

    def has_topic(self, name: str) -> bool:
        """Whether the topic is in memory (subscribing to one that is not makes it)."""
        return name in self.topics

    @property
    def channel_count(self) -> int:
        """Channels kept in memory: with events, configured, or subscribed to now."""
        return len(self._channels)

    def _release(self, topic: Topic) -> None:
        """Forget a topic nobody needs: no subscriber, no event, no title (§10: a channel
        exists from its first event; a `sub` alone is remembered while it lasts)."""
        if topic.subs or topic.assigned or topic.title is not None:
            return
        if self.topics.get(topic.name) is not topic:
            return
        del self.topics[topic.name]
        if topic.kind is Kind.CHANNEL:
            i = bisect.bisect_left(self._channels, topic.name)
            if i < len(self._channels) and self._channels[i] == topic.name:
                del self._channels[i]

    # --- subscriptions --------------------------------------------------------

    def history_for(self, peer_id: str, topic: Topic) -> bool:
        """Whether `catchup` by this session on the topic answers `ok`."""
        return self.settings.history_keep > 0 and (
            topic.kind is Kind.CHANNEL or topic.name == peer_id
        )

    def subscribe(self, peer: Peer, name: str, rid: int | None) -> Meta:
        topic = self._topic(name)
        topic.subs[peer] = None
        return self.meta(peer, topic, rid)

    def meta(self, peer: Peer, topic: Topic, rid: int | None) -> Meta:
        return Meta(
            topic=topic.name,
            seq=topic.seq,
            subscribers=len(topic.subs),
            history=self.history_for(peer.id, topic),
            title=topic.title,
            rid=rid,
        )

    def unsubscribe(self, peer: Peer, name: str) -> None:
        topic = self.topics.get(name)
        if topic is not None:
            topic.subs.pop(peer, None)
            self._release(topic)

    def is_subscribed(self, peer: Peer, name: str) -> bool:
        topic = self.topics.get(name)
        return topic is not None and peer in topic.subs

    # --- publishing -------------------------------------------------------------

    def prepare(self, sender: str, msg: Msg, rid: int | None) -> Prepared:
        """Build the event with the topic's next seq, without consuming it (nor keeping a
        new topic: `publish` does, so a refused request leaves nothing behind)."""
        topic = self.topics.get(msg.topic) or Topic(msg.topic, ids.parse(msg.topic).kind)
        now = self.clock.now_ms()
        core = Event.core_map(
            topic=topic.name,
            seq=topic.assigned + 1,  # the same below
            sender=sender,
            time=now,
            body=msg.body,
            kind=msg.kind,
            nick=msg.nick,
            reply_to=msg.reply_to,
            ctype=msg.ctype,
            origin=msg.origin,
            target=msg.target,
        )
        event = EncodedEvent.build(core)
        title = msg.body if msg.kind == "topic" else None
        seq = topic.assigned + 1
        return Prepared(topic, event, now, event.frame_body(rid), sender, msg.nonce, title, seq)

    @property
    def backlog_full(self) -> bool:
        """Publishers should wait for `room()` before preparing another event."""
        return self.commits.full

    async def room(self) -> None:
        """Back-pressure: wait while too many events are waiting for their commit."""
        await self.commits.room()

    def publish(self, peer: Peer, prepared: Prepared, ack: Ack) -> None:
        """Give the prepared event its seq and queue it for commit; once committed it is
        fanned out and `ack` is called (in seq order), or `ack(None)` if it failed.

        Call right after `prepare`, with no await in between: the seq is the topic's.
        """
        topic = prepared.topic
        if prepared.seq != topic.assigned + 1 or self.topics.get(topic.name, topic) is not topic:
            raise RuntimeError(
                f"{topic.name}: seq {prepared.seq} was prepared, next is now "
                f"{topic.assigned + 1} (an await between prepare and publish?)"
            )
        event = StoredEvent(
            topic.name,
            prepared.seq,
            prepared.time,
            prepared.event.stored,
            prepared.sender,
            prepared.nonce,
            prepared.title,
        )
        pub: Publication | None = None

        def settle(committed: bool) -> None:
            if committed:
                self._deliver(peer, prepared, event.seq)
                ack(prepared.event)
            else:
                topic.assigned = topic.seq  # later events of the topic failed with it
                self._release(topic)  # a new topic whose first event failed is not kept
                ack(None)
            if pub is not None:
                self._settle(prepared.sender, prepared.nonce or "", pub, committed)

        self.commits.add(Pending(event, settle))
        if self.topics.get(topic.name) is not topic:
            self._adopt(topic)  # a new topic is kept from its first queued event
        topic.assigned = event.seq
        if prepared.nonce is not None:
            pub = self._remember(prepared.sender, prepared.nonce, topic, prepared.event)

    def _deliver(self, source: Peer, prepared: Prepared, seq: int) -> None:
        """A committed event: it is now the topic's last, and goes to every subscriber."""
        topic = prepared.topic
        topic.seq = seq
        if prepared.title is not None:
            topic.title = prepared.title
        self.published += 1
        data = frame(prepared.event.frame_body())
        self._fan_out(topic, source, data, direct=topic.kind is not Kind.CHANNEL)

    def _fan_out(self, topic: Topic, source: Peer | None, data: bytes, *, direct: bool) -> None:
        n = 0
        for sub in topic.subs:
            if sub is source or (direct and sub.id != topic.name):
                continue
            sub.push(data)
            n += 1
        self.delivered += n

    # --- idempotent publish (§10) ---------------------------------------------------

    def _remember(self, sender: str, nonce: str, topic: Topic, event: EncodedEvent) -> Publication:
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pub = Publication(topic.name, topic.assigned, event, committed)
        self.nonces.put(sender, nonce, pub, self.clock.monotonic(), len(event.pairs))
        return pub

    def _settle(self, sender: str, nonce: str, pub: Publication, committed: bool) -> None:
        future, pub.committed = pub.committed, None
        if not committed:
            if self.nonces.get(sender, nonce, self.clock.monotonic()) is pub:
                self.nonces.discard(sender, nonce)
            if future is not None:
                future.set_exception(RuntimeError("the event could not be stored"))
                future.exception()  # retrieved by whoever awaits it; don't warn
            return
        if future is not None:
            future.set_result(None)
        if self.settings.history_keep > 0:
            pub.event = None  # on disk now: read back if it is ever asked for again
            self.nonces.set_weight(sender, nonce, pub, 0)

    def publication(self, sender: str, nonce: str) -> Publication | None:
        """What an earlier `msg` of `sender` with this nonce became, if remembered."""
        return self.nonces.get(sender, nonce, self.clock.monotonic())

    async def original(self, pub: Publication) -> EncodedEvent | None:
        """The event a remembered publish made, once committed; None if no longer kept.
        Raises what the commit raised if it failed."""
        if pub.committed is not None:
            await asyncio.shield(pub.committed)
        if pub.event is not None:
            return pub.event
        data = await self.store.event_at(pub.topic, pub.seq)
        return None if data is None else EncodedEvent.from_stored(data)

    async def find_event(self, topic: str, event_id: bytes) -> Event | None:
        """The event with this id in this topic, if the server still has it (§11)."""
        data = await self.store.event_by_id(topic, event_id)
        return None if data is None else Event.from_map(cbor2.loads(data))

    # --- presence ------------------------------------------------------------------

    def connected(self, ident: str) -> None:
        count = self._online.get(ident, 0)
        self._online[ident] = count + 1
        if count == 0:
            self._presence(ident, "online")

    def disconnected(self, peer: Peer, subscriptions: Iterable[str]) -> None:
        for name in subscriptions:
            self.unsubscribe(peer, name)
        count = self._online.get(peer.id, 0) - 1
        if count > 0:
            self._online[peer.id] = count
        elif count == 0:
            del self._online[peer.id]
            self._presence(peer.id, "offline")
            self._forget_guest(peer.id)

    def _forget_guest(self, ident: str) -> None:
        """A guest's ID is never given out again: once it is offline its topic (direct
        messages it got) is dropped from memory, so guests coming and going cannot make
        the server hold ever more topics. Its history stays on disk, as any topic's."""
        topic = self.topics.get(ident)
        if (
            topic is not None
            and is_guest(ident)
            and not topic.subs
            and topic.assigned == topic.seq  # nothing of it still being committed
        ):
            del self.topics[ident]

    def is_online(self, ident: str) -> bool:
        return ident in self._online

    def _presence(self, ident: str, body: str) -> None:
        topic = self.topics.get(ident)
        if topic is None or not topic.subs:
            return
        core = Event.core_map(
            topic=ident, seq=0, sender=ident, time=self.clock.now_ms(), body=body, kind="presence"
        )
        self._fan_out(topic, None, frame(EncodedEvent.build(core).frame_body()), direct=False)

    # --- listing -----------------------------------------------------------------

    def list_topics(
        self, prefix: str | None, offset: int, limit: int
    ) -> tuple[int, list[TopicInfo]]:
        """(total after the filter, at most `limit` items from `offset` on, in topic order)."""
        names = self._channels
        if prefix:
            start = bisect.bisect_left(names, prefix)
            end = start
            while end < len(names) and names[end].startswith(prefix):
                end += 1
            names = names[start:end]
        items = [
            TopicInfo(n, len(self.topics[n].subs), self.topics[n].title)
            for n in names[offset : offset + limit]
        ]
        return len(names), items
