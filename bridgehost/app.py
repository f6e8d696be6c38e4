"""Wiring and lifecycle: store, hub and listeners, adapters, bots; signals.

Start-up order is store -> server -> HTTP -> adapters -> bots, and shutdown the
reverse, so that every connection gets `bye` and every accepted event is
committed before the process exits. Adapters and bots run under
`supervise()`: one that fails is logged and restarted with backoff, and
never takes the process (or the other bridges) down.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

from .adapters.base import Adapter, AdapterContext
from .adapters.spec import adapter_spec
from .adapters.state import LinkState
from .config import Account, Config
from .plugins.host import PluginHost, migrate_in
from .plugins.supervisor import PluginState
from .runtime import TaskSet, supervise
from .scalar import client as scalar_client
from .scalar.client import Client
from .scalar.server import ScalarServer
from .scalar.store import Store
from .web.links import PublicLinks, load_key
from .web.status import STATUS_FILE, StatusFile

log = logging.getLogger(__name__)

__all__ = ["STATUS_FILE", "App"]


def tls_context(config: Config) -> ssl.SSLContext | None:
    files = config.server.tls
    if files is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    return context


class App:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: Store | None = None
        self.server: ScalarServer | None = None
        self.adapters: list[Adapter] = []
        self.bot_host: Any = None
        self.plugins: PluginHost | None = None
        """Plugin processes: `process: true` adapters, `type: exec` accounts and bots."""
        self.tasks = TaskSet("app")
        self.urls: list[str] = []
        self.web: Any = None
        """The HTTP side (bridgehost.web.server.WebServer) when `http:` is configured."""
        self.public: PublicLinks | None = None
        self.status_file = StatusFile(config.server.data_dir, self.status)
        self._stopping = asyncio.Event()

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config.server
        if self.config.embedded:
            log.info("no config file: running the embedded default (domain %s)", cfg.domain)
        self.store = await Store.open(
            cfg.data_dir, keep=cfg.history_keep, synchronous=cfg.history_sync.upper(), owner=True
        )
        titles = tuple((b.channel, b.title) for b in self.config.bridges if b.title)
        self.server = ScalarServer(
            cfg.settings(titles),
            self.store,
            tls=tls_context(self.config),
            unix_mode=cfg.unix_mode,
        )
        try:
            self.urls = await self.server.start(list(cfg.listen))
            await self._start_web()
        except BaseException:
            await self.server.close()
            await self.store.close()
            raise
        for name, account in self.config.accounts.items():
            if not account.process:
                await migrate_in(self.store, cfg.data_dir, name)
                self._start_adapter(name, account)
        await self._start_bots()
        self.plugins = PluginHost(self.config, self.server, self.store)
        await self.plugins.start()
        self.tasks.spawn(self.status_file.run(), name="status-writer")

    async def _start_web(self) -> None:
        http = self.config.http
        if http is None:
            return
        if http.public_url:
            self.public = PublicLinks(http.public_url, load_key(self.config.server.data_dir))
        from .web.server import WebServer, web_context

        assert self.server is not None and self.store is not None
        ctx = web_context(
            self.config,
            http,
            self.server,
            self.store,
            links=self.link_statuses,
            status=self.status,
            media_sources=self.media_sources,
            plugins=self.plugin_states,
            public=self.public,
        )
        self.web = WebServer(ctx)
        await self.web.start()

    def plugin_states(self) -> Sequence[PluginState]:
        return self.plugins.states() if self.plugins is not None else []

    def media_sources(self) -> Sequence[Any]:
        return [a for a in self.adapters if hasattr(a, "media_credentials")]

    def _start_adapter(self, name: str, account: Account) -> None:
        assert self.store is not None
        reserved = self.config.reserved_id(name)
        try:
            factory = adapter_spec(account.type).load()
        except Exception as exc:
            log.error("adapter %s (%s) could not be loaded: %s", name, account.type, exc)
            return
        ctx = AdapterContext(
            config=self.config,
            account=account,
            reserved_id=reserved,
            connect=self.local_client_factory(reserved),
            kv=self.store.namespace(f"adapter:{name}"),
            public=self.public,
        )
        adapter: Adapter = factory(ctx)
        self.adapters.append(adapter)
        self.tasks.spawn(supervise(f"adapter {name}", adapter.run), name=f"adapter-{name}")
        log.info(
            "adapter %s (%s) started as %s with %d link(s)",
            name,
            account.type,
            reserved,
            len(ctx.links),
        )

    async def _start_bots(self) -> None:
        if all(bot.is_exec for bot in self.config.bots):
            return
        try:
            host_mod = importlib.import_module("bridgehost.bots.host")
        except ImportError as exc:
            log.error("bot framework unavailable: %s", exc)
            return
        self.bot_host = host_mod.BotHost(self)
        await self.bot_host.start(self.config.bots)

    def local_client_factory(self, ident: str) -> Callable[[], Any]:
        """Connect in-process as `ident` (a reserved ID) with a token that only lives in memory."""
        assert self.server is not None
        server = self.server
        token = server.auth.issue_ephemeral(ident)

        async def connect() -> Client:
            sock = await server.connect_local()
            return await scalar_client.connect_socket(sock, id=ident, secret=token)

        return connect

    async def run(self) -> None:
        """Start, serve until SIGINT/SIGTERM, stop cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s received: shutting down", sig.name)
        self._stopping.set()

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        if self.plugins is not None:
            await self.plugins.stop()
        if self.bot_host is not None:
            await self.bot_host.stop()
        await self.tasks.close()
        if self.web is not None:
            await self.web.close()
        if self.server is not None:
            await self.server.close()
        if self.store is not None:
            await self.store.close()
            log.info("store flushed and closed")
        self.status_file.write_now()

    # --- health -------------------------------------------------------------------------

    def link_statuses(self) -> list[LinkState]:
        links = [st for adapter in self.adapters for st in adapter.status()]
        if self.plugins is not None:
            links.extend(self.plugins.link_statuses())
        return links

    def status(self) -> dict[str, Any]:
        server = self.server
        return {
            "time": time.time(),
            "pid": os.getpid(),
            "listening": self.urls,
            "http": self.web.url if self.web is not None else None,
            "connections": len(server.connections) if server else 0,
            "published": server.hub.published if server else 0,
            "links": [st.as_dict() for st in self.link_statuses()],
            "bots": self._bot_statuses(),
            "plugins": self.plugins.status() if self.plugins is not None else [],
        }

    def _bot_statuses(self) -> list[dict[str, Any]]:
        bots: list[dict[str, Any]] = self.bot_host.status() if self.bot_host is not None else []
        if self.plugins is not None:
            bots.extend(self.plugins.bot_status())
        return sorted(bots, key=lambda b: str(b.get("id")))
