"""`bridgehost adapter NAME -c CONFIG`: one account's adapter in a process of its
own, started by bridgehost for `process: true` (docs/plugins.md).

The adapter is the same code as in-process: it has a Scalar session
(`AdapterContext.connect`, here the one session on stdio, opened for the
account's reserved ID before the process started) and a key-value store
(its own file in the data dir, see kvfile.py). Its links' state goes to
bridgehost as `status` reports, so status, /metrics and /healthz show it as
if it ran inside. The process ends when its session ends (`bye` from
bridgehost, or stdin closed because bridgehost died), on SIGTERM/SIGINT,
or when the adapter fails; in each case positions are saved first.

Exit codes: 0 asked to stop, 1 the adapter or its session failed (restart
me), 2 bad usage or config (restarting will not help until it changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from ..adapters.base import Adapter, AdapterContext
from ..adapters.spec import AdapterFactory, adapter_spec
from ..config import Config
from ..runtime import fatal_in
from ..scalar.client import Client
from ..scalar.errors import ConnectionClosed
from ..web.links import PublicLinks, load_key
from .kvfile import FileKeyValue, Locked, state_dir
from .process import SPARE_ENV, SPARE_SIGNAL
from .report import link_reports
from .stdio import SharedClient

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
REPORT_EVERY = 0.5
"""Seconds between link status reports (sent only when something changed)."""
STOP_REASONS = frozenset({"shutdown", "stopping"})


class UsageError(Exception):
    pass


def check_account(config: Config, name: str) -> None:
    account = config.accounts.get(name)
    if account is None:
        known = ", ".join(config.accounts) or "none"
        raise UsageError(f"no account {name!r} in the config (known: {known})")
    if account.type == "exec":
        raise UsageError(f"account {name!r} is type: exec, a program of its own, not an adapter")


async def report_links(client: SharedClient, adapter: Adapter) -> None:
    """Tell bridgehost about every link's state: now, and whenever it changes."""
    last: list[dict[str, object]] | None = None
    while True:
        entries = link_reports(adapter.status())
        volatile = [{k: v for k, v in e.items() if k != "since"} for e in entries]
        if volatile != last:
            await client.report(entries)
            last = volatile
        await asyncio.sleep(REPORT_EVERY)


def load_adapter(config: Config, name: str) -> AdapterFactory:
    """Check the account and import its adapter (the slow part of starting)."""
    check_account(config, name)
    account = config.accounts[name]
    try:
        return adapter_spec(account.type).load()
    except Exception as exc:
        raise UsageError(f"no adapter for account type {account.type!r}: {exc}") from exc


def wait_if_spare() -> bool:
    """A spare (SPARE_ENV set) has loaded everything; it waits here until bridgehost
    hands it the session of an adapter process that ended. True if it waited."""
    if os.environ.get(SPARE_ENV) != "1":
        return False
    log.debug("spare: loaded, waiting to take over")
    signal.pthread_sigmask(signal.SIG_BLOCK, {SPARE_SIGNAL})
    signal.sigwait({SPARE_SIGNAL})
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {SPARE_SIGNAL})
    return True


async def run_child(config: Config, name: str, factory: AdapterFactory) -> int:
    account = config.accounts[name]
    ident = config.reserved_id(name)
    try:
        kv = FileKeyValue.open(state_dir(config.server.data_dir, name))
    except Locked as exc:
        log.error("%s", exc)
        return EXIT_FAIL
    try:
        client = await SharedClient.on_stdio(ident, name=f"bridgehost-adapter/{name}")
    except (ConnectionClosed, OSError, TimeoutError) as exc:
        log.error("no Scalar session on stdin/stdout: %s", exc)
        kv.close()
        return EXIT_FAIL
    public = None
    http = config.http
    if http is not None and http.public_url:
        public = PublicLinks(http.public_url, load_key(config.server.data_dir))

    async def connect() -> Client:
        return client.lease()

    ctx = AdapterContext(
        config=config, account=account, reserved_id=ident, connect=connect, kv=kv, public=public
    )
    adapter = factory(ctx)
    log.info("adapter %s (%s) running as %s, pid-isolated", name, account.type, ident)
    try:
        return await _serve(client, adapter)
    finally:
        await client.close("adapter stopping")
        kv.close()


async def _serve(client: SharedClient, adapter: Adapter) -> int:
    """Until the adapter or the session ends (SIGTERM/SIGINT: the CLI cancels this)."""
    run = asyncio.ensure_future(adapter.run())
    watchers: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(client.distribute()),
        asyncio.ensure_future(report_links(client, adapter)),
    ]
    try:
        done, _ = await asyncio.wait([run, *watchers], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (run, *watchers):
            task.cancel()
        await asyncio.gather(run, *watchers, return_exceptions=True)
    if run in done:
        exc = run.exception() if not run.cancelled() else None
        if exc is not None and fatal_in(exc) is not None:
            log.error("adapter stopped: %s", fatal_in(exc))
            return EXIT_USAGE
        log.error("adapter failed: %s", exc, exc_info=exc)
        return EXIT_FAIL
    reason = client.close_reason or "?"
    for watcher in watchers:
        if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
            log.error("status reports failed: %s", watcher.exception())
            return EXIT_FAIL
    if reason in STOP_REASONS:
        log.info("bridgehost said bye (%s): stopping", reason)
        return EXIT_OK
    log.warning("Scalar session ended (%s): stopping", reason)
    return EXIT_FAIL


def main(config: Config, name: str, run: Callable[[Awaitable[int]], int]) -> int:
    """Entry point of the `adapter` command (logging is set up by the CLI)."""
    try:
        factory = load_adapter(config, name)
        if wait_if_spare():
            log.info("taking over as the adapter process")
        return run(run_child(config, name, factory))
    except UsageError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
