"""In-process bots: the `bots:` section of the config, run inside the app.

Each bot connects over an in-process socket as its reserved ID (the same
protocol a remote bot speaks) and runs under `supervise()`. A bot that
cannot be loaded, has a bad config, or fails is reported with its ID and
the reason; the other bots and the bridges run anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..config import BotConfig, Config
from ..runtime import TaskSet, supervise
from ..scalar.client import Client
from ..scalar.server import ScalarServer
from ..scalar.store import Store
from .api import Bot
from .directory import DIRECTORY_NAME, HostDirectory, directory_id
from .loader import BotLoadError, load_bot_class
from .runner import BotRunner, RunSettings
from .schema import BotConfigError, build_config
from .store import BotStore

log = logging.getLogger(__name__)

READY_TIMEOUT = 5.0


def check_bots(bots: Sequence[BotConfig]) -> list[str]:
    """What `bridgehost check` reports: bots that cannot load or have a bad config."""
    problems = []
    for i, bc in enumerate(bots):
        where = f"bots[{i}] ({bc.id})"
        if bc.is_exec:
            continue
        if bc.id.startswith(f"!{DIRECTORY_NAME}@"):
            problems.append(f"{where}.id: reserved for the bot directory")
        try:
            klass = load_bot_class(bc.plugin)
        except BotLoadError as exc:
            problems.append(f"{where}.plugin: {exc}")
            continue
        try:
            build_config(klass, bc.config)
        except BotConfigError as exc:
            problems.extend(f"{where}.{problem}" for problem in exc.problems)
    return problems


class HostApp(Protocol):
    """What the host needs of `bridgehost.app.App`."""

    @property
    def config(self) -> Config: ...

    @property
    def store(self) -> Store: ...

    @property
    def server(self) -> ScalarServer: ...

    def local_client_factory(self, ident: str) -> Callable[[], Any]: ...


class BotHost:
    def __init__(self, app: HostApp) -> None:
        self.app = app
        self.tasks = TaskSet("bots")
        self.runners: dict[str, BotRunner] = {}
        self.failed: dict[str, dict[str, Any]] = {}
        self.directory = HostDirectory(self._is_online)
        self._listening = False

    def _is_online(self, ident: str) -> bool:
        return self.app.server.hub.is_online(ident)

    async def start(self, bots: Sequence[BotConfig]) -> None:
        """Start every bot that can start; wait briefly until they have joined."""
        for bot_config in bots:
            if not bot_config.is_exec:  # a program of its own: bridgehost.plugins runs it
                self.add(bot_config)
        self.listen()
        await self.wait_ready(READY_TIMEOUT)

    def add(self, bc: BotConfig, cls: type[Bot[Any]] | None = None) -> BotRunner | None:
        """Start one bot (`cls` overrides `bc.plugin`, for tests); None if it cannot."""
        if bc.id in self.runners:
            self._fail(bc, "another bot already uses this ID")
            return None
        if bc.id == directory_id(self.app.config.server.domain):
            self._fail(bc, "this ID is reserved for the bot directory (see docs/bots.md)")
            return None
        try:
            klass = cls or load_bot_class(bc.plugin)
            config = build_config(klass, bc.config)
            bot = klass()
        except (BotLoadError, BotConfigError) as exc:
            self._fail(bc, str(exc))
            return None
        except Exception as exc:
            self._fail(bc, f"cannot create the bot: {type(exc).__name__}: {exc}")
            return None
        store = self.app.store
        bot._attach(
            id=bc.id,
            config=config,
            store=BotStore(store.namespace(f"bot:{bc.id}")),
            topics=bc.topics,
            prefix=bc.prefix,
            directory=self.directory,
        )
        settings = RunSettings(prefix=bc.prefix, rate=bc.rate, burst=bc.burst, timeout=bc.timeout)
        runner = BotRunner(
            bot,
            connect=self.app.local_client_factory(bc.id),
            topics=bc.topics,
            settings=settings,
            plugin=bc.plugin,
        )
        self.runners[bc.id] = runner
        self.failed.pop(bc.id, None)
        self.directory.add_local(bc.id, runner.entry)
        self.tasks.spawn(supervise(f"bot {bc.id}", runner.run), name=f"bot-{bc.id}")
        log.info("bot %s (%s) started in %s", bc.id, bc.plugin, ", ".join(bc.topics) or "no topic")
        return runner

    def _fail(self, bc: BotConfig, reason: str) -> None:
        log.error("bot %s (%s) not started: %s", bc.id, bc.plugin, reason)
        self.failed[bc.id] = {
            "id": bc.id,
            "plugin": bc.plugin,
            "state": "failed",
            "topics": list(bc.topics),
            "last_error": reason,
        }

    def listen(self) -> None:
        """Learn out-of-process bots from their manifests (see directory.py)."""
        if self._listening:
            return
        self._listening = True
        ident = directory_id(self.app.config.server.domain)
        connect = self.app.local_client_factory(ident)
        since = int(time.time() * 1000) - 60_000

        async def listen() -> None:
            client: Client = await connect()
            try:
                await client.sub(ident)
                page = await client.catchup(ident, since=since, limit=1000)
                for event in page.events:
                    self.directory.learn(event)
                async for event in client:
                    self.directory.learn(event)
            finally:
                await client.close()

        self.tasks.spawn(supervise("bot directory", listen), name="bot-directory")

    async def wait_ready(self, timeout: float) -> bool:
        """True when every running bot has joined its topics within `timeout`."""
        runners = list(self.runners.values())
        if not runners:
            return True
        done = await asyncio.gather(*(r.wait_ready(timeout) for r in runners))
        return all(done)

    def bot(self, ident: str) -> Bot[Any]:
        return self.runners[ident].bot

    def status(self) -> list[dict[str, Any]]:
        out = [r.status() for r in self.runners.values()]
        out.extend(self.failed.values())
        return sorted(out, key=lambda s: str(s["id"]))

    async def stop(self) -> None:
        await self.tasks.close()
