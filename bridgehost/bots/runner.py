"""Runs one bot over a Client: the same code in process and out of process.

The runner connects, subscribes to the bot's topics (and its own ID, for
direct messages), and turns each event into handler calls. The rules of
design.md §4 live here once:

- notices, presence and the bot's own events are never answered;
- each handler call is its own task (owned by a TaskSet) under a timeout,
  so a slow handler never delays the others, and one that raises is logged
  with the bot's name while the bot keeps running;
- what the bot publishes is paced by a per-bot token bucket;
- a lost connection is reconnected with backoff and jitter, and the topics
  are subscribed again. A refused login is final (`BotAuthError`);
- a stop lets the handlers already running finish first (`STOP_GRACE`), so a
  message heard just before a restart is still answered and recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..runtime import Backoff, Fatal, TaskSet, wait_for
from ..scalar.client import Client
from ..scalar.errors import AuthFailed, ConnectionClosed, ScalarError
from ..scalar.events import Event
from .api import MESSAGE_KINDS, Bot, BotCommands, Context, JobSpec
from .directory import directory_id, manifest_body
from .ratelimit import pacer

log = logging.getLogger(__name__)

Connector = Callable[[], Awaitable[Client]]
IGNORED_KINDS = frozenset({"notice", "presence"})
STOP_GRACE = 5.0
"""Seconds a stopping bot gives the handlers already running (at most its timeout)."""


class BotAuthError(Fatal):
    """The server refused the bot's ID and secret: retrying cannot help (the
    supervisor stops the bot and reports it once)."""


@dataclass(frozen=True, slots=True)
class RunSettings:
    prefix: str = "!"
    rate: float = 2.0
    burst: int = 5
    timeout: float = 30.0
    max_tasks: int = 100
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    healthy_after: float = 30.0
    announce: bool = False
    """Send a manifest to `!bots@<domain>` after connecting (out-of-process bots)."""


class BotRunner:
    def __init__(
        self,
        bot: Bot[Any],
        *,
        connect: Connector,
        topics: Sequence[str] = (),
        settings: RunSettings | None = None,
        plugin: str = "",
    ) -> None:
        self.bot = bot
        self.connect = connect
        self.topics = tuple(topics)
        self.settings = settings or RunSettings()
        self.plugin = plugin or f"{type(bot).__module__}:{type(bot).__qualname__}"
        self.pacer = pacer(self.settings.rate, self.settings.burst)
        self.tasks = TaskSet(f"bot {bot.id}")
        """Its jobs (`@every`)."""
        self.handlers = TaskSet(f"bot {bot.id}")
        """Handler calls in flight; a stop lets them finish (up to STOP_GRACE)."""
        self.ready = asyncio.Event()
        """Set while connected with every topic subscribed."""
        self.state = "created"
        self.last_error: str | None = None
        self.received = self.handled = self.errors = self.published = self.dropped = 0
        self._client: Client | None = None
        self._connected = asyncio.Event()
        bot._outlet = self

    @property
    def name(self) -> str:
        return self.bot.id

    # --- status ------------------------------------------------------------------------

    def _set_state(self, state: str, error: str | None = None) -> None:
        level = logging.WARNING if error else logging.INFO
        if state == self.state:
            level = logging.DEBUG
        log.log(level, "bot %s: %s%s", self.name, state, f" ({error})" if error else "")
        self.state = state
        if error:
            self.last_error = error

    def status(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "plugin": self.plugin,
            "state": self.state,
            "topics": list(self.topics),
            "received": self.received,
            "handled": self.handled,
            "errors": self.errors,
            "published": self.published,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }

    def entry(self) -> BotCommands | None:
        """The bot's commands while it is connected (for the directory)."""
        if self.state != "connected":
            return None
        return BotCommands(self.name, self.settings.prefix, self.bot.commands(), self.topics)

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Set up, then serve with reconnects until cancelled (or refused)."""
        self._set_state("starting")
        try:
            await wait_for(self.bot.setup(), self.settings.timeout)
        except Exception as exc:
            self._set_state("failed", f"setup failed: {type(exc).__name__}: {exc}")
            raise
        try:
            for job in self.bot._jobs:
                self.tasks.spawn(self._job_loop(job), name=f"bot {self.name} every {job.attr}")
            await self._connection_loop()
        finally:
            await self.handlers.close()
            await self.tasks.close()
            self._connected.clear()
            self.ready.clear()
            if self.state != "failed":
                self._set_state("stopped")
            try:
                await wait_for(self.bot.teardown(), self.settings.timeout)
            except Exception as exc:
                log.error("bot %s: teardown failed: %s", self.name, exc)

    async def _connection_loop(self) -> None:
        s = self.settings
        backoff = Backoff(s.reconnect_initial, s.reconnect_max, healthy_after=s.healthy_after)
        while True:
            try:
                client = await self.connect()
            except AuthFailed as exc:
                reason = "the server refused the login: wrong token, or no token for this ID"
                self._set_state("failed", reason)
                raise BotAuthError(reason) from exc
            except (OSError, TimeoutError, ScalarError) as exc:
                self._set_state("reconnecting", f"cannot connect: {exc or type(exc).__name__}")
            else:
                backoff.started()
                try:
                    await self._serve(client)
                except (ConnectionClosed, OSError) as exc:
                    text = str(exc) or type(exc).__name__
                    lost = text if "connection" in text else f"connection lost: {text}"
                    self._set_state("reconnecting", lost)
                except asyncio.CancelledError:
                    # A stop: what was heard is handled while the connection is still
                    # there, so a reply still goes out and a record is saved. (A lost
                    # connection does not wait: its handlers reply after the reconnect.)
                    await self.handlers.wait(min(self.settings.timeout, STOP_GRACE))
                    raise
                finally:
                    self._client = None
                    self._connected.clear()
                    self.ready.clear()
                    await client.close()
            wait = backoff.next()
            log.info("bot %s: reconnecting in %.1f s", self.name, wait)
            await asyncio.sleep(wait)

    async def _serve(self, client: Client) -> None:
        joined = 0
        for topic in (self.bot.id, *self.topics):
            try:
                await client.sub(topic)
                joined += 1
            except ConnectionClosed:
                raise
            except ScalarError as exc:
                log.error("bot %s: cannot subscribe to %s: %s", self.name, topic, exc)
                self.last_error = f"cannot subscribe to {topic}: {exc}"
        if self.settings.announce:
            await self._announce(client)
        self._client = client
        self._connected.set()
        self.ready.set()
        self._set_state("connected")
        log.info("bot %s: joined %d topic(s)", self.name, joined - 1)
        async for event in client:
            self.dispatch(event)
        raise ConnectionClosed(client.close_reason or "connection lost")

    async def _announce(self, client: Client) -> None:
        domain = self.bot.id.partition("@")[2]
        target = directory_id(domain)
        if not domain or target == self.bot.id:
            return
        body = manifest_body(self.settings.prefix, self.topics, self.bot.commands())
        try:
            await client.publish(target, body, kind="notice")
        except ConnectionClosed:
            raise
        except ScalarError as exc:
            log.warning("bot %s: could not announce itself to %s: %s", self.name, target, exc)

    # --- incoming ----------------------------------------------------------------------

    def dispatch(self, event: Event) -> None:
        """Start the handlers an event calls for (each as its own task)."""
        if event.kind in IGNORED_KINDS or event.sender == self.bot.id:
            return
        if event.topic != self.bot.id and event.topic not in self.topics:
            return
        self.received += 1
        ctx = Context(self.bot, event)
        body = event.body
        prefix = self.settings.prefix
        bot: Any = self.bot
        for wants in self.bot._kinds:
            if event.kind in wants.kinds:
                self._spawn(wants.attr, event, functools.partial(getattr(bot, wants.attr), ctx))
        if event.kind not in MESSAGE_KINDS:
            return
        if prefix and body.startswith(prefix):
            word, _, rest = body[len(prefix) :].partition(" ")
            spec = self.bot._commands.get(word.strip().lower())
            if spec is not None:
                call = functools.partial(getattr(bot, spec.attr), ctx, rest.strip())
                self._spawn(spec.attr, event, call)
        for pattern in self.bot._patterns:
            match = _match(pattern.regex, body)
            if match is not None:
                call = functools.partial(getattr(bot, pattern.attr), ctx, match)
                self._spawn(pattern.attr, event, call)

    def _spawn(self, attr: str, event: Event, call: Callable[[], Awaitable[None]]) -> None:
        if len(self.handlers) >= self.settings.max_tasks:
            self.dropped += 1
            log.warning(
                "bot %s: %d handlers still running; dropped %s for seq %d in %s",
                self.name,
                len(self.handlers),
                attr,
                event.seq,
                event.topic,
            )
            return
        self.handlers.spawn(self._guard(attr, call, event), name=f"bot {self.name} {attr}")

    async def _guard(
        self, attr: str, call: Callable[[], Awaitable[None]], event: Event | None = None
    ) -> None:
        """Run one handler call under the timeout; log, never raise."""
        where = f" on {event.body[:60]!r} in {event.topic}" if event is not None else ""
        try:
            await wait_for(call(), self.settings.timeout)
            self.handled += 1
        except TimeoutError:
            self.errors += 1
            self.last_error = f"{attr} timed out after {self.settings.timeout:g} s"
            log.error("bot %s: handler %s timed out%s", self.name, attr, where)
        except Exception as exc:
            self.errors += 1
            self.last_error = f"{attr}: {type(exc).__name__}: {exc}"
            log.error(
                "bot %s: handler %s raised %s%s",
                self.name,
                attr,
                type(exc).__name__,
                where,
                exc_info=exc,
            )

    async def _job_loop(self, job: JobSpec) -> None:
        method: Callable[[], Awaitable[None]] = getattr(self.bot, job.attr)
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += job.seconds
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self._guard(job.attr, method)
            due = max(due, loop.time() - job.seconds)

    # --- outgoing (the bot's Outlet) ---------------------------------------------------

    async def publish(
        self,
        topic: str,
        body: str,
        *,
        kind: str,
        ctype: str | None,
        reply_to: bytes | None,
        target: bytes | None = None,
    ) -> Event:
        await self.pacer.acquire()
        await self._connected.wait()
        client = self._client
        if client is None:
            raise ConnectionClosed("not connected")
        event = await client.publish(
            topic, body, kind=kind, ctype=ctype, reply_to=reply_to, target=target
        )
        self.published += 1
        return event

    async def wait_ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await wait_for(self.ready.wait(), timeout)
        return self.ready.is_set()


def _match(regex: re.Pattern[str] | None, body: str) -> re.Match[str] | None:
    if regex is None:
        return re.match("", body)
    return regex.search(body)
