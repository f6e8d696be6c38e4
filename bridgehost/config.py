"""YAML -> typed, validated config (design.md §2).

Every problem is collected with its YAML path before anything starts, so a
user fixes a config in one round: `bridges[0].links[1].account: unknown
account 'libra' (known: libera, home)`. `${ENV}` and `${file:PATH}` put
secrets in from outside the file; their values never appear in a message.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .scalar import ids
from .scalar.server import ListenSpec
from .scalar.settings import Limits, ServerSettings, Timeouts

DEFAULT_FILE = "bridgehost.yaml"
_SECRET = re.compile(r"\$\{([^}]+)\}")
_IRC_CHANNEL = re.compile(r"[#&][^\s,\x00-\x1f]{1,199}")
T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class Link:
    account: str
    target: str
    direction: str = "both"
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
    path: Path | None = None
    embedded: bool = False

    def links_of(self, account: str) -> list[tuple[Bridge, Link]]:
        return [(b, link) for b in self.bridges for link in b.links if link.account == account]

    def reserved_id(self, account: str) -> str:
        """The reserved ID an adapter publishes as, e.g. `!irc-libera@example.com`."""
        acc = self.accounts[account]
        return f"!{acc.type}-{account.lower()}@{self.server.domain}"


# --- reading ------------------------------------------------------------------------


class _Reader:
    """Typed getters over one YAML map that record problems instead of raising."""

    def __init__(self, problems: list[str], path: str, raw: Any, base: Path) -> None:
        self.problems, self.path, self.base = problems, path, base
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problem("", f"must be a map, not {type(raw).__name__}")
            raw = {}
        self.raw: dict[str, Any] = raw
        self._known: set[str] = set()

    def where(self, key: str) -> str:
        if not key:
            return self.path or "(top level)"
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.where(key)}: {text}")

    def child(self, key: str) -> _Reader:
        self._known.add(key)
        return _Reader(self.problems, self.where(key), self.raw.get(key), self.base)

    def _get(self, key: str, default: T, check: Callable[[Any], bool], what: str) -> T:
        self._known.add(key)
        if key not in self.raw or self.raw[key] is None:
            return default
        value = self.raw[key]
        if not check(value):
            self.problem(key, f"must be {what}, not {_show(value)}")
            return default
        return value  # type: ignore[no-any-return]

    def text(
        self, key: str, default: Any = None, *, required: bool = False, secret: bool = False
    ) -> Any:
        if required and self.raw.get(key) is None:
            self._known.add(key)
            self.problem(key, "is required")
            return default
        value = self._get(
            key, default, lambda v: isinstance(v, str | int) and not isinstance(v, bool), "text"
        )
        if value is None or value is default:
            return value
        return self._substitute(key, str(value), secret)

    def boolean(self, key: str, default: bool) -> bool:
        return self._get(key, default, lambda v: isinstance(v, bool), "true or false")

    def integer(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        value = self._get(key, default, lambda v: type(v) is int, "an integer")
        return int(self._bounded(key, value, default, lo, hi))

    def number(self, key: str, default: float, lo: float | None = None) -> float:
        value = self._get(key, default, lambda v: type(v) in (int, float), "a number")
        return float(self._bounded(key, value, default, lo, None))

    def _bounded(self, key: str, value: Any, default: Any, lo: Any, hi: Any) -> Any:
        if lo is not None and value < lo:
            self.problem(key, f"must be at least {lo}")
            return default
        if hi is not None and value > hi:
            self.problem(key, f"must be at most {hi}")
            return default
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.problem(key, f"must be one of {', '.join(choices)}, not {value!r}")
            return default
        return str(value)

    def path_(
        self, key: str, default: Path | None = None, *, required: bool = False
    ) -> Path | None:
        value = self.text(key, None, required=required)
        if value is None:
            return default
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p

    def items(self, key: str) -> list[tuple[str, Any]]:
        value: list[Any] = self._get(key, [], lambda v: isinstance(v, list), "a list")
        return [(f"{self.where(key)}[{i}]", item) for i, item in enumerate(value)]

    def texts(self, key: str) -> tuple[str, ...]:
        value: list[str] = self._get(
            key,
            [],
            lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            "a list of text",
        )
        return tuple(value)

    def _substitute(self, key: str, value: str, secret: bool) -> str:
        def repl(m: re.Match[str]) -> str:
            ref = m.group(1)
            if ref.startswith("file:"):
                path = Path(os.path.expanduser(ref[5:]))
                path = path if path.is_absolute() else self.base / path
                try:
                    return path.read_text().rstrip("\r\n")
                except OSError as exc:
                    self.problem(key, f"cannot read secret file {path}: {exc.strerror}")
                    return ""
            if ref not in os.environ:
                self.problem(key, f"environment variable {ref} is not set")
                return ""
            return os.environ[ref]

        return _SECRET.sub(repl, value)

    def unknown(self) -> None:
        for key in self.raw:
            if key not in self._known:
                self.problem(str(key), "unknown key")


def _show(value: Any) -> str:
    return type(value).__name__ if isinstance(value, dict | list) else repr(value)[:60]


def _server(r: _Reader) -> ServerConfig:
    domain = str(r.text("domain", "localhost")).lower()
    if not ids.valid_domain(domain):
        r.problem("domain", f"not a valid domain name: {domain!r}")
    listen = r.texts("listen") or ("tcp://127.0.0.1:7667",)
    for i, url in enumerate(listen):
        try:
            ListenSpec.parse(url)
        except ValueError as exc:
            r.problem(f"listen[{i}]", str(exc))
    tls = None
    if "tls" in r.raw:
        t = r.child("tls")
        cert, key = t.path_("cert", required=True), t.path_("key", required=True)
        t.unknown()
        if cert is not None and key is not None:
            tls = TLSFiles(cert, key)
    if tls is None and any(u.startswith("tls://") for u in listen):
        r.problem("tls", "tls:// listeners need tls: {cert: ..., key: ...}")
    h = r.child("history")
    keep = h.integer("keep", 10000, lo=0)
    sync = h.choice("sync", "normal", ("normal", "full"))
    h.unknown()
    lr = r.child("limits")
    d = Limits()
    limits = Limits(
        rate=lr.integer("rate", d.rate, lo=0),
        burst=lr.integer("burst", d.burst, lo=1),
        subs=lr.integer("subs", d.subs, lo=1),
        connections=lr.integer("connections", d.connections, lo=1),
        send_buffer=lr.integer("send_buffer", d.send_buffer, lo=16384),
        auth_failures=lr.integer("auth_failures", d.auth_failures, lo=1),
    )
    lr.unknown()
    tr = r.child("timeouts")
    dt = Timeouts()
    timeouts = Timeouts(
        ident=tr.number("ident", dt.ident, lo=0.1),
        ping=tr.number("ping", dt.ping, lo=0.1),
        pong=tr.number("pong", dt.pong, lo=0.1),
    )
    tr.unknown()
    mode = r.text("unix_mode", "0600")
    try:
        unix_mode = int(str(mode), 8)
    except ValueError:
        r.problem("unix_mode", f"must be an octal mode like 0600, not {mode!r}")
        unix_mode = 0o600
    config = ServerConfig(
        domain=domain,
        listen=listen,
        tls=tls,
        data_dir=r.path_("data_dir", r.base / "bridgehost-data") or Path("bridgehost-data"),
        guests=r.boolean("guests", False),
        history_keep=keep,
        history_sync=sync,
        limits=limits,
        timeouts=timeouts,
        unix_mode=unix_mode,
    )
    r.unknown()
    return config


def _irc(name: str, r: _Reader) -> IrcAccount:
    tls = r.boolean("tls", True)
    nick = r.text("nick", required=True) or "bridgehost"
    sasl_user = sasl_pw = None
    if "sasl" in r.raw:
        s = r.child("sasl")
        sasl_user = s.text("username", nick)
        sasl_pw = s.text("password", required=True, secret=True)
        s.unknown()
    fr = r.child("flood")
    flood = Flood(
        burst=fr.integer("burst", 4, lo=1),
        interval=fr.number("interval", 0.7, lo=0.0),
        window=fr.integer("window", 4096, lo=0),
    )
    if 0 < flood.window < 1024:
        fr.problem("window", "must be 0 (off) or at least 1024 bytes (two full lines)")
    fr.unknown()
    acc = IrcAccount(
        name=name,
        host=r.text("host", "", required=True),
        port=r.integer("port", 6697 if tls else 6667, lo=1, hi=65535),
        tls=tls,
        verify=r.boolean("verify", True),
        ca=r.path_("ca"),
        nick=nick,
        alt_nicks=r.texts("alt_nicks"),
        username=r.text("username"),
        realname=r.text("realname", "bridgehost"),
        password=r.text("password", secret=True),
        sasl_username=sasl_user,
        sasl_password=sasl_pw,
        nickserv_password=r.text("nickserv_password", secret=True),
        flood=flood,
        queue=r.integer("queue", 1000, lo=1),
        max_lines=r.integer("max_lines", 5, lo=1),
        format=r.text("format", "<{nick}> {body}"),
        action_format=r.text("action_format", "{nick} {body}"),
        reconnect_initial=r.number("reconnect_initial", 2.0, lo=0.01),
        reconnect_max=r.number("reconnect_max", 300.0, lo=0.01),
        rejoin_delay=r.number("rejoin_delay", 10.0, lo=0.0),
        ping_interval=r.number("ping_interval", 120.0, lo=0.1),
        ping_timeout=r.number("ping_timeout", 60.0, lo=0.1),
    )
    for key in ("format", "action_format"):
        try:
            str(getattr(acc, key)).format(nick="n", body="b")
        except (KeyError, IndexError, ValueError) as exc:
            r.problem(key, f"bad format string (use {{nick}} and {{body}}): {exc}")
        else:
            if "{body}" not in str(getattr(acc, key)):
                r.problem(key, "the format must contain {body}")
    return acc


def _matrix(name: str, r: _Reader) -> MatrixAccount:
    acc = MatrixAccount(
        name=name,
        homeserver=r.text("homeserver", "", required=True),
        user_id=r.text("user_id", "", required=True),
        password=r.text("password", secret=True),
        access_token=r.text("access_token", secret=True),
        device_name=r.text("device_name", "bridgehost"),
        verify=r.boolean("verify", True),
        queue=r.integer("queue", 1000, lo=1),
        redactions=r.choice("redactions", "notice", ("notice", "ignore")),
        reconnect_initial=r.number("reconnect_initial", 2.0, lo=0.01),
        reconnect_max=r.number("reconnect_max", 300.0, lo=0.01),
    )
    if acc.homeserver and not acc.homeserver.startswith(("http://", "https://")):
        r.problem("homeserver", "must be an http:// or https:// URL")
    if acc.user_id and not re.fullmatch(r"@[^:]+:.+", acc.user_id):
        r.problem("user_id", f"must look like @name:server, not {acc.user_id!r}")
    if acc.password is None and acc.access_token is None:
        r.problem("", "needs password or access_token")
    return acc


def _os_user() -> str:
    try:
        return getpass.getuser()[:64] or "fs"
    except (OSError, KeyError, ImportError):
        return "fs"


def _fs(name: str, r: _Reader) -> FsAccount:
    nick = r.text("nick") or _os_user()
    if not 1 <= len(nick) <= 64 or not nick.isprintable():
        r.problem("nick", f"must be 1..64 printable characters, not {nick[:70]!r}")
    users = []
    for i, user in enumerate(r.texts("users")):
        try:
            parsed = ids.parse(user if "@" in user else f"{user}@localhost")
        except Exception:
            parsed = None
        if parsed is None or parsed.kind is not ids.Kind.USER:
            r.problem(f"users[{i}]", f"not a user ID like 'alice@example.com' or 'alice': {user!r}")
            continue
        users.append(str(parsed) if "@" in user else parsed.name)
    return FsAccount(
        name=name,
        root=r.path_("root", required=True) or Path("."),
        nick=nick,
        users=tuple(users),
        queue=r.integer("queue", 1000, lo=1),
    )


_ACCOUNT_TYPES: dict[str, Callable[[str, _Reader], Account]] = {
    "irc": _irc,
    "matrix": _matrix,
    "fs": _fs,
}


def _accounts(r: _Reader) -> dict[str, Account]:
    out: dict[str, Account] = {}
    for name in r.raw:
        a = r.child(str(name))
        kind = a.text("type", required=True)
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", str(name)):
            a.problem("", "account names may use letters, digits, '.', '_', '-' (max 40)")
        parse = _ACCOUNT_TYPES.get(str(kind))
        if parse is None:
            if kind is not None:
                a.problem("type", f"unknown account type {kind!r} (known: irc, matrix, fs)")
            continue
        out[str(name)] = parse(str(name), a)
        a.unknown()
    return out


def _channel(r: _Reader, key: str, domain: str) -> str:
    value = r.text(key, "", required=True)
    if not value:
        return ""
    try:
        parsed = ids.parse(str(value))
    except Exception:
        r.problem(key, f"not a valid channel ID like '#name@{domain}': {value!r}")
        return ""
    if not parsed.is_channel:
        r.problem(key, f"must be a channel ('#name@{domain}'), not {value!r}")
    elif parsed.domain != domain:
        r.problem(key, f"channel must be of the server's domain {domain!r}")
    return str(parsed)


def _fs_target(r: _Reader, channel: str) -> str:
    """An fs link's directory name: `target`, by default the channel itself."""
    target = r.text("target", channel) or channel
    if target in ("in", "out"):
        r.problem("target", f"{target!r} is the name of the fs root's own pipe and log")
    try:
        parsed = ids.parse(target)
    except Exception:
        parsed = None
    if parsed is not None and not parsed.is_channel:
        r.problem("target", f"{target!r} is kept for direct messages with that ID")
    return target


