"""Readers for the `server` section and each account type."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from pathlib import Path

from ..scalar import ids
from ..scalar.server import ListenSpec
from ..scalar.settings import Limits, Timeouts
from .model import Account, Flood, FsAccount, IrcAccount, MatrixAccount, ServerConfig, TLSFiles
from .reader import Reader


def server_section(r: Reader) -> ServerConfig:
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


def _irc(name: str, r: Reader) -> IrcAccount:
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


def _matrix(name: str, r: Reader) -> MatrixAccount:
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


def _fs(name: str, r: Reader) -> FsAccount:
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


_ACCOUNT_TYPES: dict[str, Callable[[str, Reader], Account]] = {
    "irc": _irc,
    "matrix": _matrix,
    "fs": _fs,
}


def accounts_section(r: Reader) -> dict[str, Account]:
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
