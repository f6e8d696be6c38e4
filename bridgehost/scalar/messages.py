"""Typed protocol messages (protocol §4-5): frozen dataclasses <-> CBOR maps.

`parse_request` is what a server applies to a decoded map, `parse_reply`
what a client applies; both raise the protocol's own errors (with the
request's `rid` when it is known) and nothing else. Field checks follow the
order of §9: type of every known field first (`bad-message`), identifier
syntax second (`bad-topic`). Unknown keys are ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import cbor2

from . import ids
from .errors import BadMessage, ScalarError, UnknownType
from .wire import CborMap, canonical, head, map_items

KINDS = frozenset({"text", "action", "notice", "presence"})
CTYPES = frozenset({"text/plain", "text/markdown"})
MAX_NICK = 64
MAX_LIMIT = 1000
RID_MAX = 2**32

T = TypeVar("T")


class _Fields:
    """Reads typed fields out of one map, failing with the map's rid."""

    def __init__(self, m: CborMap) -> None:
        self.m = m
        rid = m.get("rid")
        if "rid" in m and not (type(rid) is int and 0 <= rid < RID_MAX):
            raise BadMessage("rid must be an unsigned integer below 2^32")
        self.rid: int | None = rid

    def nested(self, m: CborMap) -> _Fields:
        """Typed getters over a map inside this one, failing with this map's rid."""
        inner = _Fields({})
        inner.m, inner.rid = m, self.rid
        return inner

    def fail(self, text: str) -> BadMessage:
        return BadMessage(text, rid=self.rid)

    def _get(self, key: str, check: Callable[[Any], bool], what: str, required: bool) -> Any:
        if key not in self.m:
            if required:
                raise self.fail(f"missing field {key!r}")
            return None
        value = self.m[key]
        if not check(value):
            raise self.fail(f"field {key!r} must be {what}")
        return value

    def text(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: isinstance(v, str), "text", required)

    def integer(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: type(v) is int, "an integer", required)

    def uint(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: type(v) is int and v >= 0, "an unsigned integer", required)

    def id32(self, key: str) -> Any:
        return self._get(key, lambda v: isinstance(v, bytes) and len(v) == 32, "32 bytes", False)

    def map(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: isinstance(v, dict), "a map", required)

    def boolean(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: isinstance(v, bool), "a boolean", required)

    def array(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: isinstance(v, list), "an array", required)

    def limit(self, default: int) -> int:
        value = self.integer("limit")
        if value is None:
            return default
        if value <= 0:
            raise self.fail("limit must be at least 1")
        return int(min(value, MAX_LIMIT))

    def topic(self, key: str, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return ids.normalise(value)
        except ScalarError as exc:
            raise exc.with_rid(self.rid) from None


def _omit_none(m: dict[str, Any]) -> CborMap:
    return {k: v for k, v in m.items() if v is not None}


# --- events -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """What subscribers get: in `event` frames and in `history` replies."""

    id: bytes
    topic: str
    seq: int
    sender: str
    time: int
    body: str
    kind: str = "text"
    nick: str | None = None
    reply_to: bytes | None = None
    ctype: str | None = None
    origin: str | None = None

    @staticmethod
    def core_map(
        *,
        topic: str,
        seq: int,
        sender: str,
        time: int,
        body: str,
        kind: str = "text",
        nick: str | None = None,
        reply_to: bytes | None = None,
        ctype: str | None = None,
        origin: str | None = None,
    ) -> CborMap:
        """The map an id is computed over: absent optionals omitted, never null."""
        return _omit_none(
            {
                "topic": topic,
                "seq": seq,
                "from": sender,
                "time": time,
                "kind": kind,
                "body": body,
                "nick": nick,
                "reply_to": reply_to,
                "ctype": None if ctype == "text/plain" else ctype,
                "origin": origin,
            }
        )

    def to_map(self) -> CborMap:
        m = Event.core_map(
            topic=self.topic,
            seq=self.seq,
            sender=self.sender,
            time=self.time,
            body=self.body,
            kind=self.kind,
            nick=self.nick,
            reply_to=self.reply_to,
            ctype=self.ctype,
            origin=self.origin,
        )
        m["id"] = self.id
        return m

    def expected_id(self) -> bytes:
        m = self.to_map()
        del m["id"]
        return compute_id(m)

    @property
    def content_type(self) -> str:
        return self.ctype or "text/plain"

    @classmethod
    def from_map(cls, m: CborMap) -> Event:
        f = _Fields(m)
        ident = f._get("id", lambda v: isinstance(v, bytes) and len(v) == 32, "32 bytes", True)
        kind = f.text("kind") or "text"
        return cls(
            id=ident,
            topic=f.text("topic", True),
            seq=f.uint("seq", True),
            sender=f.text("from", True),
            time=f.integer("time", True),
            body=f.text("body", True),
            kind=kind,
            nick=f.text("nick"),
            reply_to=f.id32("reply_to"),
            ctype=f.text("ctype"),
            origin=f.text("origin"),
        )


def compute_id(core: CborMap) -> bytes:
    return hashlib.sha256(canonical(core)).digest()


# --- requests (client -> server) --------------------------------------------


class Message:
    """Base of every typed message; `t` is the wire discriminator."""

    t: ClassVar[str]
    rid: int | None

    def to_map(self) -> CborMap:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Ident(Message):
    t: ClassVar[str] = "ident"
    v: int = 1
    id: str | None = None
    method: str | None = None
    secret: str | None = field(default=None, repr=False)
    client: str | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        auth = None if self.method is None else {"method": self.method, "secret": self.secret}
        return _omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "v": self.v,
                "id": self.id,
                "auth": auth,
                "client": self.client,
            }
        )

    @classmethod
    def parse(cls, f: _Fields) -> Ident:
        v = f.integer("v", True)
        ident = f.text("id")
        auth = f.map("auth")
        client = f.text("client")
        method = secret = None
        if auth is not None:
            method, secret = auth.get("method"), auth.get("secret")
            if not isinstance(method, str) or not isinstance(secret, str):
                raise f.fail("auth must be {method: text, secret: text}")
        return cls(v=v, id=ident, method=method, secret=secret, client=client, rid=f.rid)


