"""The `server` section's reader (each account type reads its own section:
see `accounts.py` and `bridgehost/adapters/NAME/config.py`)."""

from __future__ import annotations

from pathlib import Path

from ..scalar import ids
from ..scalar.server import ListenSpec
from ..scalar.settings import Limits, Timeouts
from .model import ServerConfig, TLSFiles
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
        connections_per_address=lr.integer(
            "connections_per_address", d.connections_per_address, lo=1
        ),
        channels=lr.integer("channels", d.channels, lo=1),
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
