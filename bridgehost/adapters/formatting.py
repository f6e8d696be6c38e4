"""Text conversions between Scalar bodies and IRC lines (pure functions, no I/O).

Towards Scalar, IRC formatting codes are styling only: they are stripped, or
rendered as markdown when a link asks for it, so nothing but styling is lost.

Towards IRC, a body must never smuggle a protocol line in: CR, LF and NUL
only ever become line breaks the adapter writes itself, and every line is cut
(at UTF-8 character boundaries) so that what the server relays to others,
`:nick!user@host PRIVMSG #chan :text` plus CRLF, fits the 512-byte limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IRC_LINE_MAX = 512
"""Bytes per IRC line, CRLF included (RFC 1459/2812); tags are counted apart."""

# Worst case of the part of the relayed prefix we do not choose: InspIRCd and
# most networks cap idents at 10 (plus a "~" without identd) and hosts at 63.
NICK_BUDGET = 30
USER_BUDGET = 11
HOST_BUDGET = 63

BOLD, COLOR, HEX_COLOR, RESET = "\x02", "\x03", "\x04", "\x0f"
MONOSPACE, REVERSE, ITALIC, STRIKE, UNDERLINE = "\x11", "\x16", "\x1d", "\x1e", "\x1f"

_CODE = re.compile(
    r"\x03(?:\d{1,2}(?:,\d{1,2})?)?"
    r"|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
# Other C0 controls (CTCP's \x01, bell, ...) carry no text; tab survives.
_OTHER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BREAKERS = re.compile(r"[\r\n\x00\x01]")
_MD_INLINE = re.compile(r"([\\`*_~\[\]<>|])")
_MD_LINE_START = re.compile(r"^(\s*)([#>+\-=]|\d+[.)])")

_MARKS = {BOLD: "**", ITALIC: "*", STRIKE: "~~", MONOSPACE: "`"}
_ORDER = (BOLD, ITALIC, STRIKE, MONOSPACE)


# --- IRC -> Scalar -------------------------------------------------------------------


def has_formatting(text: str) -> bool:
    return _CODE.search(text) is not None


def strip_formatting(text: str) -> str:
    """Plain text: formatting codes and other control characters removed."""
    return _OTHER_CONTROL.sub("", _CODE.sub("", text))


def _escape_markdown(text: str) -> str:
    text = _MD_INLINE.sub(r"\\\1", text)
    return _MD_LINE_START.sub(r"\1\\\2", text)


def _runs(text: str) -> list[tuple[frozenset[str], str]]:
    """Split into (active styles, text) runs; colours, underline, reverse are dropped."""
    runs: list[tuple[frozenset[str], str]] = []
    active: set[str] = set()
    pos = 0
    for m in _CODE.finditer(text):
        if m.start() > pos:
            runs.append((frozenset(active), text[pos : m.start()]))
        code = m.group()[0]
        if code == RESET:
            active.clear()
        elif code in _MARKS:
            active ^= {code}
        pos = m.end()
    if pos < len(text):
        runs.append((frozenset(active), text[pos:]))
    merged: list[tuple[frozenset[str], str]] = []
    for styles, raw in runs:
        chunk = _OTHER_CONTROL.sub("", raw)
        if merged and merged[-1][0] == styles:
            merged[-1] = (styles, merged[-1][1] + chunk)
        elif chunk:
            merged.append((styles, chunk))
    return merged


def _render_run(styles: frozenset[str], chunk: str) -> str:
    if not styles:
        return _escape_markdown(chunk)
    core = chunk.strip()
    if not core:
        return chunk
    lead = chunk[: len(chunk) - len(chunk.lstrip())]
    trail = chunk[len(chunk.rstrip()) :]
    if MONOSPACE in styles:
        fence = "``" if "`" in core else "`"
        pad = " " if fence == "``" else ""
        inner = f"{fence}{pad}{core}{pad}{fence}"
    else:
        inner = _escape_markdown(core)
    opening = "".join(_MARKS[s] for s in _ORDER if s in styles and s != MONOSPACE)
    closing = "".join(_MARKS[s] for s in reversed(_ORDER) if s in styles and s != MONOSPACE)
    return f"{lead}{opening}{inner}{closing}{trail}"


def to_markdown(text: str) -> str:
    """Bold, italic, strikethrough and monospace as markdown; the rest escaped."""
    return "".join(_render_run(styles, chunk) for styles, chunk in _runs(text))


def irc_to_scalar(text: str, *, markdown: bool) -> tuple[str, str | None]:
    """(body, ctype) for an IRC message: markdown only when asked and styled."""
    if markdown and has_formatting(text):
        return to_markdown(text), "text/markdown"
    return strip_formatting(text), None


# --- Scalar -> IRC -------------------------------------------------------------------


def clean_nick(nick: str) -> str:
    """A display name that cannot break a line or a CTCP frame."""
    return _OTHER_CONTROL.sub("", nick).strip() or "?"


def body_lines(body: str) -> list[str]:
    """Logical lines of a body: split at CR/LF; NUL and \\x01 dropped; blank lines skipped."""
    out = []
    for raw in _LINE_BREAK.split(body):
        line = raw.replace("\x00", "").replace("\x01", "")
        if line.strip():
            out.append(line.rstrip())
    return out


def text_budget(
    command: str, target: str, *, nick_len: int = NICK_BUDGET, action: bool = False
) -> int:
    """Bytes of text that fit a line the server relays as
    `:nick!user@host COMMAND target :text` + CRLF (worst-case user and host)."""
    prefix = 1 + nick_len + 1 + USER_BUDGET + 1 + HOST_BUDGET
    overhead = prefix + 1 + len(command) + 1 + len(target.encode()) + 2 + 2
    if action:
        overhead += len("\x01ACTION \x01")
    return IRC_LINE_MAX - overhead


def _cut(data: bytes, limit: int) -> int:
    """Largest index <= limit that is a UTF-8 character boundary (at least one character)."""
    if len(data) <= limit:
        return len(data)
    cut = limit
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    if cut == 0:
        cut = 1
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:
            cut += 1
    return cut


def truncate_utf8(text: str, limit: int) -> str:
    data = text.encode()
    return data[: _cut(data, limit)].decode() if len(data) > limit else text


def split_utf8(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut at character boundaries, after
    the last space when one is in the second half of the piece.

    Nothing is dropped: the pieces joined give `text` back (a space it broke
    at ends the piece before the cut).
    """
    data = text.encode()
    pieces = []
    while len(data) > limit:
        cut = _cut(data, limit)
        space = data.rfind(b" ", 0, cut)
        if space >= limit // 2:
            cut = space + 1
        pieces.append(data[:cut].decode())
        data = data[cut:]
    if data or not pieces:
        pieces.append(data.decode())
    return pieces


