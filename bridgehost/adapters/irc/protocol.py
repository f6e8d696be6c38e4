"""IRC protocol facts the connection needs: case folding, the SASL PLAIN
payload, nick fallbacks, and which numerics mean what (pure, no I/O)."""

from __future__ import annotations

import base64
from typing import Literal

from irc.events import Command

LineKind = Literal["text", "action", "notice"]
"""What an IRC chat line is: PRIVMSG, CTCP ACTION, or NOTICE."""

JOIN_ERRORS = {
    str(Command.lookup(code)): code
    for code in ("403", "405", "437", "471", "473", "474", "475", "477", "489", "520")
}
JOIN_ERROR_TEXT = {
    "403": "no such channel",
    "405": "joined too many channels",
    "437": "channel temporarily unavailable",
    "471": "channel is full (+l)",
    "473": "channel is invite only (+i)",
    "474": "banned from channel (+b)",
    "475": "bad channel key (+k)",
    "477": "channel needs a registered nick",
    "489": "channel needs a TLS connection",
    "520": "channel needs operator status",
}
NICK_ERRORS = {"nicknameinuse", "erroneusnickname", "unavailresource", "nickcollision"}
SASL_FAILURES = {
    "saslfail": "904",
    "sasltoolong": "905",
    "saslaborted": "906",
    "nicklocked": "902",
}
WANTED_CAPS = ("echo-message", "message-tags", "server-time", "batch")
"""echo-message: our lines are not relayed back; the rest: a channel's history
on join (`chathistory` batches of lines with `msgid` and `time`), see history.py."""


def fold(name: str) -> str:
    """RFC 1459 case folding, as IRC servers compare nicks and channels."""
    return name.lower().translate(str.maketrans("[]\\~", "{}|^"))


def sasl_plain_chunks(username: str, password: str) -> list[str]:
    """AUTHENTICATE arguments for PLAIN: base64 in 400-byte chunks, '+' after a full one."""
    blob = base64.b64encode(f"{username}\0{username}\0{password}".encode()).decode("ascii")
    chunks = [blob[i : i + 400] for i in range(0, len(blob), 400)]
    if not chunks or len(chunks[-1]) == 400:
        chunks.append("+")
    return chunks


def nick_candidates(nick: str, alternates: tuple[str, ...], count: int = 8) -> list[str]:
    """The configured nick, the alternates, then `nick_`, `nick__`, `nick1`, `nick2`, ..."""
    out = [nick, *alternates]
    out += [nick + "_" * i for i in (1, 2)]
    out += [f"{nick}{i}" for i in range(1, count)]
    return list(dict.fromkeys(out))
