"""IRC -> Scalar: what the channels say, change and who comes and goes.

One publisher task relays, in arrival order:

- PRIVMSG / NOTICE / CTCP ACTION -> `text` / `notice` / `action`, formatting
  codes stripped (or markdown); an IRCv3 `+draft/reply` tag naming a message
  we know becomes `reply_to`;
- with `relay.sed_edits`, a line that is exactly `s/a/b/` right after the
  nick's own line -> an `edit` of that line (when it changes anything);
- TOPIC by someone else -> `topic` (`relay.topic`);
- JOIN / PART / KICK / QUIT -> `join` / `part` (`relay.membership`); quits of
  a netsplit are held for `relay.netsplit_window` seconds and go out as one
  `part` per channel naming everyone.

What is published is remembered (`Memory`) so later replies, edits and
reactions from other networks can name it on IRC.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ...runtime import Clock
from ...scalar.client import new_nonce
from ...scalar.errors import ConnectionClosed, RateLimited
from ...scalar.events import Event
from ..base import ScalarSide
from ..formatting import irc_to_scalar, strip_formatting
from .config import IrcAccount
from .correction import apply_sed, parse_sed
from .history import Line, nonce
from .link import IrcLink
from .membership import Roster, SplitCollector
from .memory import Memory
from .protocol import fold

log = logging.getLogger(__name__)

WINDOW = 100
"""Plain lines in flight to the hub at once."""
Outcome = Event | None | Exception


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to publish, in the order it happened on IRC."""

    link: IrcLink
    nick: str
    body: str
    kind: str
    received: float
    ctype: str | None = None
    msgid: str | None = None
    reply_msgid: str | None = None
    raw: str = ""
    """The line as sent (for `s/a/b/` corrections)."""
    line: Line | None = None
    """What the server said about it (msgid, time): its nonce, and the link's position."""

    @property
    def nonce(self) -> str:
        """The same line relayed twice (live, then from history) is published once."""
        return (nonce(self.line) if self.line is not None else "") or new_nonce()


