"""One IRC channel link's state during the adapter's life (shared by its parts)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ...config import Bridge, Link
from ..base import OutQueue
from ..state import LinkState
from .history import Line, Position
from .protocol import LineKind
from .reactions import ReactionGate
from .render import Renderer


@dataclass(eq=False)
class IrcLink:
    bridge: Bridge
    link: Link
    status: LinkState
    queue: OutQueue
    renderer: Renderer
    reactions: ReactionGate
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    removed: asyncio.Event = field(default_factory=asyncio.Event)
    removed_reason: str = ""
    outcome: asyncio.Future[str | None] | None = None
    topic: str | None = None
    """The channel's topic as IRC last told us (not sent again when unchanged)."""
    speaking: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while one event's lines go out, so a reaction summary never splits them."""
    position: Position | None = None
    """The last line relayed IRC -> Scalar (kept in the store), where history resumes."""
    saved: Position | None = None
    history: list[tuple[str, str, LineKind, Line]] = field(default_factory=list)
    """The channel's history batch being received: (nick, text, kind, line)."""
    own: list[Line] = field(default_factory=list)
    """Our own lines in the first history batch since the adapter started."""
    history_seen: asyncio.Future[bool] | None = None
    """Done when the first join's history batch ended (True), or none came (False)."""
