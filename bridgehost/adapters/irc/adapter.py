"""The IRC adapter: one connection per account, one link per IRC channel.

Scalar -> IRC: ScalarSide queues every event for each outbound link; one
sender per link peeks the head, writes its lines through the connection's
token bucket while the channel is joined, and pops it only when every line
went out. So a link that is down (no connection, kicked, banned) keeps its
messages, in order, up to the queue bound.

IRC -> Scalar: the connection calls back with channel messages; one
publisher task relays them in arrival order through ScalarSide.publish.

Faults: a lost connection is retried with the runtime's Backoff: within a
second, and then about every second for a while, when the connection had
been healthy (a server restart), else with capped exponential backoff and
jitter; a registration the server refuses (SASL, PASS, K-line) is `Fatal`:
reported once, not retried until the config changes; a kick is answered by
a rejoin after `rejoin_delay`; a channel that refuses us (ban, key,
invite-only) is retried with backoff, never in a tight loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field

from ...config import Bridge, Link
from ...runtime import Backoff, Fatal, TaskSet
from ...scalar.events import Event
from ..base import AdapterContext, LocalKeyValue, OutQueue, ScalarSide
from ..formatting import NICK_BUDGET, Rendered, irc_to_scalar, render_lines, text_budget
from ..state import LinkState, State
from .config import IrcAccount
from .connection import IrcConnection, RegistrationFailed
from .flood import flood_bucket
from .history import POSITION_KEY, Line, Position, nonce, to_relay, went_out
from .protocol import LineKind, fold, nick_candidates

log = logging.getLogger(__name__)

HEALTHY_AFTER = 10.0
"""A connection that stayed registered this long was healthy: when it is lost,
the first retry comes within a second. One a server kills sooner is retried
with growing delays instead (no reconnect loop against a server that drops us)."""
JOIN_TIMEOUT = 30.0
MAX_HISTORY = 10000
"""Lines of one history batch kept (a server sends its `+H` limit, e.g. 50)."""
HISTORY_WAIT = 2.0
"""Seconds after a join to wait for a history batch before deciding there is none."""
SETTLE_WAIT = 10.0
"""Seconds the resume of a link waits for the first join's history."""


@dataclass(eq=False)
class _Link:
    """Mutable per-link state of one connection's life."""

    bridge: Bridge
    link: Link
    status: LinkState
    queue: OutQueue
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    removed_reason: str = ""
    outcome: asyncio.Future[str | None] | None = None
    sent: int = 0
    """Lines of the queue's head event already written (resumed after a reconnect)."""
    position: Position | None = None
    """The last line relayed IRC -> Scalar (kept in the store), where history resumes."""
    saved: Position | None = None
    history: list[tuple[str, str, LineKind, Line]] = field(default_factory=list)
    """The channel's history batch being received: (nick, text, kind, line)."""
    own: list[Line] = field(default_factory=list)
    """Our own lines in the first history batch since the adapter started."""
    history_seen: asyncio.Future[bool] | None = None
    """Done when the first join's history batch ended (True), or none came (False)."""


@dataclass(frozen=True, slots=True)
class _Incoming:
    link: _Link
    nick: str
    body: str
    kind: LineKind
    ctype: str | None
    received: float
    """When the line arrived (monotonic), for the link's inbound latency."""
    line: Line | None = None
    """What the server said about it (msgid, time): its nonce, and the link's position."""


class RegistrationRefused(Fatal):
    """The server refused our credentials (SASL, PASS, K-line): retrying cannot
    help until the config changes, so the adapter stops and says so once."""


def line_kind(kind: str) -> LineKind:
    """How a Scalar event of `kind` goes out on IRC."""
    return "action" if kind == "action" else "notice" if kind == "notice" else "text"


def sender_nick(event: Event) -> str:
    """The name IRC users see: the relayed nick, else the sender's local part."""
    if event.nick:
        return event.nick
    return event.sender.split("@", 1)[0].lstrip("!")


def describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message} (set ca: or verify: false)"
    if isinstance(exc, TimeoutError):
        return "timed out connecting or registering"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect: {exc.strerror}"
    return f"cannot connect: {exc}"


class IrcAdapter:
    def __init__(self, ctx: AdapterContext) -> None:
        account = ctx.account
        if not isinstance(account, IrcAccount):
            raise TypeError(f"IrcAdapter needs an irc account, not {account.type}")
        self.ctx = ctx
        self.account = account
        self.name = account.name
        self.side = ScalarSide(ctx, account.queue, settle=self._went_out)
        self.links: dict[str, _Link] = {}
        for bridge, link in ctx.links:
            self.links[fold(link.target)] = _Link(
                bridge, link, self.side.status_of(link), self.side.queue(link)
            )
        nick_len = max(len(n.encode()) for n in nick_candidates(account.nick, account.alt_nicks))
        self.nick_budget = max(NICK_BUDGET, nick_len)
        self.conn: IrcConnection | None = None
        self.connects = 0
        """Connection attempts so far (health, and tests of the backoff)."""
        self._inbound: asyncio.Queue[_Incoming] = asyncio.Queue()
        self._positions_moved = asyncio.Event()

    def status(self) -> list[LinkState]:
        return self.side.statuses()

    async def run(self) -> None:
        for lk in self.links.values():
            raw = await self.ctx.kv.get(POSITION_KEY + self.side.origin(lk.link))
            lk.position = lk.saved = Position.decode(raw)
            if lk.history_seen is None or lk.history_seen.done():
                lk.history_seen = asyncio.get_running_loop().create_future()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.side.run(), name=f"irc-{self.name}-scalar")
            tasks.create_task(self._publisher(), name=f"irc-{self.name}-publisher")
            tasks.create_task(self._save_positions(), name=f"irc-{self.name}-positions")
            for lk in self.links.values():
                if lk.link.outbound:
                    tasks.create_task(self._sender(lk), name=f"irc-{self.name}-{lk.link.target}")
            tasks.create_task(self._connection_loop(), name=f"irc-{self.name}-connection")

    # --- connection lifecycle ---------------------------------------------------------------

    def _set_all(self, state: State, error: str | None = None) -> None:
        for lk in self.links.values():
            lk.status.set(state, error)

    async def _connection_loop(self) -> None:
        acc = self.account
        backoff = Backoff(acc.reconnect_initial, acc.reconnect_max, healthy_after=HEALTHY_AFTER)
        while True:
            self.connects += 1
            self._set_all("connecting")
            bucket = flood_bucket(acc.flood.burst, acc.flood.interval)
            conn = IrcConnection(acc, self, bucket)
            try:
                await conn.connect()
            except RegistrationFailed as exc:
                if exc.auth:
                    self._set_all("auth failed", exc.reason)
                    raise RegistrationRefused(
                        f"{acc.host}:{acc.port} refused the registration: {exc.reason}"
                    ) from exc
                error = exc.reason
            except (OSError, TimeoutError) as exc:
                error = describe(exc)
            else:
                backoff.started()
                error = await self._session(conn)
            wait = backoff.next()
            self._set_all("disconnected", error)
            log.warning(
                "irc %s (%s:%d): %s; reconnecting in %.1f s",
                self.name,
                acc.host,
                acc.port,
                error,
                wait,
            )
            await asyncio.sleep(wait)

    async def _session(self, conn: IrcConnection) -> str:
        """Keep the channels joined until the connection closes; return why it did."""
        self.conn = conn
        tasks = TaskSet(f"irc-{self.name}-session")
        try:
            for lk in self.links.values():
                lk.joined.clear()
                tasks.spawn(self._keep_joined(conn, lk), name=f"join-{lk.link.target}")
            tasks.spawn(
                conn.keepalive(self.account.ping_interval, self.account.ping_timeout),
                name="keepalive",
            )
            return await conn.wait_closed()
        finally:
            self.conn = None
            for lk in self.links.values():
                lk.joined.clear()
            await tasks.close()
            conn.close("bridgehost stopping")

    async def _keep_joined(self, conn: IrcConnection, lk: _Link) -> None:
        acc = self.account
        loop = asyncio.get_running_loop()
        backoff = Backoff(max(acc.rejoin_delay, 1.0), acc.reconnect_max)
        while conn.alive:
            if not lk.joined.is_set():
                lk.status.set("joining")
                lk.outcome = loop.create_future()
                await conn.join(lk.link.target, lk.link.key)
                try:
                    async with asyncio.timeout(JOIN_TIMEOUT):
                        error = await lk.outcome
                except TimeoutError:
                    error = f"no answer to JOIN {lk.link.target} within {JOIN_TIMEOUT:.0f} s"
                finally:
                    lk.outcome = None
                if error is not None:
                    wait = backoff.next()
                    lk.status.set("join failed", f"{error}; retrying in {wait:.0f} s")
                    await asyncio.sleep(wait)
                    continue
                backoff.reset()
                lk.removed.clear()
                lk.joined.set()
                lk.status.set("joined")
            await lk.removed.wait()
            lk.status.set("removed", f"{lk.removed_reason}; rejoining in {acc.rejoin_delay:g} s")
            await asyncio.sleep(acc.rejoin_delay)

    # --- listener callbacks (from the connection, in the event loop) -----------------------

    def on_message(
        self, channel: str, nick: str, text: str, kind: LineKind, line: Line | None = None
    ) -> None:
        lk = self.links.get(fold(channel))
        if lk is None or not lk.link.inbound:
            return
        body, ctype = irc_to_scalar(text, markdown=lk.link.markdown)
        if body.strip():
            received = self.side.clock.monotonic()
            self._inbound.put_nowait(_Incoming(lk, nick, body, kind, ctype, received, line))

    def on_history(self, channel: str, nick: str, text: str, kind: LineKind, line: Line) -> None:
        lk = self.links.get(fold(channel))
        if lk is None or len(lk.history) >= MAX_HISTORY:
            return
        lk.history.append((nick, text, kind, line))

    def on_history_end(self, channel: str) -> None:
        """A join's history batch is complete: relay what the link missed."""
        lk = self.links.get(fold(channel))
        if lk is None:
            return
        batch, lk.history = lk.history, []
        conn = self.conn
        mine = [line for nick, _, _, line in batch if conn is not None and conn.is_me(nick)]
        ours = {id(line) for line in mine}
        theirs = [(n, t, k, line) for n, t, k, line in batch if id(line) not in ours]
        if lk.history_seen is not None and not lk.history_seen.done():
            lk.own = mine
            lk.history_seen.set_result(True)
        if not lk.link.inbound:
            return
        if lk.position is None:  # the first join: nothing old, but from here on
            if theirs:
                self._moved_to(lk, theirs[-1][3])
            return
        missed = {id(line) for line in to_relay([t[3] for t in theirs], lk.position)}
        relayed = 0
        for nick, text, kind, line in theirs:
            if id(line) in missed:
                self.on_message(channel, nick, text, kind, line)
                relayed += 1
        if relayed:
            log.info("irc %s: %d line(s) of %s said while away", self.name, relayed, channel)

    async def _went_out(self, link: Link, event: Event) -> bool | None:
        """Did the event this link was sending when the adapter stopped reach IRC?
        Our own lines in the channel's history on the first join tell."""
        lk = self.links.get(fold(link.target))
        if lk is None or lk.history_seen is None:
            return None
        try:
            seen = await asyncio.wait_for(asyncio.shield(lk.history_seen), SETTLE_WAIT)
        except TimeoutError:
            return None
        if not seen:
            return None
        kind = line_kind(event.kind)
        lines = self.render(lk, event).lines
        wire = [f"\x01ACTION {text}\x01" if kind == "action" else text for text in lines]
        return went_out(lk.own, wire)

    def _moved_to(self, lk: _Link, line: Line) -> None:
        """Keep where the link's IRC -> Scalar relay stands (after each line)."""
        if line.msgid is None and line.time_ms is None:
            return
        lk.position = Position.of(line)
        key = POSITION_KEY + self.side.origin(lk.link)
        kv = self.ctx.kv
        if isinstance(kv, LocalKeyValue):
            kv.set_now(key, lk.position.encode())
            lk.saved = lk.position
        else:
            self._positions_moved.set()

    async def _save_positions(self) -> None:
        """Write moved inbound positions to a store that is not local (the server's)."""
        while True:
            await self._positions_moved.wait()
            self._positions_moved.clear()
            for lk in self.links.values():
                if lk.position is not None and lk.position != lk.saved:
                    position = lk.position
                    key = POSITION_KEY + self.side.origin(lk.link)
                    await self.ctx.kv.set(key, position.encode())
                    lk.saved = position

    def on_joined(self, channel: str) -> None:
        lk = self.links.get(fold(channel))
        if lk is None:
            return
        if lk.outcome is not None and not lk.outcome.done():
            lk.outcome.set_result(None)
        seen = lk.history_seen
        if seen is not None and not seen.done():
            # A server that keeps history sends it right after the join.
            def no_history() -> None:
                if not seen.done() and not lk.history:
                    seen.set_result(False)

            asyncio.get_running_loop().call_later(HISTORY_WAIT, no_history)

    def on_join_error(self, channel: str, reason: str) -> None:
        lk = self.links.get(fold(channel))
        if lk is not None and lk.outcome is not None and not lk.outcome.done():
            lk.outcome.set_result(reason)

    def on_removed(self, channel: str, reason: str) -> None:
        lk = self.links.get(fold(channel))
        if lk is not None:
            lk.joined.clear()
            lk.removed_reason = reason
            lk.removed.set()

    def on_refused(self, channel: str, reason: str) -> None:
        """The server dropped a line of ours (moderated channel, +n, ...): say so."""
        lk = self.links.get(fold(channel))
        if lk is not None:
            lk.status.set(lk.status.state, reason)

    # --- relaying -----------------------------------------------------------------------------

    async def _publisher(self) -> None:
        while True:
            item = await self._inbound.get()
            event = await self.side.publish(
                item.link.link,
                nick=item.nick,
                body=item.body,
                kind=item.kind,
                ctype=item.ctype,
                received=item.received,
                nonce=nonce(item.line) or None if item.line is not None else None,
            )
            if event is not None and item.line is not None:
                self._moved_to(item.link, item.line)

    def render(self, lk: _Link, event: Event) -> Rendered:
        acc = self.account
        action = event.kind == "action"
        command = "NOTICE" if event.kind == "notice" else "PRIVMSG"
        return render_lines(
            event.body,
            nick=sender_nick(event),
            fmt=acc.action_format if action else acc.format,
            budget=text_budget(command, lk.link.target, nick_len=self.nick_budget, action=action),
            max_lines=acc.max_lines,
        )

    async def _sender(self, lk: _Link) -> None:
        while True:
            event = await lk.queue.peek()
            dropped = lk.status.dropped

            def current(dropped: int = dropped) -> bool:
                """Overflow drops the oldest event, which is the one being sent."""
                return lk.status.dropped == dropped

            def ready() -> bool:
                return lk.joined.is_set() and current()

            lines = self.render(lk, event).lines
            kind = line_kind(event.kind)
            while lk.sent < len(lines) and current():
                await lk.joined.wait()
                conn = self.conn
                if conn is None:
                    await asyncio.sleep(0.05)
                elif await conn.say(kind, lk.link.target, lines[lk.sent], still=ready):
                    lk.sent += 1
                elif not conn.alive:
                    await asyncio.sleep(0.05)  # connection just died; the session ends soon
            if current():
                lk.queue.sent()
            lk.sent = 0
