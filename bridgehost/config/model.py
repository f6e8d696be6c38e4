"""The typed configuration: frozen dataclasses, the only form the rest of the program sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ..scalar.settings import Limits, ServerSettings, Timeouts
from ..web.config import HttpConfig
from .plugins import ProcessOptions


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


class Account(Protocol):
    """What the program knows of every account; each adapter's config module
    (`bridgehost.adapters.NAME.config`) defines the full, typed one."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def process(self) -> bool:
        """Run this account's adapter in a supervised child process."""

    def reserved_id(self, domain: str) -> str:
        """The reserved ID its adapter publishes as, e.g. `!irc-libera@example.com`."""


@dataclass(frozen=True, slots=True)
class AccountKeys:
    """What the config loader reads for every account before its type's reader runs."""

    name: str
    process: bool
    domain: str
    """The server's domain (reserved IDs must be of it)."""


def default_reserved_id(type_: str, name: str, domain: str) -> str:
    """`!TYPE-NAME@DOMAIN`, the reserved ID of an account that does not name its own."""
    return f"!{type_}-{name.lower()}@{domain}"


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
    command: tuple[str, ...] = ()
    """A bot that is any program (docs/plugins.md), run with its session on stdio."""
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: ProcessOptions = field(default_factory=ProcessOptions)

    @property
    def is_exec(self) -> bool:
        return bool(self.command)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    accounts: dict[str, Account] = field(default_factory=dict)
    bridges: tuple[Bridge, ...] = ()
    bots: tuple[BotConfig, ...] = ()
    http: HttpConfig | None = None
    """The HTTP listener (bridgehost.web); None when the config has no `http:`."""
    processes: dict[str, ProcessOptions] = field(default_factory=dict)
    """How each account with `process: true` (exec ones too) runs as a process."""
    path: Path | None = None
    embedded: bool = False

    def links_of(self, account: str) -> list[tuple[Bridge, Link]]:
        return [(b, link) for b in self.bridges for link in b.links if link.account == account]

    def reserved_id(self, account: str) -> str:
        """The reserved ID an adapter publishes as, e.g. `!irc-libera@example.com`."""
        return self.accounts[account].reserved_id(self.server.domain)