@dataclass(frozen=True, slots=True)
class Sub(Message):
    t: ClassVar[str] = "sub"
    topic: str
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none({"t": self.t, "rid": self.rid, "topic": self.topic})

    @classmethod
    def parse(cls, f: _Fields) -> Sub:
        topic = f.text("topic", True)
        return cls(topic=f.topic("topic", topic) or "", rid=f.rid)


@dataclass(frozen=True, slots=True)
class Unsub(Message):
    t: ClassVar[str] = "unsub"
    topic: str
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none({"t": self.t, "rid": self.rid, "topic": self.topic})

    @classmethod
    def parse(cls, f: _Fields) -> Unsub:
        topic = f.text("topic", True)
        if topic == "*":
            return cls(topic="*", rid=f.rid)
        return cls(topic=f.topic("topic", topic) or "", rid=f.rid)


@dataclass(frozen=True, slots=True)
class Msg(Message):
    t: ClassVar[str] = "msg"
    topic: str
    body: str
    kind: str = "text"
    reply_to: bytes | None = None
    ctype: str | None = None
    nick: str | None = None
    origin: str | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "topic": self.topic,
                "body": self.body,
                "kind": None if self.kind == "text" else self.kind,
                "reply_to": self.reply_to,
                "ctype": self.ctype,
                "nick": self.nick,
                "origin": self.origin,
            }
        )

    @classmethod
    def parse(cls, f: _Fields) -> Msg:
        topic = f.text("topic", True)
        body = f.text("body", True)
        kind = f.text("kind")
        kind = "text" if kind is None else kind
        reply_to = f.id32("reply_to")
        ctype = f.text("ctype")
        nick = f.text("nick")
        origin = f.text("origin")
        if kind not in KINDS:
            raise f.fail(f"kind must be one of {sorted(KINDS)}")
        if ctype is not None and ctype not in CTYPES:
            raise f.fail(f"ctype must be one of {sorted(CTYPES)}")
        if nick is not None and not 1 <= len(nick) <= MAX_NICK:
            raise f.fail(f"nick must be 1..{MAX_NICK} characters")
        if origin is not None and not 1 <= len(origin) <= 255:
            raise f.fail("origin must be 1..255 characters")
        return cls(
            topic=f.topic("topic", topic) or "",
            body=body,
            kind=kind,
            reply_to=reply_to,
            ctype=ctype,
            nick=nick,
            origin=origin,
            rid=f.rid,
        )


@dataclass(frozen=True, slots=True)
class Topics(Message):
    t: ClassVar[str] = "topics"
    offset: int = 0
    limit: int = 100
    prefix: str | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "offset": self.offset,
                "limit": self.limit,
                "prefix": self.prefix,
            }
        )

    @classmethod
    def parse(cls, f: _Fields) -> Topics:
        offset = f.uint("offset") or 0
        limit = f.limit(100)
        prefix = f.text("prefix")
        return cls(
            offset=offset, limit=limit, prefix=None if prefix is None else prefix.lower(), rid=f.rid
        )


