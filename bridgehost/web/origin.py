"""Which browser origins may use this server: its public URL and its listen address.

A browser sends `Origin` with every WebSocket handshake and every
cross-origin POST; checking it against the origins bridgehost is really
served from (never against the request's own `Host`, which a DNS-rebinding
site controls) keeps another site from using a visitor's browser to talk to
the server. Clients that are not browsers send no `Origin`; they are not a
visitor's browser, so they pass.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from .config import HttpConfig

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def _origin(scheme: str, host: str, port: int | None) -> str:
    default = {"http": 80, "https": 443}.get(scheme)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def normalise(origin: str) -> str | None:
    """`Origin` header -> scheme://host[:port] (lowercase, default port dropped), or None."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    return _origin(parts.scheme, parts.hostname.lower(), port)


def allowed_origins(http: HttpConfig, port: int) -> frozenset[str]:
    """Origins of `http.public_url` and of the listen address on `port` (the bound port)."""
    found: set[str] = set()
    if http.public_url:
        public = normalise(http.public_url)
        if public:
            found.add(public)
    host = http.host.lower()
    hosts = [host]
    try:
        if ipaddress.ip_address(host).is_loopback:
            hosts = [h.strip("[]") for h in _LOOPBACK_NAMES]
    except ValueError:
        if host == "localhost":
            hosts = [h.strip("[]") for h in _LOOPBACK_NAMES]
    for name in hosts:
        found.add(_origin("http", name, port))
    return frozenset(found)


def local_port(request: web.Request) -> int:
    """The port this request came in on (the configured one may be 0: chosen at bind)."""
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sock, tuple) and len(sock) >= 2:
        return int(sock[1])
    return request.url.port or 0


def check_origin(request: web.Request, http: HttpConfig) -> None:
    """Raise 403 when a browser on a foreign site sent this request."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if normalise(origin) not in allowed_origins(http, local_port(request)):
        raise web.HTTPForbidden(
            text=f"origin {origin!r} is not allowed here (set http.public_url to the address "
            "people open bridgehost at)\n"
        )
