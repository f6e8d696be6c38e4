"""Topic routing and fan-out: the delivery service.

An event is encoded once; each subscriber gets the same bytes appended to its
output buffer (`Peer.push`), and the server flushes every buffer once per
loop iteration. Fan-out happens as soon as the event has its seq, before the
disk commit; the publisher's echo waits for the commit (it is the
acknowledgement). The hub never awaits, so one slow subscriber or a slow
disk never holds back anyone else.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import cbor2

from . import ids
from .events import EncodedEvent, Event
from .ids import Kind
from .messages import Meta, Msg, TopicInfo
from .nonces import NonceMap
from .settings import Clock, ServerSettings
from .store import MAX_UNCOMMITTED, Store, StoredEvent
from .wire import frame


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
    def __init__(self, settings: ServerSettings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.nonces: NonceMap[Publication] = NonceMap()
        self.topics: dict[str, Topic] = {}
        self._channels: list[str] = []
        """Sorted channel names, for `topics` listings."""
        self._online: dict[str, int] = {}
        self.published = 0
        self.delivered = 0

    async def load(self) -> None:
        for name, (seq, title) in (await self.store.load_topics()).items():
            topic = self._topic(name)
            topic.seq, topic.title = seq, title
        for name, title in self.settings.titles:
            await self._configured_title(self._topic(name), title)
        await self._load_nonces()

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
            topic = Topic(name, ids.parse(name).kind)
            self.topics[name] = topic
            if topic.kind is Kind.CHANNEL:
                bisect.insort(self._channels, name)
        return topic

    # --- subscriptions --------------------------------------------------------

    def history_for(self, peer_id: str, topic: Topic) -> bool:
        """Whether `catchup` by this session on the topic answers `ok`."""
        return self.settings.history_keep > 0 and (
            topic.kind is Kind.CHANNEL or topic.name == peer_id
        )

    def subscribe(self, peer: Peer, name: str, rid: int | None) -> Meta:
        existed = name in self.topics
        topic = self._topic(name)
        topic.subs[peer] = None
        if not existed and topic.kind is Kind.CHANNEL:
            self._persist_topic(topic)
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

    def _persist_topic(self, topic: Topic) -> None:
        """Remember a new channel (committed with the next batch; nobody waits on it)."""
        self.store.append(None, topic.name, topic.seq)

    def unsubscribe(self, peer: Peer, name: str) -> None:
        topic = self.topics.get(name)
        if topic is not None:
            topic.subs.pop(peer, None)

    def is_subscribed(self, peer: Peer, name: str) -> bool:
        topic = self.topics.get(name)
        return topic is not None and peer in topic.subs

    # --- publishing -------------------------------------------------------------

    def prepare(self, sender: str, msg: Msg, rid: int | None) -> Prepared:
        """Build the event with the topic's next seq, without consuming it."""
        topic = self._topic(msg.topic)
        now = self.clock.now_ms()
        core = Event.core_map(
            topic=topic.name,
            seq=topic.seq + 1,
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
        return Prepared(topic, event, now, event.frame_body(rid), sender, msg.nonce, title)

    def publish(self, peer: Peer, prepared: Prepared) -> asyncio.Future[None]:
        """Sequence, fan out, and queue for commit; the future is the commit."""
        topic = prepared.topic
        topic.seq += 1
        early = self.store.uncommitted < MAX_UNCOMMITTED
        stored = StoredEvent(
            topic.name,
            topic.seq,
            prepared.time,
            prepared.event.stored,
            prepared.sender,
            prepared.nonce,
            prepared.title,
        )
        if prepared.title is not None:
            topic.title = prepared.title
        committed = self.store.append(stored, topic.name, topic.seq)
        if prepared.nonce is not None:
            self._remember(prepared.sender, prepared.nonce, topic, prepared.event, committed)
        self.published += 1
        data = frame(prepared.event.frame_body())
        if early:
            self._fan_out(topic, peer, data, direct=topic.kind is not Kind.CHANNEL)
        else:
            committed.add_done_callback(
                lambda _: self._fan_out(topic, peer, data, direct=topic.kind is not Kind.CHANNEL)
            )
        return committed

    def _fan_out(self, topic: Topic, source: Peer | None, data: bytes, *, direct: bool) -> None:
        n = 0
        for sub in topic.subs:
            if sub is source or (direct and sub.id != topic.name):
                continue
            sub.push(data)
            n += 1
        self.delivered += n

    # --- idempotent publish (§10) ---------------------------------------------------

    def _remember(
        self,
        sender: str,
        nonce: str,
        topic: Topic,
        event: EncodedEvent,
        committed: asyncio.Future[None],
    ) -> None:
        pub = Publication(topic.name, topic.seq, event, committed)
        self.nonces.put(sender, nonce, pub, self.clock.monotonic(), len(event.pairs))

        def settle(fut: asyncio.Future[None]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                if self.nonces.get(sender, nonce, self.clock.monotonic()) is pub:
                    self.nonces.discard(sender, nonce)
                return
            pub.committed = None
            if self.settings.history_keep > 0:
                pub.event = None  # on disk now: read back if it is ever asked for again
                self.nonces.set_weight(sender, nonce, pub, 0)

        committed.add_done_callback(settle)

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