def _bridges(
    problems: list[str],
    items: list[tuple[str, Any]],
    accounts: dict[str, Account],
    domain: str,
    base: Path,
) -> tuple[Bridge, ...]:
    bridges = []
    seen: set[tuple[str, str]] = set()
    for path, raw in items:
        b = _Reader(problems, path, raw, base)
        channel = _channel(b, "channel", domain)
        links = []
        for lpath, lraw in b.items("links"):
            lr = _Reader(problems, lpath, lraw, base)
            account = lr.text("account", "", required=True)
            acc = accounts.get(account)
            if isinstance(acc, FsAccount):
                target = _fs_target(lr, channel)
            else:
                target = lr.text("target", "", required=True)
            if account and account not in accounts:
                known = ", ".join(accounts) or "none configured"
                lr.problem("account", f"unknown account {account!r} (known: {known})")
            if isinstance(acc, IrcAccount) and target and not _IRC_CHANNEL.fullmatch(target):
                lr.problem(
                    "target",
                    f"an IRC channel starts with '#' and has no spaces, commas or control"
                    f" characters: {target!r}",
                )
            if isinstance(acc, MatrixAccount) and target and not target.startswith(("#", "!")):
                lr.problem(
                    "target", f"a Matrix room is '#alias:server' or '!id:server': {target!r}"
                )
            if (account, target.lower()) in seen:
                lr.problem("target", f"{account}/{target} is linked twice")
            seen.add((account, target.lower()))
            links.append(
                Link(
                    account=account,
                    target=target,
                    direction=lr.choice("direction", "both", ("in", "out", "both")),
                    key=lr.text("key", secret=True),
                    markdown=lr.boolean("markdown", False),
                )
            )
            lr.unknown()
        if not links:
            b.problem("links", "a bridge needs at least one link")
        bridges.append(Bridge(channel=channel, links=tuple(links), title=b.text("title")))
        b.unknown()
    return tuple(bridges)


