"""The aiohttp application and its listener, started and stopped as one scope.

Routes come from small modules, each with `setup(app, ctx)`; adding one is a
line in `MODULES`. Handlers never leak a traceback to a client: an exception
is logged and answered with a plain 500.
"""

from __future__ import annotations

import errno
import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Protocol, cast

from aiohttp import web
from prometheus_client import CollectorRegistry

from ..adapters.spec import MediaCredentials
from ..adapters.state import LinkState
from ..config import Config
from ..scalar.server import ScalarServer
from ..scalar.store import Store
from .config import HttpConfig
from .context import CONTEXT, PluginView, WebContext
from .links import PublicLinks

log = logging.getLogger(__name__)

MODULES: tuple[str, ...] = (
    "bridgehost.web.health",
    "bridgehost.web.metrics",
    "bridgehost.web.page",
    "bridgehost.web.messages",
    "bridgehost.web.media",
    "bridgehost.web.chat",
    "bridgehost.web.login",
    "bridgehost.web.scalar_ws",
)
"""Route modules, in registration order (a module's routes may shadow later ones)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouteModule(Protocol):
    def setup(self, app: web.Application, ctx: WebContext) -> None: ...


class ListenError(OSError):
    """The HTTP listener could not be opened (port in use, address not local, ...)."""


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("HTTP %s %s failed", request.method, request.path)
        return web.Response(status=500, text="internal error (logged)\n")


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def web_context(
    config: Config,
    http: HttpConfig,
    server: ScalarServer,
    store: Store,
    *,
    links: Callable[[], Sequence[LinkState]],
    status: Callable[[], dict[str, Any]],
    media_sources: Callable[[], Sequence[MediaCredentials]] = list,
    plugins: Callable[[], Sequence[PluginView]] = list,
    public: PublicLinks | None = None,
) -> WebContext:
    """The context of one app's HTTP side, with a metrics registry of its own."""
    return WebContext(
        config=config,
        http=http,
        server=server,
        store=store,
        clock=server.clock,
        links=links,
        status=status,
        media_sources=media_sources,
        plugins=plugins,
        public=public,
        registry=CollectorRegistry(auto_describe=False),
    )


def build_app(ctx: WebContext, modules: Sequence[str] = MODULES) -> web.Application:
    app = web.Application(middlewares=[_headers, _errors], client_max_size=64 * 1024)
    app[CONTEXT] = ctx
    for name in modules:
        module = cast(RouteModule, importlib.import_module(name))
        module.setup(app, ctx)
    return app


class WebServer:
    """`async with WebServer(ctx) as web:` serves HTTP on `ctx.http` until the block ends."""

    def __init__(self, ctx: WebContext, modules: Sequence[str] = MODULES) -> None:
        self.ctx = ctx
        self.modules = modules
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        cfg = self.ctx.http
        runner = web.AppRunner(
            build_app(self.ctx, self.modules), access_log=None, handle_signals=False
        )
        await runner.setup()
        site = web.TCPSite(runner, cfg.host, cfg.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ListenError(f"http.listen {cfg.listen}: cannot listen: {why or exc}") from None
        self._runner = runner
        port = runner.addresses[0][1] if runner.addresses else cfg.port
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.url = f"http://{host}:{port}"
        log.info("HTTP listening on %s", self.url)
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> WebServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