class Inbound:
    def __init__(
        self,
        account: IrcAccount,
        side: ScalarSide,
        memory: Memory,
        links: Callable[[str], IrcLink | None],
        *,
        clock: Clock,
        moved: Callable[[IrcLink, Line], None],
    ) -> None:
        self.relay = account.relay
        self.side = side
        self.memory = memory
        self.link_of = links
        self.clock = clock
        self.moved = moved
        """Called after each published line (in order): the link's inbound position."""
        self.roster = Roster()
        self.splits = SplitCollector(self.relay.netsplit_window)
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._split_added = asyncio.Event()
        self.publishing = asyncio.Lock()
        """Held from a publish until what it published is remembered: a Scalar client
        can act on the event (react, reply) in between."""

    def _put(self, link: IrcLink, nick: str, body: str, kind: str) -> None:
        self._queue.put_nowait(Item(link, nick, body, kind, self.clock.monotonic()))

    # --- what the connection reports ---------------------------------------------------

    def message(
        self,
        channel: str,
        nick: str,
        text: str,
        kind: str,
        *,
        tags: dict[str, str | None] | None = None,
        line: Line | None = None,
    ) -> None:
        lk = self.link_of(channel)
        if lk is None or not lk.link.inbound:
            return
        body, ctype = irc_to_scalar(text, markdown=lk.link.markdown)
        if not body.strip():
            return
        tags = tags or {}
        item = Item(
            lk,
            nick,
            body,
            kind,
            self.clock.monotonic(),
            ctype=ctype,
            msgid=tags.get("msgid") or (line.msgid if line is not None else None),
            reply_msgid=tags.get("+draft/reply") or tags.get("+reply"),
            raw=strip_formatting(text),
            line=line,
        )
        self._queue.put_nowait(item)

    def topic(self, channel: str, nick: str | None, text: str) -> None:
        lk = self.link_of(channel)
        if lk is None:
            return
        lk.topic = text
        if nick is not None and lk.link.inbound and self.relay.topic:
            self._put(lk, nick, strip_formatting(text), "topic")

    def member(self, channel: str, nick: str, change: str, reason: str) -> None:
        if change == "join":
            self.roster.joined(channel, nick)
        else:
            self.roster.parted(channel, nick)
        lk = self.link_of(channel)
        if lk is not None and lk.link.inbound and self.relay.membership:
            self._put(lk, nick, strip_formatting(reason), change)

    def quit(self, nick: str, reason: str) -> None:
        channels = self.roster.quit(nick)
        if not self.relay.membership:
            return
        split = SplitCollector.is_split(reason)
        for channel in channels:
            lk = self.link_of(channel)
            if lk is None or not lk.link.inbound:
                continue
            if split:
                self.splits.add(fold(channel), nick, reason, self.clock.monotonic())
                self._split_added.set()
            else:
                self._put(lk, nick, strip_formatting(reason), "part")

    def renamed(self, old: str, new: str) -> None:
        self.roster.renamed(old, new)

    def names(self, channel: str, names: list[str], end: bool) -> None:
        if end:
            self.roster.end_of_names(channel)
        else:
            self.roster.names(channel, names)

    def left(self, channel: str) -> None:
        self.roster.left_channel(channel)

    # --- tasks ---------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._publisher(), name="irc-publisher")
            tasks.create_task(self._splits(), name="irc-netsplits")

    async def _publisher(self) -> None:
        """Relay items in order, up to `WINDOW` plain lines in flight at once.

        One publish at a time would cap a burst at one hub round trip per
        line; the hub takes one connection's requests in order, so lines
        pipelined on the adapter's session keep their order. A line that
        failed (the session was lost) is sent again, in order, with the same
        nonce, so the ones that did get through are not doubled. What needs
        the result of the lines before it (an `s/a/b/` correction, a reply to
        a line in flight) waits until they are all done.
        """
        window: collections.deque[tuple[Item, str, asyncio.Task[Outcome]]]
        window = collections.deque()
        session = None
        async with asyncio.TaskGroup() as tasks:
            while True:
                if window and (len(window) >= WINDOW or self._queue.empty()):
                    await self._settle(window)
                    continue
                item = await self._queue.get()
                if window and self.side.client is not session:
                    while window:  # never let a line on a new session pass one on the old
                        await self._settle(window)
                if self._pipelined(item):
                    if not window:
                        await self.publishing.acquire()
                        session = self.side.client
                    nonce = item.nonce
                    task = tasks.create_task(self._publish_once(item, nonce))
                    window.append((item, nonce, task))
                    continue
                while window:
                    await self._settle(window)
                try:
                    async with self.publishing:
                        await self._publish(item)
                except Exception:  # one odd line must not stop the channel
                    log.exception("irc: could not relay a line from %s", item.nick)

    def _pipelined(self, item: Item) -> bool:
        if item.kind not in ("text", "action", "notice") or item.reply_msgid is not None:
            return False
        return not (self.relay.sed_edits and item.kind == "text" and parse_sed(item.raw))

    async def _publish_once(self, item: Item, nonce: str) -> Outcome:
        """One attempt; its failure is handed back, not raised (it is retried in order)."""
        try:
            return await self._send(item, nonce, retry=False)
        except Exception as exc:
            return exc

    async def _send(
        self, item: Item, nonce: str, *, reply_to: bytes | None = None, retry: bool = True
    ) -> Event | None:
        """Publish `item` into its bridged channel under `nonce` (one place for the
        pipelined and the one-at-a-time paths)."""
        return await self.side.publish(
            item.link.link,
            nick=item.nick,
            body=item.body,
            kind=item.kind,
            ctype=item.ctype,
            reply_to=reply_to,
            received=item.received,
            nonce=nonce,
            retry=retry,
        )

    async def _settle(
        self, window: collections.deque[tuple[Item, str, asyncio.Task[Outcome]]]
    ) -> None:
        """Finish the oldest publish in flight (again, in order, if it failed)."""
        item, nonce, task = window[0]
        event = await task
        if isinstance(event, ConnectionClosed | RateLimited):
            event = await self._send(item, nonce)
        elif isinstance(event, Exception):
            log.error("irc: could not relay a line from %s", item.nick, exc_info=event)
            event = None
        window.popleft()
        if event is not None:
            self.remember(event, item)
            self._moved(item)
        if not window:
            self.publishing.release()

    async def _publish(self, item: Item) -> None:
        if item.kind == "text" and self.relay.sed_edits and await self._correction(item):
            return
        reply_to = self.memory.by_msgid(item.reply_msgid) if item.reply_msgid else None
        event = await self._send(item, item.nonce, reply_to=reply_to)
        if event is not None and item.kind in ("text", "action", "notice"):
            self.remember(event, item)
        if event is not None:
            self._moved(item)

    def _moved(self, item: Item) -> None:
        if item.line is not None:
            self.moved(item.link, item.line)

    def remember(self, event: Event, item: Item) -> None:
        self.memory.remember(event.id, item.nick, item.body, item.msgid)
        self.memory.spoke(fold(item.link.link.target), fold(item.nick), event.id)

    async def _correction(self, item: Item) -> bool:
        """`s/a/b/` right after the nick's own line: published as an edit of that line."""
        sed = parse_sed(item.raw)
        if sed is None:
            return False
        last = self.memory.last_line(fold(item.link.link.target), fold(item.nick))
        said = self.memory.said(last) if last is not None else None
        if last is None or said is None or not said.complete:
            return False
        fixed = apply_sed(said.text, sed)
        if fixed is None or fixed == said.text:
            return False
        event = await self.side.publish(
            item.link.link,
            nick=item.nick,
            body=fixed,
            kind="edit",
            target=last,
            received=item.received,
            nonce=item.nonce,
        )
        if event is None:
            return False
        self.memory.edited(last, fixed)
        self._moved(item)
        return True

    async def _splits(self) -> None:
        """Publish each netsplit's summary when its window has passed."""
        while True:
            due = self.splits.next_due()
            if due is None:
                self._split_added.clear()
                await self._split_added.wait()
                continue
            await asyncio.sleep(max(0.0, due - self.clock.monotonic()))
            for split in self.splits.due(self.clock.monotonic()):
                lk = self.link_of(split.channel)
                if lk is None:
                    continue
                nick, body = split.summary()
                await self.side.publish(lk.link, nick=nick, body=body, kind="part")