@dataclass(frozen=True, slots=True)
class Catchup(Message):
    t: ClassVar[str] = "catchup"
    topic: str
    after: int | None = None
    before: int | None = None
    since: int | None = None
    limit: int = 50
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "topic": self.topic,
                "after": self.after,
                "before": self.before,
                "since": self.since,
                "limit": self.limit,
            }
        )

    @classmethod
    def parse(cls, f: _Fields) -> Catchup:
        topic = f.text("topic", True)
        after = f.uint("after")
        before = f.uint("before")
        since = f.integer("since")
        limit = f.limit(50)
        if sum(x is not None for x in (after, before, since)) > 1:
            raise f.fail("at most one of after, before, since")
        return cls(
            topic=f.topic("topic", topic) or "",
            after=after,
            before=before,
            since=since,
            limit=limit,
            rid=f.rid,
        )


@dataclass(frozen=True, slots=True)
class Ping(Message):
    t: ClassVar[str] = "ping"
    time: int | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none({"t": self.t, "rid": self.rid, "time": self.time})

    @classmethod
    def parse(cls, f: _Fields) -> Ping:
        return cls(time=f.integer("time"), rid=f.rid)


@dataclass(frozen=True, slots=True)
class Pong(Message):
    t: ClassVar[str] = "pong"
    time: int | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none({"t": self.t, "rid": self.rid, "time": self.time})

    @classmethod
    def parse(cls, f: _Fields) -> Pong:
        return cls(time=f.integer("time"), rid=f.rid)


@dataclass(frozen=True, slots=True)
class Bye(Message):
    t: ClassVar[str] = "bye"
    reason: str | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none({"t": self.t, "rid": self.rid, "reason": self.reason})

    @classmethod
    def parse(cls, f: _Fields) -> Bye:
        return cls(reason=f.text("reason"), rid=f.rid)


# --- replies (server -> client) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    frame: int
    rate: int
    burst: int
    subs: int


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """The server's `ident` reply."""

    t: ClassVar[str] = "ident"
    id: str
    server: str
    limits: Limits
    v: int = 1
    rid: int | None = None

    def to_map(self) -> CborMap:
        lim = self.limits
        return _omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "v": self.v,
                "id": self.id,
                "server": self.server,
                "limits": {
                    "frame": lim.frame,
                    "rate": lim.rate,
                    "burst": lim.burst,
                    "subs": lim.subs,
                },
            }
        )

    @classmethod
    def parse(cls, f: _Fields) -> Welcome:
        lf = f.nested(f.map("limits") or {})
        return cls(
            id=f.text("id", True),
            server=f.text("server") or "",
            v=f.integer("v") or 1,
            limits=Limits(**{k: lf.uint(k) or 0 for k in ("frame", "rate", "burst", "subs")}),
            rid=f.rid,
        )


@dataclass(frozen=True, slots=True)
class Meta(Message):
    t: ClassVar[str] = "meta"
    topic: str
    seq: int
    subscribers: int
    history: bool
    title: str | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "topic": self.topic,
                "seq": self.seq,
                "subscribers": self.subscribers,
                "history": self.history,
                "title": self.title,
            }
        )

    @classmethod
    def parse(cls, f: _Fields) -> Meta:
        return cls(
            topic=f.text("topic", True),
            seq=f.uint("seq", True),
            subscribers=f.uint("subscribers") or 0,
            history=bool(f.boolean("history")),
            title=f.text("title"),
            rid=f.rid,
        )


@dataclass(frozen=True, slots=True)
class Ok(Message):
    t: ClassVar[str] = "ok"
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none({"t": self.t, "rid": self.rid})

    @classmethod
    def parse(cls, f: _Fields) -> Ok:
        return cls(rid=f.rid)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    topic: str
    subscribers: int
    title: str | None = None

    def to_map(self) -> CborMap:
        return _omit_none(
            {"topic": self.topic, "subscribers": self.subscribers, "title": self.title}
        )


@dataclass(frozen=True, slots=True)
class TopicList(Message):
    """The server's `topics` reply."""

    t: ClassVar[str] = "topics"
    total: int
    offset: int
    items: tuple[TopicInfo, ...]
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "total": self.total,
                "offset": self.offset,
                "items": [i.to_map() for i in self.items],
            }
        )

    @classmethod
    def parse(cls, f: _Fields) -> TopicList:
        items = []
        for raw in f.array("items", True):
            if not isinstance(raw, dict):
                raise f.fail("items must be maps")
            item = f.nested(raw)
            items.append(
                TopicInfo(
                    item.text("topic", True), item.uint("subscribers") or 0, item.text("title")
                )
            )
        return cls(
            total=f.uint("total", True), offset=f.uint("offset") or 0, items=tuple(items), rid=f.rid
        )


