"""Typed protocol messages (protocol §4-5): frozen dataclasses <-> CBOR maps.

`parse_request` is what a server applies to a decoded map, `parse_reply`
what a client applies; both raise the protocol's own errors (with the
request's `rid` when it is known) and nothing else. Field checks follow the
order of §9: type of every known field first (`bad-message`), identifier
syntax second (`bad-topic`). Unknown keys are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from .errors import ScalarError, UnknownType
from .events import CTYPES, KINDS, MAX_REACTION, MEMBERSHIP, OPTIONAL_BODY, TARGETED, Event
from .fields import Fields, omit_none
from .wire import CborMap

MAX_NICK = 64
MAX_NONCE = 64
"""Largest `msg.nonce` in UTF-8 bytes (§10)."""

T = TypeVar("T")


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
        return omit_none(
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
    def parse(cls, f: Fields) -> Ident:
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
        return omit_none({"t": self.t, "rid": self.rid, "topic": self.topic})

    @classmethod
    def parse(cls, f: Fields) -> Sub:
        topic = f.text("topic", True)
        return cls(topic=f.topic("topic", topic) or "", rid=f.rid)


@dataclass(frozen=True, slots=True)
class Unsub(Message):
    t: ClassVar[str] = "unsub"
    topic: str
    rid: int | None = None

    def to_map(self) -> CborMap:
        return omit_none({"t": self.t, "rid": self.rid, "topic": self.topic})

    @classmethod
    def parse(cls, f: Fields) -> Unsub:
        topic = f.text("topic", True)
        if topic == "*":
            return cls(topic="*", rid=f.rid)
        return cls(topic=f.topic("topic", topic) or "", rid=f.rid)


@dataclass(frozen=True, slots=True)
class Msg(Message):
    """A publish request; `target` and `nonce` are §11 and §10."""

    t: ClassVar[str] = "msg"
    topic: str
    body: str
    kind: str = "text"
    reply_to: bytes | None = None
    ctype: str | None = None
    nick: str | None = None
    origin: str | None = None
    target: bytes | None = None
    nonce: str | None = None
    """Chosen by the client; a repeated (sender, nonce) returns the first event (§10)."""
    rid: int | None = None

    def to_map(self) -> CborMap:
        return omit_none(
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
                "target": self.target,
                "nonce": self.nonce,
            }
        )

    @classmethod
    def parse(cls, f: Fields) -> Msg:
        topic = f.text("topic", True)
        kind = f.text("kind")
        kind = "text" if kind is None else kind
        body = f.text("body", kind not in OPTIONAL_BODY)
        reply_to = f.id32("reply_to")
        ctype = f.text("ctype")
        nick = f.text("nick")
        origin = f.text("origin")
        target = f.id32("target")
        nonce = f.text("nonce")
        if kind not in KINDS:
            raise f.fail(f"kind must be one of {sorted(KINDS)}")
        if ctype is not None and ctype not in CTYPES:
            raise f.fail(f"ctype must be one of {sorted(CTYPES)}")
        if nick is not None and not 1 <= len(nick) <= MAX_NICK:
            raise f.fail(f"nick must be 1..{MAX_NICK} characters")
        if origin is not None and not 1 <= len(origin) <= 255:
            raise f.fail("origin must be 1..255 characters")
        if nonce is not None and not 1 <= len(nonce.encode()) <= MAX_NONCE:
            raise f.fail(f"nonce must be 1..{MAX_NONCE} bytes of UTF-8")
        if kind in TARGETED and target is None:
            raise f.fail(f"kind {kind!r} needs a target (the id of an earlier event)")
        if kind not in TARGETED and target is not None:
            raise f.fail("target is only for kinds edit, delete and react")
        if kind == "react" and not 1 <= len(body.encode()) <= MAX_REACTION:
            raise f.fail(f"a reaction key is 1..{MAX_REACTION} bytes of UTF-8")
        if kind in MEMBERSHIP and nick is None:
            raise f.fail(f"kind {kind!r} needs the nick of who joined or left")
        return cls(
            topic=f.topic("topic", topic) or "",
            body=body or "",
            kind=kind,
            reply_to=reply_to,
            ctype=ctype,
            nick=nick,
            origin=origin,
            target=target,
            nonce=nonce,
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
        return omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "offset": self.offset,
                "limit": self.limit,
                "prefix": self.prefix,
            }
        )

    @classmethod
    def parse(cls, f: Fields) -> Topics:
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
        return omit_none(
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
    def parse(cls, f: Fields) -> Catchup:
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
        return omit_none({"t": self.t, "rid": self.rid, "time": self.time})

    @classmethod
    def parse(cls, f: Fields) -> Ping:
        return cls(time=f.integer("time"), rid=f.rid)


@dataclass(frozen=True, slots=True)
class Pong(Message):
    t: ClassVar[str] = "pong"
    time: int | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return omit_none({"t": self.t, "rid": self.rid, "time": self.time})

    @classmethod
    def parse(cls, f: Fields) -> Pong:
        return cls(time=f.integer("time"), rid=f.rid)


@dataclass(frozen=True, slots=True)
class Bye(Message):
    t: ClassVar[str] = "bye"
    reason: str | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return omit_none({"t": self.t, "rid": self.rid, "reason": self.reason})

    @classmethod
    def parse(cls, f: Fields) -> Bye:
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
        return omit_none(
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
    def parse(cls, f: Fields) -> Welcome:
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
        return omit_none(
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
    def parse(cls, f: Fields) -> Meta:
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
        return omit_none({"t": self.t, "rid": self.rid})

    @classmethod
    def parse(cls, f: Fields) -> Ok:
        return cls(rid=f.rid)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    topic: str
    subscribers: int
    title: str | None = None

    def to_map(self) -> CborMap:
        return omit_none(
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
        return omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "total": self.total,
                "offset": self.offset,
                "items": [i.to_map() for i in self.items],
            }
        )

    @classmethod
    def parse(cls, f: Fields) -> TopicList:
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
        return omit_none(
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
    def parse(cls, f: Fields) -> History:
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
        return omit_none({"t": self.t, "rid": self.rid, **self.event.to_map()})

    @classmethod
    def parse(cls, f: Fields) -> EventFrame:
        return cls(event=Event.from_map(f.m), rid=f.rid)


@dataclass(frozen=True, slots=True)
class Error(Message):
    t: ClassVar[str] = "error"
    code: str
    text: str
    retry_after: int | None = None
    rid: int | None = None

    def to_map(self) -> CborMap:
        return omit_none(
            {
                "t": self.t,
                "rid": self.rid,
                "code": self.code,
                "text": self.text,
                "retry_after": self.retry_after,
            }
        )

    @classmethod
    def parse(cls, f: Fields) -> Error:
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

_REQUESTS: dict[str, Callable[[Fields], Request]] = {
    c.t: c.parse for c in (Ident, Sub, Unsub, Msg, Topics, Catchup, Ping, Pong, Bye)
}
_REPLIES: dict[str, Callable[[Fields], Reply]] = {
    c.t: c.parse
    for c in (Welcome, Meta, Ok, TopicList, History, EventFrame, Error, Ping, Pong, Bye)
}


def _lookup(m: CborMap, table: dict[str, Callable[[Fields], T]]) -> tuple[str, Fields]:
    f = Fields(m)
    t = m.get("t")
    if not isinstance(t, str):
        raise f.fail("missing text field 't'")
    if t not in table:
        raise UnknownType(f"unknown message type {t!r}"[:200], rid=f.rid)
    return t, f


def _parse(m: CborMap, table: dict[str, Callable[[Fields], T]]) -> T:
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
