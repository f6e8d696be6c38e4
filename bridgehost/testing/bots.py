"""Test a bot in a few lines: a real in-process server, the bot loaded, a user.

    from bridgehost.testing.bots import BotHarness

    async def test_ping(tmp_path):
        async with BotHarness(tmp_path, Ping) as h:
            assert await h.ask("!ping") == "pong"

The harness starts a whole bridgehost (the same `running()` the project's
own tests use), runs the given bot classes in process as `!<classname>@
test.example` in `#test@test.example`, and logs in a user `alice` who is
subscribed there. With `pytest_plugins = ["bridgehost.testing.fixtures"]`
the `bot_harness` fixture gives the same without `tmp_path`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ..bots.api import Bot
from ..bots.host import BotHost
from ..config import BotConfig
from ..scalar.client import Client
from ..scalar.events import Event
from . import DOMAIN, Running, running

DEFAULT_CHANNEL = "test"
BotHarnessFactory = Callable[..., "BotHarness"]
"""The type of the `bot_harness` fixture."""


@dataclass(frozen=True)
class BotSpec:
    """A bot to load, with the settings `bots:` in the config would give it."""

    bot: type[Bot[Any]] | str
    """A class, or a plugin spec (`module:Class` or an entry point name)."""
    id: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    topics: tuple[str, ...] | None = None
    prefix: str = "!"
    rate: float = 1000.0
    burst: int = 1000
    timeout: float = 10.0

    def bot_id(self) -> str:
        if self.id:
            return self.id if "@" in self.id else f"{self.id}@{DOMAIN}"
        name = self.bot if isinstance(self.bot, str) else self.bot.__name__
        name = name.rpartition(":")[2].rpartition(".")[2].lower()
        return f"!{name}@{DOMAIN}"


class BotHarness:
    def __init__(
        self,
        tmp_path: Path,
        *bots: type[Bot[Any]] | str | BotSpec,
        channel: str = DEFAULT_CHANNEL,
        user: str = "alice",
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.specs = [b if isinstance(b, BotSpec) else BotSpec(b) for b in bots]
        self.topic = f"#{channel}@{DOMAIN}"
        self.user_name = user
        self.overrides = overrides
        self._stack: contextlib.AsyncExitStack | None = None
        self._srv: Running | None = None
        self._user: Client | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> BotHarness:
        stack = contextlib.AsyncExitStack()
        try:
            srv = await stack.enter_async_context(running(self.tmp_path, self.overrides))
            host = srv.app.bot_host
            failed = []
            for spec in self.specs:
                bc = BotConfig(
                    plugin=_plugin_name(spec.bot),
                    id=spec.bot_id(),
                    topics=spec.topics if spec.topics is not None else (self.topic,),
                    config=dict(spec.config),
                    prefix=spec.prefix,
                    rate=spec.rate,
                    burst=spec.burst,
                    timeout=spec.timeout,
                )
                if host.add(bc, None if isinstance(spec.bot, str) else spec.bot) is None:
                    failed.append(f"{bc.id}: {host.failed[bc.id]['last_error']}")
            if failed:
                raise RuntimeError("bot(s) not started: " + "; ".join(failed))
            host.listen()
            if not await host.wait_ready(10):
                raise RuntimeError(f"bots not ready: {host.status()}")
            user = await srv.client(self.user_name)
            await user.sub(self.topic)
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._srv, self._user = stack, srv, user
        return self

    async def stop(self) -> None:
        stack, self._stack, self._srv, self._user = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()

    async def restart(self) -> None:
        """Stop everything and start again on the same data (persistence tests)."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> BotHarness:
        return await self.start()

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- access ------------------------------------------------------------------------

    @property
    def srv(self) -> Running:
        if self._srv is None:
            raise RuntimeError("the harness is not running")
        return self._srv

    @property
    def user(self) -> Client:
        """The test user's client (subscribed to `topic`)."""
        if self._user is None:
            raise RuntimeError("the harness is not running")
        return self._user

    @property
    def host(self) -> BotHost:
        host: BotHost = self.srv.app.bot_host
        return host

    def bot(self, which: type[Bot[Any]] | str | None = None) -> Bot[Any]:
        """A running bot instance: by class, by ID, or the only/first one."""
        if which is None:
            ident = self.specs[0].bot_id()
        elif isinstance(which, str):
            ident = which
        else:
            ident = next(s.bot_id() for s in self.specs if s.bot is which)
        return self.host.bot(ident)

    async def client(self, name: str | None = None) -> Client:
        """Another connected client (a user, `!reserved`, or a guest)."""
        return await self.srv.client(name)

    # --- talking -----------------------------------------------------------------------

    async def say(self, text: str, *, topic: str | None = None, kind: str = "text") -> Event:
        """Publish as the test user (to the harness channel by default)."""
        return await self.user.publish(topic or self.topic, text, kind=kind)

    @property
    def bot_ids(self) -> list[str]:
        return [s.bot_id() for s in self.specs]

    async def next_event(self, timeout: float = 5.0) -> Event:
        """The next event from anyone else where the user listens (presence skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.user.next_event(max(0.0, deadline - loop.time()))
            if event.kind != "presence" and event.sender != self.user.id:
                return event

    async def next_reply(self, timeout: float = 5.0, *, sender: str | None = None) -> Event:
        """The next event one of the harness's bots (or `sender`) published where
        the user listens; other events are skipped. TimeoutError if none comes."""
        wanted = {sender} if sender is not None else set(self.bot_ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.next_event(max(0.0, deadline - loop.time()))
            if event.sender in wanted:
                return event

    async def ask(self, text: str, timeout: float = 5.0, *, sender: str | None = None) -> str:
        """Say `text`, return the body of the next reply."""
        await self.say(text)
        return (await self.next_reply(timeout, sender=sender)).body

    async def replies(self, within: float = 0.5) -> list[Event]:
        """Every reply that arrives within `within` seconds (to assert silence)."""
        out: list[Event] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (left := deadline - loop.time()) > 0:
            try:
                out.append(await self.next_reply(left))
            except TimeoutError:
                break
        return out


def _plugin_name(bot: type[Bot[Any]] | str) -> str:
    return bot if isinstance(bot, str) else f"{bot.__module__}:{bot.__qualname__}"