@dataclass(frozen=True, slots=True)
class History(Message):
    t: ClassVar[str] = "history"
    topic: str
    status: str
    events: tuple[Event, ...]
    more: bool
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "topic": self.topic,
                "status": self.status,
                "events": [e.to_map() for e in self.events],
                "more": self.more,
            }
        )

    @classmethod
    def parse(cls, f: _Fields) -> History:
        events = []
        for raw in f.array("events", True):
            if not isinstance(raw, dict):
                raise f.fail("events must be maps")
            events.append(Event.from_map(raw))
        return cls(
            topic=f.text("topic", True),
            status=f.text("status", True),
            events=tuple(events),
            more=bool(f.boolean("more")),
            rid=f.rid,
        )


@dataclass(frozen=True, slots=True)
class EventFrame(Message):
    """An `event` frame: a delivery, or the echo of our own `msg` (with its rid)."""

    t: ClassVar[str] = "event"
    event: Event
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none({"t": self.t, "rid": self.rid, **self.event.to_map()})

    @classmethod
    def parse(cls, f: _Fields) -> EventFrame:
        return cls(event=Event.from_map(f.m), rid=f.rid)


@dataclass(frozen=True, slots=True)
class Error(Message):
    t: ClassVar[str] = "error"
    code: str
    text: str
    retry_after: int | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return _omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "code": self.code,
                "text": self.text,
                "retry_after": self.retry_after,
            }
        )

    @classmethod
    def parse(cls, f: _Fields) -> Error:
        return cls(
            code=f.text("code", True),
            text=f.text("text") or "",
            retry_after=f.uint("retry_after"),
            rid=f.rid,
        )

    @classmethod
    def of(cls, exc: ScalarError) -> Error:
        return cls(
            code=exc.code, text=exc.text, rid=exc.rid, retry_after=getattr(exc, "retry_after", None)
        )


Request = Ident | Sub | Unsub | Msg | Topics | Catchup | Ping | Pong | Bye
Reply = Welcome | Meta | Ok | TopicList | History | EventFrame | Error | Ping | Pong | Bye

_REQUESTS: dict[str, Callable[[_Fields], Request]] = {
    c.t: c.parse for c in (Ident, Sub, Unsub, Msg, Topics, Catchup, Ping, Pong, Bye)
}
_REPLIES: dict[str, Callable[[_Fields], Reply]] = {
    c.t: c.parse
    for c in (Welcome, Meta, Ok, TopicList, History, EventFrame, Error, Ping, Pong, Bye)
}


def _lookup(m: CborMap, table: dict[str, Callable[[_Fields], T]]) -> tuple[str, _Fields]:
    f = _Fields(m)
    t = m.get("t")
    if not isinstance(t, str):
        raise f.fail("missing text field 't'")
    if t not in table:
        raise UnknownType(f"unknown message type {t!r}"[:200], rid=f.rid)
    return t, f


def _parse(m: CborMap, table: dict[str, Callable[[_Fields], T]]) -> T:
    t, f = _lookup(m, table)
    return table[t](f)


def request_type(m: CborMap) -> str:
    """The `t` of a request, checked before the session state (§9 order of checks)."""
    return _lookup(m, _REQUESTS)[0]


def parse_request(m: CborMap) -> Request:
    """A decoded map from a client -> typed request (server side)."""
    return _parse(m, _REQUESTS)


def parse_reply(m: CborMap) -> Reply:
    """A decoded map from a server -> typed message (client side)."""
    return _parse(m, _REPLIES)


# --- events encoded once, delivered many times ----------------------------------

_T_EVENT = cbor2.dumps("t") + cbor2.dumps("event")
_RID_KEY = cbor2.dumps("rid")
_ID_KEY = cbor2.dumps("id")


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event's CBOR, computed once: what is stored, fanned out and echoed.

    `pairs` are the encoded key/value pairs of the event map (id first, which
    is also the canonical position), so a frame is a map header plus `t`
    (and `rid`) plus these bytes, with no re-encoding per subscriber.
    """

    id: bytes
    count: int
    pairs: bytes

    @classmethod
    def build(cls, core: CborMap) -> EncodedEvent:
        core_bytes = canonical(core)
        eid = hashlib.sha256(core_bytes).digest()
        n, pairs = map_items(core_bytes)
        return cls(eid, n + 1, _ID_KEY + cbor2.dumps(eid) + pairs)

    @property
    def stored(self) -> bytes:
        """The event map alone, as kept in history (canonical CBOR)."""
        return head(5, self.count) + self.pairs

    def frame_body(self, rid: int | None = None) -> bytes:
        if rid is None:
            return head(5, self.count + 1) + _T_EVENT + self.pairs
        return head(5, self.count + 2) + _T_EVENT + _RID_KEY + cbor2.dumps(rid) + self.pairs
