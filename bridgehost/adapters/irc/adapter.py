"""The IRC adapter: one connection per account, one link per IRC channel.

Scalar -> IRC (`outbound.py`): ScalarSide queues every event for each
outbound link; one sender per link renders it for the channel, writes its
lines through the connection's token bucket while the channel is joined,
and pops it only when every line went out. So a link that is down (no
connection, kicked, banned) keeps its messages, in order, up to the queue
bound.

IRC -> Scalar (`inbound.py`): the connection calls back with channel
messages, topic changes and membership; one publisher task relays them in
arrival order through ScalarSide.publish. What a channel said while the
bridge was away comes from the server's history on join (`history.py`).

Both sides share a `Memory` of the channel's messages (saved in the
adapter's kv every second and at stop), so replies, edits and reactions
from other networks name the right message on IRC, also after a restart.

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

from ...config import Link
from ...runtime import Backoff, Fatal, TaskSet, wait_for
from ...scalar.events import Event
from ..base import AdapterContext, LocalKeyValue, ScalarSide
from ..formatting import NICK_BUDGET
from ..state import LinkState, State
from .config import IrcAccount
from .connection import IrcConnection
from .flood import flood_bucket
from .history import POSITION_KEY, Line, Position, to_relay, went_out
from .inbound import Inbound
from .link import IrcLink
from .listener import RegistrationFailed
from .memory import Memory
from .nicks import NickStyle
from .outbound import Outbound
from .protocol import LineKind, fold, nick_candidates
from .reactions import ReactionGate
from .render import IrcStyle, Renderer
from .tags import Tags

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
SAVE_EVERY = 1.0
"""Seconds between saves of the message memory."""


class RegistrationRefused(Fatal):
    """The server refused our credentials (SASL, PASS, K-line): retrying cannot
    help until the config changes, so the adapter stops and says so once."""


def style_of(account: IrcAccount) -> IrcStyle:
    relay = account.relay
    return IrcStyle(
        format=account.format,
        action_format=account.action_format,
        max_lines=account.max_lines,
        nicks=NickStyle(colours=relay.nick_colours, anti_highlight=relay.anti_highlight),
        replies=relay.replies,
        edits=relay.edits,
        deletes=relay.deletes,
        reactions=relay.reactions,
        topic=relay.topic,
        membership=relay.membership,
    )


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
        nick_len = max(len(n.encode()) for n in nick_candidates(account.nick, account.alt_nicks))
        self.nick_budget = max(NICK_BUDGET, nick_len)
        style = style_of(account)
        self.links: dict[str, IrcLink] = {}
        for bridge, link in ctx.links:
            self.links[fold(link.target)] = IrcLink(
                bridge,
                link,
                self.side.status_of(link),
                self.side.queue(link),
                Renderer(style, link.target, nick_len=self.nick_budget),
                ReactionGate(account.relay.reaction_interval),
            )
        self.memory = Memory(ctx.kv)
        clock = self.side.clock
        self.inbound = Inbound(
            account, self.side, self.memory, self._link, clock=clock, moved=self._moved_to
        )
        self.outbound = Outbound(
            self.memory, lambda: self.conn, ctx.public, clock, self.inbound.publishing
        )
        self.conn: IrcConnection | None = None
        self.connects = 0
        """Connection attempts so far (health, and tests of the backoff)."""
        self._positions_moved = asyncio.Event()

    def _link(self, channel: str) -> IrcLink | None:
        return self.links.get(fold(channel))

    def status(self) -> list[LinkState]:
        return self.side.statuses()

    async def run(self) -> None:
        for lk in self.links.values():
            raw = await self.ctx.kv.get(POSITION_KEY + self.side.origin(lk.link))
            lk.position = lk.saved = Position.decode(raw)
            if lk.history_seen is None or lk.history_seen.done():
                lk.history_seen = asyncio.get_running_loop().create_future()
        await self.memory.load()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.side.run(), name=f"irc-{self.name}-scalar")
                tasks.create_task(self.inbound.run(), name=f"irc-{self.name}-inbound")
                tasks.create_task(self._save_positions(), name=f"irc-{self.name}-positions")
                tasks.create_task(self._save_memory(), name=f"irc-{self.name}-memory")
                for lk in self.links.values():
                    if lk.link.outbound:
                        name = f"irc-{self.name}-{lk.link.target}"
                        tasks.create_task(self.outbound.run(lk), name=name)
                tasks.create_task(self._connection_loop(), name=f"irc-{self.name}-connection")
        finally:
            await self.memory.save()

    async def _save_memory(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            await self.memory.save()

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
                self.inbound.left(lk.link.target)
            await tasks.close()
            conn.close("bridgehost stopping")

    async def _keep_joined(self, conn: IrcConnection, lk: IrcLink) -> None:
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
        self,
        channel: str,
        nick: str,
        text: str,
        kind: LineKind,
        *,
        line: Line | None = None,
        tags: Tags | None = None,
    ) -> None:
        self.inbound.message(channel, nick, text, kind, tags=tags or {}, line=line)

    def on_echo(self, channel: str, text: str, tags: Tags) -> None:
        self.outbound.echo(channel, text, tags)

    def on_topic(self, channel: str, nick: str | None, text: str) -> None:
        self.inbound.topic(channel, nick, text)

    def on_member(self, channel: str, nick: str, change: str, reason: str) -> None:
        self.inbound.member(channel, nick, change, reason)

    def on_quit(self, nick: str, reason: str) -> None:
        self.inbound.quit(nick, reason)

    def on_nick(self, old: str, new: str) -> None:
        self.inbound.renamed(old, new)

    def on_names(self, channel: str, names: list[str], end: bool) -> None:
        self.inbound.names(channel, names, end)

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
                self.inbound.message(channel, nick, text, kind, line=line)
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
            seen = await wait_for(asyncio.shield(lk.history_seen), SETTLE_WAIT)
        except TimeoutError:
            return None
        if not seen:
            return None
        return went_out(lk.own, self.outbound.wire_lines(lk, event))

    def _moved_to(self, lk: IrcLink, line: Line) -> None:
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
        self.inbound.left(channel)
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
