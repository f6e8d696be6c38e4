"""What the route modules get: the running parts they read, passed in by the app."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from ..adapters.spec import MediaCredentials
from ..adapters.state import LinkState
from ..config import Config
from ..scalar.server import ScalarServer
from ..scalar.settings import Clock
from ..scalar.store import Store
from .config import HttpConfig
from .links import PublicLinks


@dataclass(frozen=True, slots=True)
class WebContext:
    config: Config
    http: HttpConfig
    server: ScalarServer
    store: Store
    clock: Clock
    links: Callable[[], Sequence[LinkState]]
    """Every link of every adapter, live."""
    status: Callable[[], dict[str, Any]]
    """The JSON `bridgehost status` prints."""
    media_sources: Callable[[], Sequence[MediaCredentials]]
    """What can fetch Matrix media (homeserver base URL, access token) as an account."""
    plugins: Callable[[], Sequence[PluginView]]
    """Every plugin process (bridgehost.plugins), live."""
    public: PublicLinks | None
    """Signs and checks public links; None without `http.public_url`."""
    registry: CollectorRegistry
    """This app's metrics (never the process-global registry)."""


class PluginView(Protocol):
    """One plugin process as its supervisor keeps it (bridgehost.plugins.supervisor)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str:
        """starting, running, restarting, failed (left stopped) or stopped."""

    @property
    def since(self) -> float:
        """Wall-clock time of its last change of state."""

    @property
    def pid(self) -> int | None: ...
    @property
    def restarts(self) -> int: ...
    @property
    def last_exit(self) -> str | None: ...
    @property
    def failing_since(self) -> float | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_error_time(self) -> float | None: ...


CONTEXT = web.AppKey("bridgehost", WebContext)
