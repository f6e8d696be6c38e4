"""Scalar -> IRC: one sender per link, in order, paced by the connection.

The sender peeks its queue's head, renders it for the channel (`Renderer`:
replies, corrections, reactions, topic, membership, long bodies linked past
`max_lines`), writes its lines while the channel is joined and pops it only
when every line went out, so a link that is down keeps its messages, in
order, and a message cut by a reconnect resumes at its next line.

Reactions go through the link's `ReactionGate`: the first one to a message
is shown at once, the rest of its interval are summed up in one line by the
link's summary task. What was shown is remembered (`Memory`), and with
IRCv3 echo-message and msgid the IRC id of our own line too, so an IRC
reply to it (`+draft/reply`) finds the Scalar event.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from ...runtime import Clock
from ...scalar.events import Event
from ..base import PublicLinks
from .connection import IrcConnection
from .link import IrcLink
from .memory import Memory
from .protocol import fold
from .render import Say, one_line, sender_nick

ECHOES_KEPT = 256
"""Our own lines waiting for their echo (and its msgid)."""


class Outbound:
    def __init__(
        self,
        memory: Memory,
        connection: Callable[[], IrcConnection | None],
        public: PublicLinks | None,
        clock: Clock,
        publishing: asyncio.Lock,
    ) -> None:
        self.memory = memory
        self.publishing = publishing
        self.connection = connection
        self.public = public
        self.clock = clock
        self._echoes: collections.deque[tuple[str, str, bytes]] = collections.deque(
            maxlen=ECHOES_KEPT
        )
        self._held: dict[IrcLink, asyncio.Event] = {}

    async def run(self, lk: IrcLink) -> None:
        self._held[lk] = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._sender(lk), name=f"irc-send-{lk.link.target}")
            tasks.create_task(self._summaries(lk), name=f"irc-reactions-{lk.link.target}")

    # --- the sender ------------------------------------------------------------------------

    async def _sender(self, lk: IrcLink) -> None:
        while True:
            event = await lk.queue.peek()
            dropped = lk.status.dropped

            def current(dropped: int = dropped) -> bool:
                """Overflow drops the oldest event, which is the one being sent."""
                return lk.status.dropped == dropped

            await self._settled(event)
            say = self.render(lk, event)
            if say is not None:
                async with lk.speaking:
                    await self._say(lk, say, current, event)
            if current():
                if say is None:
                    lk.queue.pop()
                else:
                    lk.queue.sent()
                self._remember(event)

    async def _settled(self, event: Event) -> None:
        """Wait for a relay in flight that `event` may point at to be remembered."""
        for ref in (event.target, event.reply_to):
            if ref is not None and self.memory.said(ref) is None and self.publishing.locked():
                async with self.publishing:
                    return

    def render(self, lk: IrcLink, event: Event) -> Say | None:
        """What the channel gets for `event` (None: nothing, or a reaction held back)."""
        if event.kind == "react" and event.target is not None and lk.renderer.style.reactions:
            now = self.clock.monotonic()
            if not lk.reactions.offer(event.target, sender_nick(event), event.body, now):
                self._held[lk].set()
                return None
        if event.kind == "topic" and lk.topic is not None and one_line(event.body) == lk.topic:
            return None
        target = self.memory.said(event.target) if event.target is not None else None
        reply = self.memory.said(event.reply_to) if event.reply_to is not None else None
        link = self.public.message(event.id) if self.public is not None else None
        return lk.renderer.render(event, target=target, reply=reply, link=link)

    def wire_lines(self, lk: IrcLink, event: Event) -> list[str]:
        """The PRIVMSG texts `event` becomes on the wire (CTCP ACTION wrapped), without
        touching the reaction gate: to recognise them in the channel's history."""
        target = self.memory.said(event.target) if event.target is not None else None
        reply = self.memory.said(event.reply_to) if event.reply_to is not None else None
        link = self.public.message(event.id) if self.public is not None else None
        say = lk.renderer.render(event, target=target, reply=reply, link=link)
        if say is None or say.command == "topic":
            return []
        return [f"\x01ACTION {t}\x01" if say.command == "action" else t for t in say.lines]

    async def _say(
        self, lk: IrcLink, say: Say, current: Callable[[], bool], event: Event | None
    ) -> None:
        """Write `say`'s lines while the channel is joined; after a lost connection
        the next line goes out once it is joined again (none twice, none lost)."""

        def ready() -> bool:
            return lk.joined.is_set() and current()

        channel = lk.link.target
        sent = 0
        while sent < len(say.lines) and current():
            await lk.joined.wait()
            conn = self.connection()
            line = say.lines[sent]
            first = sent == 0
            if conn is None:
                await asyncio.sleep(0.05)
            elif await conn.say(
                say.command,
                channel,
                line,
                still=ready,
                reply_msgid=say.reply_msgid if first else None,
            ):
                sent += 1
                if say.command == "topic":
                    lk.topic = line
                elif first and event is not None and "echo-message" in conn.caps:
                    raw = f"\x01ACTION {line}\x01" if say.command == "action" else line
                    self._echoes.append((fold(channel), raw, event.id))
            elif not conn.alive:
                await asyncio.sleep(0.05)  # connection just died; the session ends soon

    def _remember(self, event: Event) -> None:
        if event.kind in ("text", "action", "notice"):
            self.memory.remember(event.id, sender_nick(event), event.body)
        elif event.kind == "edit" and event.target is not None:
            self.memory.edited(event.target, event.body)

    def echo(self, channel: str, text: str, tags: dict[str, str | None]) -> None:
        """Our own line came back: note its IRC msgid for replies to it."""
        msgid = tags.get("msgid")
        if not msgid:
            return
        key = (fold(channel), text)
        for i, (where, raw, event_id) in enumerate(self._echoes):
            if (where, raw) == key:
                for _ in range(i + 1):
                    self._echoes.popleft()
                self.memory.set_msgid(event_id, msgid)
                return

    # --- reaction summaries ---------------------------------------------------------------

    async def _summaries(self, lk: IrcLink) -> None:
        held = self._held[lk]
        while True:
            due = lk.reactions.next_due()
            if due is None:
                held.clear()
                await held.wait()
                continue
            await asyncio.sleep(max(0.0, due - self.clock.monotonic()))
            for batch in lk.reactions.due(self.clock.monotonic()):
                said = self.memory.said(batch.target)
                say = lk.renderer.reactions(batch.who, batch.keys, said)
                async with lk.speaking:
                    await self._say(lk, say, lambda: True, None)
