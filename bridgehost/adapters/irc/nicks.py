"""How a relayed name looks on IRC: coloured, and unable to ping its owner (pure).

A bridged IRC user would otherwise be highlighted by every line of their own
that comes back from another network with their nick in it (`<alice> ...`
seen by alice, who is also in the IRC channel under that nick). A zero-width
joiner after the first character keeps the name readable and stops every
client's highlight match. Colours make many relayed speakers easy to tell
apart: a stable hash of the name picks one of the mIRC colours, so a person
keeps theirs across lines, restarts and channels.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..formatting import COLOR, clean_nick

ZWJ = "\u200d"
"""ZERO WIDTH JOINER: invisible, but it breaks a client's highlight match."""

PALETTE = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
"""The 16 mIRC colours without white (0), black (1) and light grey (15), each
of which vanishes on a common background."""


def anti_highlight(nick: str) -> str:
    """`alice` -> `a\u200dlice`: looks the same, pings nobody."""
    return nick[:1] + ZWJ + nick[1:] if nick else nick


def colour_of(nick: str) -> int:
    """The nick's colour: stable across runs (CRC-32, not Python's salted hash)
    and the same for `Alice` and `alice`."""
    return PALETTE[zlib.crc32(nick.casefold().encode()) % len(PALETTE)]


def coloured(shown: str, nick: str) -> str:
    """`shown` in the colour of `nick`; a two-digit code, so a name starting
    with a digit is not read as part of it."""
    return f"{COLOR}{colour_of(nick):02d}{shown}{COLOR}"


@dataclass(frozen=True, slots=True)
class NickStyle:
    """A link's choice of nick decorations (`relay:` `nick_colours`, `anti_highlight`)."""

    colours: bool = True
    anti_highlight: bool = True

    def plain(self, nick: str) -> str:
        """The name without colour (`{plainnick}`), anti-highlighted when on."""
        nick = clean_nick(nick)
        return anti_highlight(nick) if self.anti_highlight else nick

    def fields(self, nick: str) -> dict[str, str]:
        """Format fields for a relayed speaker: `nick` (coloured when on) and `plainnick`."""
        plain = self.plain(nick)
        shown = coloured(plain, clean_nick(nick)) if self.colours else plain
        return {"nick": shown, "plainnick": plain}