def _bots(
    problems: list[str], items: list[tuple[str, Any]], domain: str, base: Path
) -> tuple[BotConfig, ...]:
    bots = []
    for path, raw in items:
        r = _Reader(problems, path, raw, base)
        plugin = r.text("plugin", "", required=True)
        ident = r.text("id", "", required=True)
        if ident:
            try:
                parsed = ids.parse(ident)
                if parsed.kind is not ids.Kind.RESERVED or parsed.domain != domain:
                    r.problem("id", f"a bot ID is a reserved ID like '!name@{domain}'")
                ident = str(parsed)
            except Exception:
                r.problem("id", f"not a valid ID: {ident!r}")
        topics = []
        for i, t in enumerate(r.texts("topics")):
            try:
                topics.append(ids.normalise(t))
            except Exception:
                r.problem(f"topics[{i}]", f"not a valid topic: {t!r}")
        config: dict[str, Any] = r._get("config", {}, lambda v: isinstance(v, dict), "a map")
        bots.append(
            BotConfig(
                plugin=plugin,
                id=ident,
                topics=tuple(topics),
                config=dict(config),
                prefix=r.text("prefix", "!"),
                rate=r.number("rate", 2.0, lo=0.01),
                burst=r.integer("burst", 5, lo=1),
                timeout=r.number("timeout", 30.0, lo=0.1),
            )
        )
        r.unknown()
    return tuple(bots)


