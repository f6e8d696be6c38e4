"""Bridges, bots, and the whole document: parse, load, or fall back to the default."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import yaml

from ..scalar import ids
from ..web.config import http_section
from .accounts import AccountType, AccountTypeError, account_type, accounts_section
from .model import DIRECTIONS, Account, BotConfig, Bridge, Config, ConfigError, Link
from .plugins import ProcessOptions, command_of, environment, process_options
from .reader import Reader
from .sections import server_section

DEFAULT_FILE = "bridgehost.yaml"


def _channel(r: Reader, key: str, domain: str) -> str:
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


def _bridges(
    problems: list[str],
    items: list[tuple[str, Any]],
    accounts: dict[str, Account],
    domain: str,
    base: Path,
) -> tuple[Bridge, ...]:
    bridges = []
    seen: set[tuple[str, str]] = set()
    types: dict[str, AccountType] = {}
    for kind_name in {a.type for a in accounts.values()}:
        with contextlib.suppress(AccountTypeError):  # reported under accounts already
            types[kind_name] = account_type(kind_name)
    for path, raw in items:
        b = Reader(problems, path, raw, base)
        channel = _channel(b, "channel", domain)
        links = []
        for lpath, lraw in b.items("links"):
            lr = Reader(problems, lpath, lraw, base)
            account = lr.text("account", "", required=True)
            acc = accounts.get(account)
            kind = types.get(acc.type) if acc is not None else None
            default = kind.default_target(channel) if kind is not None else None
            if default is not None:
                target = lr.text("target", default) or default
            else:
                target = lr.text("target", "", required=True)
            if account and account not in accounts:
                known = ", ".join(accounts) or "none configured"
                lr.problem("account", f"unknown account {account!r} (known: {known})")
            wrong = kind.check_target(target) if kind is not None and target else None
            if wrong is not None:
                lr.problem("target", wrong)
            if (account, target.lower()) in seen:
                lr.problem("target", f"{account}/{target} is linked twice")
            seen.add((account, target.lower()))
            links.append(
                Link(
                    account=account,
                    target=target,
                    direction=lr.choice("direction", "both", DIRECTIONS),
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
        r = Reader(problems, path, raw, base)
        command: tuple[str, ...] = ()
        if "command" in r.raw:
            command = command_of(r)
            if "plugin" in r.raw:
                r.problem("plugin", "a bot is either a `plugin:` class or a `command:`, not both")
            plugin = " ".join(command)
        else:
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
                command=command,
                env=environment(r) if command else {},
                cwd=r.path_("cwd") if command else None,
                process=process_options(r, adapter=False) if command else ProcessOptions(),
            )
        )
        r.unknown()
    return tuple(bots)


def parse_config(raw: Any, *, base: Path, path: Path | None = None) -> Config:
    """Validate a loaded YAML document; raises ConfigError listing every problem."""
    problems: list[str] = []
    top = Reader(problems, "", raw, base)
    server = server_section(top.child("server"))
    processes: dict[str, ProcessOptions] = {}
    accounts = accounts_section(top.child("accounts"), server.domain, processes)
    bridges = _bridges(problems, top.items("bridges"), accounts, server.domain, base)
    bots = _bots(problems, top.items("bots"), server.domain, base)
    http = http_section(top.child("http")) if "http" in top.raw else None
    top.unknown()
    if problems:
        raise ConfigError(problems)
    return Config(
        server=server,
        accounts=accounts,
        bridges=bridges,
        bots=bots,
        http=http,
        processes=processes,
        path=path,
    )


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
    "http": {"listen": "127.0.0.1:7668"},
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
    return Config(server=config.server, bots=config.bots, http=config.http, embedded=True)
