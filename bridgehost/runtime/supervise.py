"""Keep a long-running part alive: restart it when it fails, with backoff,
unless it says retrying cannot help (`Fatal`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .backoff import Backoff

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseException)


class Fatal(Exception):
    """Retrying cannot help (credentials refused, registration refused): the
    supervisor stops the part and reports this once instead of restarting it."""


def fatal_in(exc: BaseException) -> Fatal | None:
    """The `Fatal` in `exc`, also when a task group wrapped it."""
    if isinstance(exc, Fatal):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = fatal_in(inner)
            if found is not None:
                return found
    return None


def default_backoff() -> Backoff:
    return Backoff(1.0, 60.0, healthy_after=30.0)


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    backoff: Backoff | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_fatal: Callable[[Fatal], None] | None = None,
) -> None:
    """Run `run()` until cancelled: log each failure and restart after the
    backoff's delay (a run that lasted its `healthy_after` restarts quickly).

    A `Fatal` (also inside an exception group) ends supervision: logged once
    at ERROR, passed to `on_fatal`, and this returns. Callbacks that raise
    are logged, never allowed to stop the supervisor.
    """
    backoff = backoff or default_backoff()
    while True:
        backoff.started()
        try:
            await run()
            log.warning("%s ended; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fatal = fatal_in(exc)
            if fatal is not None:
                log.error("%s stopped, not restarted: %s", name, fatal)
                _call(name, on_fatal, fatal)
                return
            debug = log.isEnabledFor(logging.DEBUG)
            log.error("%s failed: %s", name, _describe(exc), exc_info=debug)
            _call(name, on_error, exc)
        await backoff.wait()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _call(name: str, callback: Callable[[E], None] | None, exc: E) -> None:
    if callback is None:
        return
    try:
        callback(exc)
    except Exception:
        log.exception("%s: error callback failed", name)
