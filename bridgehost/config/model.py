"""The typed configuration: frozen dataclasses, the only form the rest of the program sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..scalar.settings import Limits, ServerSettings, Timeouts
from ..web.config import HttpConfig


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- the typed config ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TLSFiles:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class ServerConfig:
    domain: str = "localhost"
    listen: tuple[str, ...] = ("tcp://127.0.0.1:7667",)
    tls: TLSFiles | None = None
    data_dir: Path = Path("bridgehost-data")
    guests: bool = False
    history_keep: int = 10000
    history_sync: str = "normal"
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    unix_mode: int = 0o600

    def settings(self, titles: tuple[tuple[str, str], ...] = ()) -> ServerSettings:
        return ServerSettings(
            domain=self.domain,
            guests=self.guests,
            history_keep=self.history_keep,
            limits=self.limits,
            timeouts=self.timeouts,
            titles=titles,
        )


@dataclass(frozen=True, slots=True)
class Flood:
    burst: int = 4
    interval: float = 0.7
    window: int = 4096
    """Bytes the server may hold unprocessed (fakelag) before we wait; 0 = unbounded."""


@dataclass(frozen=True, slots=True)
class IrcAccount:
    name: str
    host: str
    nick: str
    port: int = 6697
    tls: bool = True
    verify: bool = True
    ca: Path | None = None
    alt_nicks: tuple[str, ...] = ()
    username: str | None = None
    realname: str = "bridgehost"
    password: str | None = field(default=None, repr=False)
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    nickserv_password: str | None = field(default=None, repr=False)
    flood: Flood = field(default_factory=Flood)
    queue: int = 1000
    max_lines: int = 5
    format: str = "<{nick}> {body}"
    action_format: str = "{nick} {body}"
    reconnect_initial: float = 2.0
    reconnect_max: float = 300.0
    rejoin_delay: float = 10.0
    ping_interval: float = 120.0
    ping_timeout: float = 60.0
    type: str = "irc"


@dataclass(frozen=True, slots=True)
class MatrixAccount:
    name: str
    homeserver: str
    user_id: str
    password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    device_name: str = "bridgehost"
    verify: bool = True
    queue: int = 1000
    redactions: str = "notice"
    reconnect_initial: float = 2.0
    reconnect_max: float = 300.0
    type: str = "matrix"


@dataclass(frozen=True, slots=True)
class FsAccount:
    name: str
    root: Path
    nick: str = "fs"
    users: tuple[str, ...] = ()
    """User IDs (or bare names of this server) with a DM directory and a presence file."""
    queue: int = 1000
    type: str = "fs"


Account = IrcAccount | MatrixAccount | FsAccount


Direction = Literal["in", "out", "both"]
"""in: remote -> Scalar only; out: Scalar -> remote only; both."""
DIRECTIONS: tuple[Direction, ...] = ("in", "out", "both")


@dataclass(frozen=True, slots=True)
class Link:
    account: str
    target: str
    direction: Direction = "both"
    key: str | None = field(default=None, repr=False)
    markdown: bool = False

    @property
    def inbound(self) -> bool:
        """Remote -> Scalar."""
        return self.direction in ("in", "both")

    @property
    def outbound(self) -> bool:
        """Scalar -> remote."""
        return self.direction in ("out", "both")


@dataclass(frozen=True, slots=True)
class Bridge:
    channel: str
    links: tuple[Link, ...]
    title: str | None = None


@dataclass(frozen=True, slots=True)
class BotConfig:
    plugin: str
    id: str
    topics: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    prefix: str = "!"
    rate: float = 2.0
    burst: int = 5
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    accounts: dict[str, Account] = field(default_factory=dict)
    bridges: tuple[Bridge, ...] = ()
    bots: tuple[BotConfig, ...] = ()
    http: HttpConfig | None = None
    """The HTTP listener (bridgehost.web); None when the config has no `http:`."""
    path: Path | None = None
    embedded: bool = False

    def links_of(self, account: str) -> list[tuple[Bridge, Link]]:
        return [(b, link) for b in self.bridges for link in b.links if link.account == account]

    def reserved_id(self, account: str) -> str:
        """The reserved ID an adapter publishes as, e.g. `!irc-libera@example.com`."""
        acc = self.accounts[account]
        return f"!{acc.type}-{account.lower()}@{self.server.domain}"


# --- reading ------------------------------------------------------------------------
