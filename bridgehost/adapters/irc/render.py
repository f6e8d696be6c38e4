"""What a Scalar event looks like in an IRC channel (pure).

IRC has lines, actions, notices and a topic; everything richer is told in
words the way IRC people would write it (protocol §11):

| Scalar | IRC line (`format` `<{nick}> {body}`) |
|---|---|
| reply | `<bob> alice: text` (plus `+draft/reply` where the server has tags) |
| edit | `<bob> s/teh/the/` when that is short, else `<bob> * new text` |
| delete | `* bob deleted a message` (off by default) |
| react | `* bob reacted 👍 to alice: "first 40 characters…"` |
| topic | `TOPIC #chan :text` |
| join / part | `* bob joined` / `* bob left (reason)` (off by default) |

The adapter looks up the message an event points at (`Said`) and passes it
in; nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ...scalar.events import Event
from ..formatting import body_lines, render_lines, strip_formatting, text_budget, truncate_utf8
from .correction import correction
from .memory import Said
from .nicks import NickStyle

Command = Literal["text", "action", "notice", "topic"]
MESSAGE_COMMANDS: dict[str, Command] = {"text": "text", "action": "action", "notice": "notice"}
QUOTE_CHARS = 40
TOPIC_MAX = 300
"""Bytes of a topic sent; InspIRCd's default TOPICLEN is 307."""
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class IrcStyle:
    """How one IRC account shows Scalar events (its `format`s and `relay:` switches)."""

    format: str = "<{nick}> {body}"
    action_format: str = "{nick} {body}"
    max_lines: int = 10
    nicks: NickStyle = field(default_factory=NickStyle)
    replies: bool = True
    edits: str = "diff"
    """`diff` (`s/old/new/` when short), `full` (`* new text`) or `off`."""
    deletes: bool = False
    reactions: bool = True
    topic: bool = True
    membership: bool = False


@dataclass(frozen=True, slots=True)
class Say:
    """What to send for one event: lines of one command, or a new topic."""

    command: Command
    """`text` (PRIVMSG), `action` (CTCP ACTION), `notice` or `topic` (TOPIC)."""
    lines: tuple[str, ...]
    reply_msgid: str | None = None
    """The IRC msgid this answers, for an IRCv3 `+draft/reply` tag on the first line."""
    linked: bool = False


def sender_nick(event: Event) -> str:
    """The name IRC users see: the relayed nick, else the sender's local part."""
    if event.nick:
        return event.nick
    return event.sender.split("@", 1)[0].lstrip("!")


def one_line(text: str) -> str:
    """Text squeezed onto one line: breaks and runs of spaces become one space."""
    return strip_formatting(_SPACES.sub(" ", text)).strip()


def quote(text: str, chars: int = QUOTE_CHARS) -> str:
    flat = one_line(text)
    return flat if len(flat) <= chars else flat[:chars].rstrip() + "…"


class Renderer:
    """Renders events for one IRC channel (its name sizes the line budget)."""

    def __init__(self, style: IrcStyle, channel: str, *, nick_len: int) -> None:
        self.style = style
        self.channel = channel
        self.nick_len = nick_len

    def _budget(self, command: str, action: bool = False) -> int:
        return text_budget(command, self.channel, nick_len=self.nick_len, action=action)

    def _lines(
        self, event: Event, body: str, *, command: Command = "text", link: str | None = None
    ) -> Say:
        action = command == "action"
        fmt = self.style.action_format if action else self.style.format
        wire = "NOTICE" if command == "notice" else "PRIVMSG"
        out = render_lines(
            body,
            nick="",
            fmt=fmt,
            budget=self._budget(wire, action),
            max_lines=self.style.max_lines,
            link=link,
            fields=self.style.nicks.fields(sender_nick(event)),
        )
        return Say(command, out.lines, linked=out.linked)

    def _note(self, text: str) -> Say:
        """A one-line account of something that happened (`* bob reacted ...`)."""
        return Say("text", (truncate_utf8(one_line(text), self._budget("PRIVMSG")),))

    def render(
        self,
        event: Event,
        *,
        target: Said | None = None,
        reply: Said | None = None,
        link: str | None = None,
    ) -> Say | None:
        """The IRC form of `event`, or None when this channel shows nothing for it.

        `target` is what an edit, delete or reaction points at, `reply` what a
        reply answers (None when unknown); `link` is a page with the whole
        event, used when the body needs more than `max_lines` lines.
        """
        style, kind = self.style, event.kind
        who = style.nicks.plain(sender_nick(event))
        if kind in MESSAGE_COMMANDS:
            body = event.body
            msgid = None
            if reply is not None and style.replies:
                msgid = reply.msgid
                if kind != "action" and not _addresses(body, reply.nick):
                    body = f"{reply.nick}: {body}"
            said = self._lines(event, body, command=MESSAGE_COMMANDS[kind], link=link)
            return Say(said.command, said.lines, msgid, said.linked)
        if kind == "edit":
            return self._edit(event, target, link)
        if kind == "delete":
            return self._note(f"* {who} deleted a message") if style.deletes else None
        if kind == "react":
            return (
                self.reactions([sender_nick(event)], [event.body], target)
                if style.reactions
                else None
            )
        if kind == "topic":
            if not style.topic:
                return None
            return Say("topic", (truncate_utf8(one_line(event.body), TOPIC_MAX),))
        if kind in ("join", "part"):
            if not style.membership:
                return None
            if kind == "join":
                return self._note(f"* {who} joined")
            reason = one_line(event.body)
            return self._note(f"* {who} left" + (f" ({reason})" if reason else ""))
        return None

    def _edit(self, event: Event, target: Said | None, link: str | None) -> Say | None:
        mode = self.style.edits
        if mode == "off" or not body_lines(event.body):
            return None
        if target is not None and target.complete and target.text == event.body:
            return None
        fix = None
        if mode == "diff" and target is not None and target.complete:
            fix = correction(target.text, event.body)
        return self._lines(event, fix or f"* {event.body}", link=link)

    def reactions(self, who: list[str], keys: list[str], target: Said | None) -> Say:
        """One line for reactions to one message: `* bob, carol reacted 👍 ❤ to ...`
        (`who` are the reacting nicks, as relayed)."""
        names = ", ".join(dict.fromkeys(self.style.nicks.plain(n) for n in who)) or "?"
        shown = " ".join(dict.fromkeys(one_line(k) or "?" for k in keys))
        if target is None:
            return self._note(f"* {names} reacted {shown}")
        whom = self.style.nicks.plain(target.nick)
        return self._note(f'* {names} reacted {shown} to {whom}: "{quote(target.text)}"')


def _addresses(body: str, nick: str) -> bool:
    """Whether a reply already starts by naming the one it answers (`alice: ...`)."""
    head = body.lstrip()[: len(nick) + 1].casefold()
    return head in (nick.casefold() + ":", nick.casefold() + ",")