def parse_config(raw: Any, *, base: Path, path: Path | None = None) -> Config:
    """Validate a loaded YAML document; raises ConfigError listing every problem."""
    problems: list[str] = []
    top = _Reader(problems, "", raw, base)
    server = _server(top.child("server"))
    accounts = _accounts(top.child("accounts"))
    bridges = _bridges(problems, top.items("bridges"), accounts, server.domain, base)
    bots = _bots(problems, top.items("bots"), server.domain, base)
    top.unknown()
    if problems:
        raise ConfigError(problems)
    return Config(server=server, accounts=accounts, bridges=bridges, bots=bots, path=path)


def load_config(path: Path) -> Config:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    return parse_config(raw, base=path.resolve().parent, path=path)


EMBEDDED_DEFAULT = {
    "server": {
        "domain": "localhost",
        "listen": ["tcp://127.0.0.1:7667"],
        "data_dir": "./bridgehost-data",
        "guests": True,
    },
    "bots": [
        {"plugin": "ping", "id": "!ping@localhost", "topics": ["#lobby@localhost"]},
        {"plugin": "help", "id": "!help@localhost", "topics": ["#lobby@localhost"]},
        {"plugin": "seen", "id": "!seen@localhost", "topics": ["#lobby@localhost"]},
    ],
}


def find_config(explicit: Path | None) -> Config:
    """The config to run: `-c FILE`, else ./bridgehost.yaml, else the embedded default."""
    if explicit is not None:
        return load_config(explicit)
    local = Path(DEFAULT_FILE)
    if local.exists():
        return load_config(local)
    config = parse_config(EMBEDDED_DEFAULT, base=Path.cwd())
    return Config(server=config.server, bots=config.bots, embedded=True)
