"""Events as lines a person reads in a terminal or a log file (pure).

`bridgehost tail` and the fs front end's `out` files show a channel as text,
one line per line of body. Rich events (protocol §11) name the message they
act on; a `Transcript` remembers the recent messages it has shown so that an
edit, deletion, reaction or reply says whose message and what it said:

    <alice> what time is it?
    <bob> (reply to alice: "what time is it?") noon
    * bob edited "noon": half past twelve
    * carol reacted 👍 to bob: "half past twelve"
    * bob deleted "half past twelve"
    * dave set the topic: lunch plans
    * erin joined / * erin left (bye)

A kind it does not know is shown as `-nick- [kind] body`, never an error.
"""

from __future__ import annotations

import collections
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from ..scalar.events import Event

QUOTE_CHARS = 40
_BREAK = re.compile(r"\r\n|\r|\n")
_SPACES = re.compile(r"\s+")


_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _unsafe(ch: str) -> bool:
    if ord(ch) in _BIDI:
        return True
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")


def escape_controls(text: str) -> str:
    """Control characters (and line/paragraph separators, bidi overrides) as
    `\\xNN` / `\\uNNNN`, so one line is one line on any terminal and no
    escape sequence from a remote network reaches it."""
    if text.isprintable():
        return text
    return "".join(_escape_char(ch) if _unsafe(ch) else ch for ch in text)


def default_name(event: Event) -> str:
    return event.nick or event.sender


def _quote(text: str) -> str:
    flat = _SPACES.sub(" ", text).strip()
    return flat if len(flat) <= QUOTE_CHARS else flat[:QUOTE_CHARS].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class _Shown:
    name: str
    text: str


class Transcript:
    """Renders one topic's events; `memory` bounds the messages remembered."""

    def __init__(self, name: Callable[[Event], str] = default_name, *, memory: int = 2000) -> None:
        self.name = name
        self.memory = memory
        self._shown: collections.OrderedDict[bytes, _Shown] = collections.OrderedDict()

    def _remember(self, event_id: bytes, name: str, text: str) -> None:
        self._shown[event_id] = _Shown(name, text)
        self._shown.move_to_end(event_id)
        while len(self._shown) > self.memory:
            self._shown.popitem(last=False)

    def _about(self, target: bytes | None) -> _Shown | None:
        return self._shown.get(target) if target is not None else None

    def lines(self, event: Event) -> list[str]:
        """The lines for `event` (no time stamp, no line ends)."""
        who = self.name(event)
        kind, body = event.kind, event.body
        target = self._about(event.target)
        if kind in ("text", "action", "notice"):
            self._remember(event.id, who, body)
            parts = _BREAK.split(body) or [""]
            replied = self._about(event.reply_to)
            if replied is not None:
                parts[0] = f'(reply to {replied.name}: "{_quote(replied.text)}") {parts[0]}'
            head = {"text": f"<{who}> ", "action": f"* {who} ", "notice": f"-{who}- "}[kind]
            return [head + part for part in parts]
        if kind == "presence":
            return [f"{event.sender} is {body}"]
        if kind == "edit":
            what = f'"{_quote(target.text)}"' if target else "a message"
            if target is not None and event.target is not None:
                self._remember(event.target, target.name, body)
            first, *rest = _BREAK.split(body) or [""]
            return [f"* {who} edited {what}: {first}", *rest]
        if kind == "delete":
            what = f'"{_quote(target.text)}"' if target else "a message"
            return [f"* {who} deleted {what}" + (f" ({_flat(body)})" if body.strip() else "")]
        if kind == "react":
            whom = f' to {target.name}: "{_quote(target.text)}"' if target else ""
            return [f"* {who} reacted {_flat(body)}{whom}"]
        if kind == "topic":
            return [f"* {who} set the topic: {_flat(body)}"]
        if kind == "join":
            return [f"* {who} joined"]
        if kind == "part":
            return [f"* {who} left" + (f" ({_flat(body)})" if body.strip() else "")]
        return [f"-{who}- [{kind}] {line}" for line in _BREAK.split(body)]


def _flat(text: str) -> str:
    return _SPACES.sub(" ", text).strip()
