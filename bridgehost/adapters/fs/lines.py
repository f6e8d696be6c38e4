"""Pure text handling of the fs adapter: the `out` line format, escaping of
control characters, and cutting what writers put into `in` into lines.

No I/O here; the adapter and the FIFO reader feed bytes in and write what
comes out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from ...scalar.events import Event
from ..transcript import Transcript, escape_controls

__all__ = ["MAX_LINE_BYTES", "Line", "LineSplitter", "escape_controls", "format_event"]

MAX_LINE_BYTES = 12 * 1024
"""Longest body published from one line of `in`: a frame holds 16382 bytes
and the event around the body (topic, sender, nick, origin, id) needs room."""


def stamp(time_ms: int) -> str:
    """`YYYY-MM-DD HH:MM:SS` in UTC."""
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def display_name(event: Event, domain: str) -> str:
    """Who to show: the relayed nick, else the sender without our own domain."""
    if event.nick:
        return event.nick
    name, _, dom = event.sender.rpartition("@")
    return name if dom == domain and name else event.sender


def format_event(event: Event, domain: str, transcript: Transcript | None = None) -> str:
    """The lines `out` gets for one event, each ending in a newline.

    `<nick> body` for text, `* nick body` for actions, `-nick- body` for
    notices; a multi-line body gives one line per line, each stamped. Edits,
    reactions, deletions, topics and membership are `* nick ...` lines that
    name the message they act on when `transcript` has shown it.
    """
    when = stamp(event.time)
    shown = transcript or Transcript(functools.partial(display_name, domain=domain))
    return "".join(f"{when} {escape_controls(line)}\n" for line in shown.lines(event))


def format_notice(time_ms: int, text: str) -> str:
    """A line of the adapter's own (`-!- text`), for the root `out`."""
    return f"{stamp(time_ms)} -!- {escape_controls(text)}\n"


def parse_input(line: str) -> tuple[str, str] | None:
    """(kind, body) for a line written to a topic's `in`; None for a blank line."""
    if not line.strip():
        return None
    if line.startswith("/me "):
        body = line[4:]
        return ("action", body) if body.strip() else None
    return "text", line


def utf8_cut(data: bytes, limit: int) -> int:
    """Where to cut `data` to at most `limit` bytes without splitting a UTF-8
    character (at `limit` itself when the bytes are not UTF-8 there)."""
    if len(data) <= limit:
        return len(data)
    cut = limit
    while cut > limit - 3 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if (data[cut] & 0xC0) != 0x80 else limit


@dataclass(frozen=True, slots=True)
class Line:
    """One line read from `in`; `part` numbers the pieces of an over-long line
    (0 for a whole line, 1, 2, ... for pieces; `last` marks its final piece)."""

    data: bytes
    part: int = 0
    last: bool = True


class LineSplitter:
    """Bytes from any number of writes -> lines; a line longer than `limit`
    bytes comes out in pieces of at most `limit` bytes, none lost."""

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._buf = b""
        self._part = 0

    def feed(self, data: bytes) -> list[Line]:
        self._buf += data
        out: list[Line] = []
        while True:
            nl = self._buf.find(b"\n")
            if 0 <= nl <= self.limit:
                line, self._buf = self._buf[:nl], self._buf[nl + 1 :]
                out.append(self._finish(line.removesuffix(b"\r")))
            elif len(self._buf) > self.limit:
                cut = utf8_cut(self._buf, self.limit)
                piece, self._buf = self._buf[:cut], self._buf[cut:]
                self._part += 1
                out.append(Line(piece, self._part, last=False))
            else:
                return out

    def end(self) -> list[Line]:
        """The writer closed: whatever is left is a last line without a newline."""
        if not self._buf and not self._part:
            return []
        line, self._buf = self._buf.removesuffix(b"\r"), b""
        return [self._finish(line)]

    def _finish(self, line: bytes) -> Line:
        if not self._part:
            return Line(line)
        self._part += 1
        part, self._part = self._part, 0
        return Line(line, part)
