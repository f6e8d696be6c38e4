"""What the route modules get: the running parts they read, passed in by the app."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from ..config import Config
from ..runtime import Histogram
from ..scalar.server import ScalarServer
from ..scalar.settings import Clock
from ..scalar.store import Store
from .config import HttpConfig
from .links import PublicLinks


class LinkView(Protocol):
    """One link's health as the adapters keep it (`adapters.state.LinkState`;
    read, never written, here)."""

    @property
    def account(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def queued(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def relayed_in(self) -> int: ...
    @property
    def relayed_out(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_error_time(self) -> float | None: ...
    @property
    def since(self) -> float: ...
    @property
    def failing_since(self) -> float | None: ...
    @property
    def latency_in(self) -> Histogram: ...
    @property
    def latency_out(self) -> Histogram: ...


class MediaSource(Protocol):
    """An adapter that can fetch Matrix media with its own login."""

    def media_credentials(self) -> tuple[str, str] | None:
        """(homeserver base URL, access token) while logged in, else None."""


@dataclass(frozen=True, slots=True)
class WebContext:
    config: Config
    http: HttpConfig
    server: ScalarServer
    store: Store
    clock: Clock
    links: Callable[[], Sequence[LinkView]]
    """Every link of every adapter, live."""
    status: Callable[[], dict[str, Any]]
    """The JSON `bridgehost status` prints."""
    media_sources: Callable[[], Sequence[MediaSource]]
    public: PublicLinks | None
    """Signs and checks public links; None without `http.public_url`."""
    registry: CollectorRegistry
    """This app's metrics (never the process-global registry)."""


CONTEXT = web.AppKey("bridgehost", WebContext)
