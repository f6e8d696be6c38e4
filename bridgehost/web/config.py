"""The `http:` section: where the HTTP side listens and how the outside reaches it.

No import of the config package at run time: the config loader imports this
module while it is itself being imported (it reads sections it does not own
through the reader object it passes in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..config.reader import Reader

DEFAULT_LISTEN = "127.0.0.1:7668"
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 7668
    public_url: str | None = None
    """How people outside reach this listener (long-message and media links); no
    trailing slash. Without it no such links are made."""
    unhealthy_after: float = 300.0
    """Seconds a link may fail before /healthz answers 503."""
    media_max_bytes: int = 50 * MiB
    media_cache_bytes: int = 500 * MiB
    refresh: int = 10
    """Seconds between reloads of the status page."""

    @property
    def listen(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 in brackets) -> (host, port); raises ValueError."""
    parts = urlsplit(f"//{value}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {value!r}") from exc
    if not parts.hostname or port is None or parts.path or parts.query or parts.username:
        raise ValueError(f"must be HOST:PORT like {DEFAULT_LISTEN!r}, not {value!r}")
    return parts.hostname, port


def http_section(r: Reader) -> HttpConfig:
    d = HttpConfig()
    listen = str(r.text("listen", DEFAULT_LISTEN))
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        r.problem("listen", str(exc))
        host, port = d.host, d.port
    public = r.text("public_url")
    if public is not None:
        parts = urlsplit(str(public))
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            r.problem("public_url", f"must be an http:// or https:// URL, not {public!r}")
            public = None
        else:
            public = str(public).rstrip("/")
    config = HttpConfig(
        host=host,
        port=port,
        public_url=public,
        unhealthy_after=r.number("unhealthy_after", d.unhealthy_after, lo=0.1),
        media_max_bytes=r.integer("media_max_bytes", d.media_max_bytes, lo=1),
        media_cache_bytes=r.integer("media_cache_bytes", d.media_cache_bytes, lo=0),
        refresh=r.integer("refresh", d.refresh, lo=1),
    )
    r.unknown()
    return config