@dataclass(frozen=True, slots=True)
class Rendered:
    """The IRC texts for one Scalar event; `linked` when the rest is behind a link."""

    lines: tuple[str, ...]
    linked: bool = False


def _rest_note(pieces: int, link: str) -> str:
    return f"[… {pieces} more line{'s' if pieces != 1 else ''}: {link}]"


def render_lines(
    body: str,
    *,
    nick: str,
    fmt: str,
    budget: int,
    max_lines: int,
    link: str | None = None,
    fields: dict[str, str] | None = None,
) -> Rendered:
    """Format a body into texts of at most `budget` bytes each, losing nothing.

    Each logical line is split to fit and gets the format (`<{nick}> {body}`).
    Past `max_lines`, with a `link` to a page showing the whole event, the
    last kept line says how much more there is and where; without one every
    line is sent (the connection paces them). `fields` are extra format
    fields (`plainnick`); `nick` is used as given.
    """
    values = {"nick": nick, **(fields or {})}
    room = max(budget - len(fmt.format(body="", **values).encode()), 16)
    pieces: list[str] = []
    for line in body_lines(body):
        pieces.extend(split_utf8(line, room))
    linked = False
    if link is not None and len(pieces) > max_lines:
        keep = max(max_lines - 1, 0)
        note = _rest_note(len(pieces) - keep, link)
        if len(note.encode()) > room:
            note = truncate_utf8(link, room)
        pieces = [*pieces[:keep], note]
        linked = True
    lines = (_BREAKERS.sub("", fmt.format(body=p, **values)) for p in pieces)
    return Rendered(tuple(lines), linked)
