"""The per-connection state machine of §6 and the order of checks of §9.

A `Session` gets decoded frames (or the decoder's errors) one at a time and
answers through its `Conn`; it never touches a socket, so the same code
serves TCP, TLS, Unix and in-process connections. Every request gets exactly
one reply; a refused request changes nothing.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import cbor2

from ..runtime import TokenBucket
from . import ids, messages
from .errors import (
    AuthFailed,
    BadFrame,
    BadMessage,
    Forbidden,
    Internal,
    NoSuchTopic,
    NotAuthenticated,
    RateLimited,
    ScalarError,
    TooLarge,
    Unsupported,
)
from .events import EDITABLE, MAX_TITLE, MEMBERSHIP, EncodedEvent, Event
from .hub import Hub, Publication
from .ids import Kind
from .logins import AddressLimiter, Attempt
from .messages import (
    Bye,
    Catchup,
    Error,
    Ident,
    Message,
    Msg,
    Ok,
    Ping,
    Pong,
    Sub,
    Topics,
    Unsub,
    Welcome,
)
from .settings import Clock, ServerSettings
from .wire import (
    MAX_FRAME,
    CborMap,
    encode_frame,
    frame,
    head,
    lone_history_size,
    map_with_raw_array,
)

log = logging.getLogger(__name__)

SOFTWARE = "bridgehost/0.1"
_BEFORE_IDENT = frozenset({"ident", "ping", "pong", "bye"})


class Conn(Protocol):
    """The transport side of a session."""

    remote: str

    def push(self, data: bytes) -> None: ...

    def close(self) -> None:
        """Flush what was pushed, then close."""


class Credentials(Protocol):
    """What a session asks of the credential store (`auth.Authenticator` in a server)."""

    async def verify(
        self,
        ident: str,
        method: str | None,
        secret: str | None,
        attempt: Attempt | None = None,
    ) -> None:
        """Return if `secret` proves `ident` (normalised), else raise `AuthFailed`; a check
        that has to hash holds a token of `attempt` while it runs."""

    async def knows(self, ident: str) -> bool:
        """Whether a user or reserved ID has credentials here (for direct messages)."""


Extension = Callable[[str, CborMap], Awaitable[CborMap]]
"""A request type one session serves beside §5 (a plugin's `status`, docs/plugins.md):
called with the session's ID and the request once the session is open; returns the
reply map (the session adds the `rid`) or raises a `ScalarError`."""


@dataclass(slots=True)
class Counters:
    """Plain counts the HTTP side exports (/metrics); they start at 0 with the process."""

    failed_idents: int = 0
    rate_limited: int = 0


@dataclass(slots=True)
class Shared:
    """What all sessions of one server share."""

    settings: ServerSettings
    hub: Hub
    auth: Credentials
    clock: Clock
    failed_idents: AddressLimiter
    counters: Counters = field(default_factory=Counters)


class Phase(enum.Enum):
    """Where a session is in §6's state machine."""

    IDENT = "ident"
    """Connected; only ident, ping, pong and bye are accepted."""
    IDENTIFYING = "identifying"
    """An ident is being checked (credentials may take a while)."""
    OPEN = "open"
    CLOSING = "closing"
    """A bye was said or asked for: nothing more is handled or sent."""
    CLOSED = "closed"
    """The connection is gone and the session's subscriptions are released."""


class Session:
    def __init__(
        self,
        shared: Shared,
        conn: Conn,
        *,
        preauth: str | None = None,
        extensions: Mapping[str, Extension] | None = None,
    ) -> None:
        self.s = shared
        self.conn = conn
        self.extensions: Mapping[str, Extension] = extensions or {}
        self.bye_reason: str | None = None
        """Why the server ended the session (the `bye` reason it sent), if it did."""
        self.last_error: ScalarError | None = None
        """The last error sent to the client."""
        self.push = conn.push
        """The hub delivers to sessions directly (this is the `Peer` interface)."""
        self.preauth = None if preauth is None else ids.normalise(preauth)
        """§12 inherited stdio: the reserved ID the server opened this session as (the
        pipe is the credential); an `ident` naming it needs no secret, any other
        `ident` is `auth-failed`."""
        self.id = ""
        self.phase = Phase.IDENT
        self.reserved = False
        self.guest = False
        self.subs: set[str] = set()
        self.started = shared.clock.monotonic()
        self.last_rx = self.started
        self.pinged_at: float | None = None
        lim = shared.settings.limits
        self.bucket = TokenBucket(lim.rate, max(1, lim.burst), shared.clock)

    @property
    def open(self) -> bool:
        return self.phase is Phase.OPEN

    @property
    def closing(self) -> bool:
        """True once a bye was said or asked for, and after the connection is gone."""
        return self.phase is Phase.CLOSING or self.phase is Phase.CLOSED

    # --- output ------------------------------------------------------------

    def send(self, msg: Message) -> None:
        if not self.closing:
            self.conn.push(encode_frame(msg.to_map()))

    def bye(self, reason: str) -> None:
        """Say bye and close; nothing is sent after it."""
        if self.closing:
            return
        self.send(Bye(reason=reason))
        self.bye_reason = reason
        self.phase = Phase.CLOSING
        self.conn.close()

    def fail(self, exc: ScalarError) -> None:
        if isinstance(exc, RateLimited):
            self.s.counters.rate_limited += 1
        self.last_error = exc
        self.send(Error.of(exc))

    # --- input -------------------------------------------------------------

    async def handle(self, item: CborMap | ScalarError) -> None:
        """One decoded frame (or the reason it could not be decoded)."""
        if self.closing:
            return
        self.last_rx = self.s.clock.monotonic()
        self.pinged_at = None
        if isinstance(item, BadFrame):
            self.fail(item)
            self.bye("bad-frame")
            return
        if isinstance(item, ScalarError):
            self.fail(item)
            return
        try:
            extension = self.extensions.get(item.get("t"))  # type: ignore[arg-type]
            if extension is not None:
                await self._extension(extension, item)
                return
            t = messages.request_type(item)
            if not self.open and t not in _BEFORE_IDENT:
                raise NotAuthenticated("send ident first", rid=item.get("rid"))
            if t == "ident":
                await self._ident(item)
                return
            request = messages.parse_request(item)
            await self._dispatch(request)
        except ScalarError as exc:
            self.fail(exc)
        except Exception:
            log.exception("internal error in session %s", self.id or self.conn.remote)
            rid = item.get("rid")
            self.fail(Internal("internal server error", rid=rid if type(rid) is int else None))

    async def _dispatch(self, req: messages.Request) -> None:
        if isinstance(req, Msg):
            await self._msg(req)
        elif isinstance(req, Sub):
            self._sub(req)
        elif isinstance(req, Unsub):
            self._unsub(req)
        elif isinstance(req, Catchup):
            await self._catchup(req)
        elif isinstance(req, Topics):
            self._topics(req)
        elif isinstance(req, Ping):
            self.send(Pong(time=req.time, rid=req.rid))
        elif isinstance(req, Bye):
            self.phase = Phase.CLOSING
            self.conn.close()
        # Pong: liveness only, already counted.

    async def _extension(self, extension: Extension, item: CborMap) -> None:
        rid = item.get("rid")
        if "rid" in item and not (type(rid) is int and 0 <= rid < 2**32):
            raise BadMessage("rid must be an unsigned integer below 2^32")
        if not self.open:
            raise NotAuthenticated("send ident first", rid=rid)
        try:
            reply = dict(await extension(self.id, item))
        except ScalarError as exc:
            raise exc.with_rid(rid) from None
        if rid is not None:
            reply["rid"] = rid
        self.conn.push(encode_frame(reply))

    # --- ident -----------------------------------------------------------------

    async def _ident(self, m: CborMap) -> None:
        if self.open:
            messages.parse_request(m)
            raise Forbidden("already identified", rid=m.get("rid"))
        self.phase = Phase.IDENTIFYING
        try:
            req = messages.parse_request(m)
            assert isinstance(req, Ident)
            ident = await self._authenticate(req)
        except ScalarError as exc:
            if self.phase is Phase.IDENTIFYING:
                self.phase = Phase.IDENT
            self.fail(exc)
            self.bye(exc.code)
            log.info("ident refused from %s: %s", self.conn.remote, exc.code)
            return
        if self.phase is not Phase.IDENTIFYING:
            return  # the connection went away while the credentials were checked
        self.id = ident
        self.phase = Phase.OPEN
        # The client could not speak while its credentials were checked: idle time
        # (for ping and pong) counts from the welcome, not from the ident frame.
        self.last_rx = self.s.clock.monotonic()
        self.s.hub.connected(ident)
        lim = self.s.settings.limits
        self.send(
            Welcome(
                id=ident,
                server=SOFTWARE,
                limits=messages.Limits(lim.frame, lim.rate, lim.burst, lim.subs),
                rid=req.rid,
            )
        )
        log.info("session %s opened from %s", ident, self.conn.remote)

    async def _authenticate(self, req: Ident) -> str:
        settings = self.s.settings
        if req.v != 1:
            raise Unsupported("only protocol version 1 is supported", rid=req.rid)
        try:
            parsed = None if req.id is None else ids.parse(req.id)
        except ScalarError as exc:
            raise exc.with_rid(req.rid) from None
        if self.preauth is not None:
            if parsed is None or str(parsed) != self.preauth:
                self.s.counters.failed_idents += 1
                raise AuthFailed("authentication failed", rid=req.rid)
            self.reserved = True
            return self.preauth
        attempt = self.s.failed_idents.attempt(self.conn.remote, req.rid)
        ok = False
        try:
            if parsed is None:
                if not settings.guests:
                    raise AuthFailed("authentication failed")
                ok, self.guest = True, True
                return self._guest_id()
            if parsed.kind is Kind.CHANNEL or parsed.domain != settings.domain:
                raise AuthFailed("authentication failed")
            await self.s.auth.verify(str(parsed), req.method, req.secret, attempt)
            ok = True
        except AuthFailed:
            self.s.counters.failed_idents += 1
            raise AuthFailed("authentication failed", rid=req.rid) from None
        finally:  # a lost connection or an internal error costs like a failure
            attempt.succeeded() if ok else attempt.failed()
        self.reserved = parsed.kind is Kind.RESERVED
        return str(parsed)

    def _guest_id(self) -> str:
        """A fresh guest ID, not one the server still holds a topic of."""
        while True:
            ident = f"guest-{_random_hex()}@{self.s.settings.domain}"
            if not self.s.hub.has_topic(ident) and not self.s.hub.is_online(ident):
                return ident

    # --- topics -----------------------------------------------------------------

    def _own_domain(self, topic: str, rid: int | None) -> ids.Ident:
        parsed = ids.parse(topic)
        if parsed.domain != self.s.settings.domain:
            raise NoSuchTopic(f"{topic} is not served here", rid=rid)
        return parsed

    def _sub(self, req: Sub) -> None:
        dest = self._own_domain(req.topic, req.rid)
        hub, limits = self.s.hub, self.s.settings.limits
        if req.topic not in self.subs and len(self.subs) >= limits.subs:
            raise Forbidden("too many subscriptions", rid=req.rid)
        if not hub.has_topic(req.topic):
            if dest.kind is Kind.CHANNEL and hub.channel_count >= limits.channels:
                raise Forbidden("this server keeps no more channels", rid=req.rid)
            self._spend_token(req.rid)  # a new topic in memory costs like a msg (§10)
        self.subs.add(req.topic)
        self.send(hub.subscribe(self, req.topic, req.rid))

    def _spend_token(self, rid: int | None) -> None:
        """The `msg` rate limit (§9); reserved IDs are exempt."""
        if self.reserved:
            return
        wait = self.bucket.wait_ms()
        if wait:
            raise RateLimited("slow down", rid=rid, retry_after=wait)
        self.bucket.take()

    def _unsub(self, req: Unsub) -> None:
        if req.topic == "*":
            names = list(self.subs)
        else:
            self._own_domain(req.topic, req.rid)
            names = [req.topic] if req.topic in self.subs else []
        for name in names:
            self.subs.discard(name)
            self.s.hub.unsubscribe(self, name)
        self.send(Ok(rid=req.rid))

    def _topics(self, req: Topics) -> None:
        total, items = self.s.hub.list_topics(req.prefix, req.offset, req.limit)
        fixed = {"t": "topics", "total": total, "offset": req.offset}
        if req.rid is not None:
            fixed["rid"] = req.rid
        encoded = [cbor2.dumps(i.to_map()) for i in items]
        kept = _fit(fixed, "items", encoded, from_start=True)
        self.conn.push(frame(map_with_raw_array(fixed, "items", kept)))

    # --- msg -----------------------------------------------------------------------

    async def _msg(self, req: Msg) -> None:
        hub = self.s.hub
        dest = self._own_domain(req.topic, req.rid)
        if dest.kind is not Kind.CHANNEL and not await self._known(req.topic):
            raise NoSuchTopic(f"{req.topic} is nobody this server knows", rid=req.rid)
        original = None
        if req.target is not None:
            original = await hub.find_event(req.topic, req.target)
            if original is None:
                raise NoSuchTopic(f"no event with that id in {req.topic}", rid=req.rid)
            if self.closing:
                return
        self._may_publish(req, dest, original)
        if hub.backlog_full:
            await hub.room()
            if self.closing:
                return
        if req.nonce is not None:
            pub = hub.publication(self.id, req.nonce)
            if pub is not None:
                await self._repeat(pub, req.rid)
                return
        if req.kind == "topic" and len(req.body.encode()) > MAX_TITLE:
            raise TooLarge(f"a channel title is at most {MAX_TITLE} bytes", rid=req.rid)
        prepared = hub.prepare(self.id, req, req.rid)
        size = max(len(prepared.echo), lone_history_size(req.topic, prepared.event.stored))
        if size > self.s.settings.limits.frame:
            raise TooLarge("the event would not fit one frame", rid=req.rid)
        self._spend_token(req.rid)
        echo = frame(prepared.echo)
        rid = req.rid

        def acknowledge(event: EncodedEvent | None) -> None:
            if event is None:
                self.fail(Internal("the event could not be stored", rid=rid))
            else:
                self.conn.push(echo)

        hub.publish(self, prepared, acknowledge)

    async def _known(self, ident: str) -> bool:
        """Whether a user or reserved ID exists here, for direct messages (§10)."""
        hub = self.s.hub
        if hub.is_online(ident) or (hub.has_topic(ident) and hub.topics[ident].seq):
            return True
        return await self.s.auth.knows(ident)

    async def _repeat(self, pub: Publication, rid: int | None) -> None:
        """A `msg` whose nonce we have seen: answer with the first event, publish nothing."""
        try:
            event = await self.s.hub.original(pub)
        except Exception:
            raise Internal("the event could not be stored", rid=rid) from None
        if event is None:
            raise Internal("the event this nonce made is no longer kept", rid=rid)
        self.conn.push(frame(event.frame_body(rid)))

    def _may_publish(self, req: Msg, dest: ids.Ident, original: Event | None) -> None:
        """The permission step of §9 for `msg`, with the rules of §11."""
        rid = req.rid
        if (req.nick is not None or req.origin is not None) and not self.reserved:
            raise Forbidden("only reserved IDs may set nick or origin", rid=rid)
        if req.kind == "presence":
            raise Forbidden("presence is generated by the server", rid=rid)
        if req.kind in MEMBERSHIP and not self.reserved:
            raise Forbidden("join and part are relayed by bridges (reserved IDs)", rid=rid)
        if dest.kind is Kind.CHANNEL and not self.reserved and req.topic not in self.subs:
            raise Forbidden("subscribe to a channel before publishing to it", rid=rid)
        if req.kind == "topic" and dest.kind is not Kind.CHANNEL:
            raise Forbidden("only channels have a topic", rid=rid)
        hub, limits = self.s.hub, self.s.settings.limits
        if (
            dest.kind is Kind.CHANNEL
            and not hub.has_topic(req.topic)
            and hub.channel_count >= limits.channels
        ):
            raise Forbidden("this server keeps no more channels", rid=rid)
        if original is not None and req.kind in ("edit", "delete"):
            if original.sender != self.id:
                raise Forbidden(f"only its sender may {req.kind} an event", rid=rid)
            if (req.nick, req.origin) != (original.nick, original.origin):
                raise Forbidden(
                    f"{req.kind} keeps the nick and origin of the event it changes", rid=rid
                )
            if req.kind == "edit" and original.kind not in EDITABLE:
                raise Forbidden(f"a {original.kind!r} event cannot be edited", rid=rid)

    # --- catchup ---------------------------------------------------------------------

    async def _catchup(self, req: Catchup) -> None:
        target = self._own_domain(req.topic, req.rid)
        if target.kind is not Kind.CHANNEL and req.topic != self.id:
            raise Forbidden("only the owner may catch up on an ID's topic", rid=req.rid)
        fixed: CborMap = {"t": "history", "topic": req.topic}
        if req.rid is not None:
            fixed["rid"] = req.rid
        if self.s.settings.history_keep <= 0:
            fixed.update(status="unavailable", more=False)
            self.conn.push(frame(map_with_raw_array(fixed, "events", [])))
            return
        await self.s.hub.flush()  # our own publishes first: echoed, then in the history
        events, more = await self.s.hub.store.history(
            req.topic, after=req.after, before=req.before, since=req.since, limit=req.limit
        )
        fixed.update(status="ok", more=True)
        ascending = req.after is not None or req.since is not None
        kept = _fit(fixed, "events", events, from_start=ascending)
        fixed["more"] = more or len(kept) < len(events)
        if self.closing:
            return
        self.conn.push(frame(map_with_raw_array(fixed, "events", kept)))

    # --- liveness -----------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Called about once a second: ident deadline, ping, pong deadline."""
        if self.closing:
            return
        t = self.s.settings.timeouts
        if not self.open:
            if now - self.started >= t.ident:
                self.bye("timeout")
            return
        if self.pinged_at is None:
            if now - self.last_rx >= t.ping:
                self.pinged_at = now
                self.send(Ping(time=self.s.clock.now_ms()))
        elif now - self.pinged_at >= t.pong:
            self.bye("timeout")

    def closed(self) -> None:
        """The transport is gone: forget subscriptions, maybe announce offline."""
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.CLOSED
        if self.id:
            self.s.hub.disconnected(self, self.subs)
            self.subs = set()


def _fit(fixed: CborMap, key: str, items: list[bytes], *, from_start: bool) -> list[bytes]:
    """The items nearest one end that fit in one frame with the fixed fields (exactly:
    an event accepted because its lone `history` frame fits is always returned)."""
    base = len(map_with_raw_array(fixed, key, [])) - 1  # without the array's head
    kept: list[bytes] = []
    size = 0
    ordered = items if from_start else reversed(items)
    for item in ordered:
        if base + len(head(4, len(kept) + 1)) + size + len(item) > MAX_FRAME:
            break
        kept.append(item)
        size += len(item)
    if not from_start:
        kept.reverse()
    return kept


def _random_hex() -> str:
    return secrets.token_hex(4)
