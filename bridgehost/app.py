"""Wiring and lifecycle: store, hub and listeners, HTTP, adapters, bots, plugins.

`async with App.open(config) as app:` is the whole program as one scope:
store -> server -> HTTP -> adapters -> bots -> plugin processes start in that
order, and close in the reverse order whatever fails, wherever (a start-up that fails halfway
closes what had started and raises the original error): every connection
gets `bye` and every accepted event is committed before the store closes.
Adapters run under `supervise()` in the app's one root TaskGroup: one that
fails is logged and restarted with backoff and never takes the process (or
the other bridges) down; one that raises `runtime.Fatal` is stopped and
reported once. Signals are the CLI's business, not the app's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from .adapters.base import Adapter, AdapterContext
from .adapters.spec import MediaCredentials, adapter_spec
from .adapters.state import LinkState
from .bots.host import BotHost
from .config import Account, Config
from .config.accounts import AccountTypeError
from .plugins.host import PluginHost, migrate_in
from .plugins.supervisor import PluginState
from .runtime import supervise
from .scalar import client as scalar_client
from .scalar.client import Client
from .scalar.server import ScalarServer
from .scalar.store import Store
from .web.links import PublicLinks, load_key
from .web.server import WebServer, web_context
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


async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until they are gone (from any task)."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


class App:
    """A running bridgehost; only `App.open` makes one."""

    def __init__(
        self,
        config: Config,
        store: Store,
        server: ScalarServer,
        tasks: asyncio.TaskGroup,
        parts: contextlib.AsyncExitStack,
    ) -> None:
        self.config = config
        self.store = store
        self.server = server
        self.urls: list[str] = list(server.urls)
        self.adapters: list[Adapter] = []
        self.bot_host = BotHost(self)
        self.plugins = PluginHost(config, server, store)
        """Plugin processes: `process: true` adapters, `type: exec` accounts and bots."""
        self.web: WebServer | None = None
        """The HTTP side, when `http:` is configured."""
        self.public: PublicLinks | None = None
        self.status_file = StatusFile(config.server.data_dir, self.status)
        self._tasks = tasks
        self._parts = parts
        self._adapter_tasks: list[asyncio.Task[None]] = []
        self._stop_lock = asyncio.Lock()
        self._child_media = self._child_media_sources()

    # --- lifecycle --------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, config: Config) -> AsyncIterator[App]:
        """Start everything; on leaving the block (or any failure) close it in reverse."""
        failed: Exception | None = None
        async with asyncio.TaskGroup() as tasks:
            parts = contextlib.AsyncExitStack()
            app: App | None = None
            try:
                app = await cls._start(config, tasks, parts)
                yield app
            except Exception as exc:  # raised as it is, not wrapped by the task group
                failed = exc
            finally:
                await (app.stop() if app is not None else parts.aclose())
        if failed is not None:
            raise failed

    @classmethod
    async def _start(
        cls, config: Config, tasks: asyncio.TaskGroup, parts: contextlib.AsyncExitStack
    ) -> App:
        cfg = config.server
        if config.embedded:
            log.info("no config file: running the embedded default (domain %s)", cfg.domain)
        # 1. the store (the data-dir lock is held from here until it closes)
        store = await Store.open(
            cfg.data_dir, keep=cfg.history_keep, synchronous=cfg.history_sync.upper(), owner=True
        )
        parts.push_async_callback(cls._close_store, store)
        app: App | None = None
        parts.callback(lambda: app.status_file.write_now() if app is not None else None)
        # 2. the Scalar server (closed even if only some listeners opened)
        titles = tuple((b.channel, b.title) for b in config.bridges if b.title)
        server = ScalarServer(
            cfg.settings(titles), store, tls=tls_context(config), unix_mode=cfg.unix_mode
        )
        parts.push_async_callback(server.close)
        await server.start(list(cfg.listen))
        app = cls(config, store, server, tasks, parts)
        # 3. HTTP
        await app._start_http()
        # 4. adapters (in this process; `process: true` ones are plugins, step 6)
        parts.push_async_callback(app._stop_adapters)
        for name, account in config.accounts.items():
            if not account.process:
                await migrate_in(store, cfg.data_dir, name)
                app._start_adapter(name, account)
        # 5. bots (in this process; `command:` ones are plugins)
        parts.push_async_callback(app.bot_host.stop)
        if any(not bot.is_exec for bot in config.bots):
            await app.bot_host.start(config.bots)
        # 6. plugin processes
        parts.push_async_callback(app.plugins.stop)
        await app.plugins.start()
        writer = tasks.create_task(app.status_file.run(), name="status-writer")
        parts.push_async_callback(_cancel, [writer])
        return app

    @staticmethod
    async def _close_store(store: Store) -> None:
        await store.close()
        log.info("store flushed and closed")

    async def stop(self) -> None:
        """Close everything now, in reverse start order (the scope's end does the same;
        whichever comes first does it, once)."""
        async with self._stop_lock:
            await self._parts.aclose()

    async def _start_http(self) -> None:
        """The HTTP side (bridgehost.web): metrics, health, status, links, WebSocket."""
        http = self.config.http
        if http is None:
            return
        if http.public_url:
            self.public = PublicLinks(http.public_url, load_key(self.config.server.data_dir))
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
        self.web = await self._parts.enter_async_context(WebServer(ctx))

    def plugin_states(self) -> Sequence[PluginState]:
        return self.plugins.states()

    def media_sources(self) -> Sequence[MediaCredentials]:
        """What can fetch Matrix media: in-process adapters, then the logins that
        `process: true` children keep in the data dir."""
        return [*(a for a in self.adapters if isinstance(a, MediaCredentials)), *self._child_media]

    def _child_media_sources(self) -> list[MediaCredentials]:
        found = []
        for name, account in self.config.accounts.items():
            if not account.process:
                continue
            try:
                media = adapter_spec(account.type).media
            except AccountTypeError:  # `check` and the plugin's start-up report it
                continue
            if media is not None:
                found.append(media(account, self.config.server.data_dir))
                log.debug("media as %s: through the login its child saves", name)
        return found

    def _start_adapter(self, name: str, account: Account) -> None:
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
        task = self._tasks.create_task(
            supervise(f"adapter {name}", adapter.run), name=f"adapter-{name}"
        )
        self._adapter_tasks.append(task)
        log.info(
            "adapter %s (%s) started as %s with %d link(s)",
            name,
            account.type,
            reserved,
            len(ctx.links),
        )

    async def _stop_adapters(self) -> None:
        await _cancel(self._adapter_tasks)

    def local_client_factory(self, ident: str) -> Callable[[], Any]:
        """Connect in-process as `ident` (a reserved ID) with a token that only lives in memory."""
        server = self.server
        token = server.auth.issue_ephemeral(ident)

        async def connect() -> Client:
            sock = await server.connect_local()
            return await scalar_client.connect_socket(sock, id=ident, secret=token)

        return connect

    # --- health -------------------------------------------------------------------------

    def link_statuses(self) -> list[LinkState]:
        links = [st for adapter in self.adapters for st in adapter.status()]
        links.extend(self.plugins.link_statuses())
        return links

    def status(self) -> dict[str, Any]:
        server = self.server
        return {
            "time": time.time(),
            "pid": os.getpid(),
            "listening": self.urls,
            "http": self.web.url if self.web is not None else None,
            "connections": len(server.connections),
            "published": server.hub.published,
            "links": [st.as_dict() for st in self.link_statuses()],
            "bots": self._bot_statuses(),
            "plugins": self.plugins.status(),
        }

    def _bot_statuses(self) -> list[dict[str, Any]]:
        bots = [*self.bot_host.status(), *self.plugins.bot_status()]
        return sorted(bots, key=lambda b: str(b.get("id")))
