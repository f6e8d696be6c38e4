"""What the server core needs to know, independent of how the app configures it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..runtime.clock import Clock, SystemClock
from .wire import MAX_FRAME

__all__ = ["Clock", "Limits", "ServerSettings", "SystemClock", "Timeouts"]


@dataclass(frozen=True, slots=True)
class Limits:
    rate: int = 5
    burst: int = 20
    subs: int = 500
    connections: int = 10000
    """Public connections server-wide (in-process adapters, bots and plugins not counted)."""
    connections_per_address: int = 50
    """Public connections from one IPv4 address or IPv6 /64."""
    channels: int = 10000
    """Channels the server keeps (with events, configured, or subscribed to now); past it
    a new channel is `forbidden` (§10)."""
    send_buffer: int = 1 << 20
    """Unsent bytes per subscriber before it is a slow consumer (§9)."""
    frame: int = MAX_FRAME
    auth_failures: int = 5
    """Failed idents per remote address before `rate-limited`; refills one per 2 s."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    ident: float = 10.0
    ping: float = 60.0
    pong: float = 30.0


@dataclass(frozen=True, slots=True)
class ServerSettings:
    domain: str = "localhost"
    guests: bool = False
    history_keep: int = 10000
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    titles: tuple[tuple[str, str], ...] = ()
    """(channel, title) pairs from the config: channels that exist from the start."""
