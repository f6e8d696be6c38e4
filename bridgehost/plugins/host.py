"""Every plugin process of one bridgehost: `process: true` adapters, `type: exec`
accounts and bots given by `command:`, each under its own `PluginSupervisor`.

Started after the in-process adapters and bots, stopped before them (each
plugin gets `bye`, then SIGTERM, then SIGKILL, its grace apart), so that the
server is still there to say `bye` and take the plugins' last messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..adapters.base import origin_of
from ..adapters.exec.config import ExecAccount
from ..adapters.state import LinkState
from ..config import BotConfig, Config
from ..config.plugins import ProcessOptions
from ..runtime import TaskSet
from ..scalar.server import ScalarServer
from ..scalar.store import Store, ensure_private_dir
from .kvfile import STATE_FILE, FileKeyValue, Locked, state_dir
from .process import BASE_ENV, Launch
from .report import LinkMirror
from .supervisor import PluginSpec, PluginState, PluginSupervisor

log = logging.getLogger(__name__)

PROTOCOL = "scalar/1"


def adapter_namespace(name: str) -> str:
    """The key-value namespace of an in-process adapter in the server's store."""
    return f"adapter:{name}"


def _verbosity() -> list[str]:
    level = logging.getLogger().getEffectiveLevel()
    if level <= logging.DEBUG:
        return ["-vv"]
    return ["-q"] if level >= logging.WARNING else []


def _exec_env(
    config: Config, *, name: str, kind: str, ident: str, extra: dict[str, str]
) -> dict[str, str]:
    env = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
    env.update(extra)
    env.update(
        BRIDGEHOST_PROTOCOL=PROTOCOL,
        BRIDGEHOST_ID=ident,
        BRIDGEHOST_NAME=name,
        BRIDGEHOST_KIND=kind,
        BRIDGEHOST_DOMAIN=config.server.domain,
        BRIDGEHOST_STATE_DIR=str(state_dir(config.server.data_dir, _dir_name(name))),
    )
    return env


def _dir_name(name: str) -> str:
    return name.lstrip("!").replace("/", "_")


def plugin_specs(config: Config) -> list[PluginSpec]:
    """What runs as a process, from the config (no side effects)."""
    specs = []
    for name, options in config.processes.items():
        if isinstance(config.accounts[name], ExecAccount):
            continue
        if config.path is None:
            raise ValueError(f"accounts.{name}.process: needs a config file (-c FILE)")
        command = (
            sys.executable,
            "-m",
            "bridgehost",
            "adapter",
            name,
            "-c",
            str(config.path.resolve()),
            *_verbosity(),
        )
        specs.append(
            PluginSpec(
                name=name,
                kind="adapter",
                ident=config.reserved_id(name),
                launch=Launch(
                    f"adapter {name}", command, dict(os.environ), None, options.memory_mb
                ),
                options=options,
                mirror=LinkMirror(name, config.links_of(name)),
                reports=True,
            )
        )
    for name, account in config.accounts.items():
        if isinstance(account, ExecAccount):
            options = config.processes.get(name, ProcessOptions())
            specs.append(_exec_account_spec(config, name, account, options))
    for bot in config.bots:
        if bot.is_exec:
            specs.append(_exec_bot_spec(config, bot))
    return specs


def _exec_account_spec(
    config: Config, name: str, account: ExecAccount, options: ProcessOptions
) -> PluginSpec:
    ident = config.reserved_id(name)
    links = config.links_of(name)
    link_info = [
        {
            "channel": bridge.channel,
            "target": link.target,
            "direction": link.direction,
            "origin": origin_of(account, link.target),
        }
        for bridge, link in links
    ]
    topics = sorted({bridge.channel for bridge, _ in links})
    env = _exec_env(config, name=name, kind="account", ident=ident, extra=account.env)
    env.update(
        BRIDGEHOST_LINKS=json.dumps(link_info),
        BRIDGEHOST_TOPICS=json.dumps(topics),
        BRIDGEHOST_CONFIG=json.dumps(account.config),
    )
    return PluginSpec(
        name=name,
        kind="exec",
        ident=ident,
        launch=Launch(f"exec {name}", account.command, env, account.cwd, options.memory_mb),
        options=options,
        mirror=LinkMirror(name, links),
    )


def _exec_bot_spec(config: Config, bot: BotConfig) -> PluginSpec:
    env = _exec_env(config, name=bot.id, kind="bot", ident=bot.id, extra=bot.env)
    env.update(
        BRIDGEHOST_LINKS="[]",
        BRIDGEHOST_TOPICS=json.dumps(list(bot.topics)),
        BRIDGEHOST_CONFIG=json.dumps(bot.config),
        BRIDGEHOST_PREFIX=bot.prefix,
    )
    return PluginSpec(
        name=bot.id,
        kind="bot",
        ident=bot.id,
        launch=Launch(f"bot {bot.id}", bot.command, env, bot.cwd, bot.process.memory_mb),
        options=bot.process,
    )


async def migrate_out(store: Store, data_dir: Path, name: str) -> None:
    """An account now runs in a process: move its state from the server's store
    to the process's own file (once; the file then is the state)."""
    directory = state_dir(data_dir, name)
    if (directory / STATE_FILE).exists():
        return
    ns = adapter_namespace(name)
    items = await store.kv_items(ns)
    if not items:
        return
    kv = FileKeyValue.open(directory, wait=0)
    try:
        kv.replace_all(items)
    finally:
        kv.close()
    for key, _ in items:
        await store.kv_delete(ns, key)
    log.info(
        "account %s now runs in a process: moved %d state value(s) to %s",
        name,
        len(items),
        directory,
    )


async def migrate_in(store: Store, data_dir: Path, name: str) -> None:
    """An account that ran in a process runs in-process again: take its state back."""
    directory = state_dir(data_dir, name)
    path = directory / STATE_FILE
    if not path.exists():
        return
    try:
        kv = FileKeyValue.open(directory, wait=0)
    except Locked:
        log.error("account %s: %s is still in use; its state stays there", name, directory)
        return
    try:
        items = await kv.items()
        await store.kv_set_many(adapter_namespace(name), items)
    finally:
        kv.close()
    path.rename(path.with_name(STATE_FILE + ".moved"))
    for suffix in ("-wal", "-shm"):
        path.with_name(STATE_FILE + suffix).unlink(missing_ok=True)
    log.info(
        "account %s runs in-process again: took back %d state value(s) from %s",
        name,
        len(items),
        directory,
    )


class PluginHost:
    def __init__(self, config: Config, server: ScalarServer, store: Store) -> None:
        self.config = config
        self.server = server
        self.store = store
        self.supervisors: list[PluginSupervisor] = []
        self.tasks = TaskSet("plugins")

    async def start(self) -> None:
        data_dir = self.config.server.data_dir
        for spec in plugin_specs(self.config):
            if spec.kind == "adapter":
                try:
                    await migrate_out(self.store, data_dir, spec.name)
                except (OSError, Locked) as exc:
                    log.error("account %s: cannot move its state: %s", spec.name, exc)
            else:
                ensure_private_dir(state_dir(data_dir, _dir_name(spec.name)))
            supervisor = PluginSupervisor(spec, self.server)
            self.supervisors.append(supervisor)
            self.tasks.spawn(supervisor.run(), name=f"plugin-{spec.name}")
            log.info(
                "%s %s starts as a process (%s) as %s",
                spec.kind,
                spec.name,
                " ".join(spec.launch.command),
                spec.ident,
            )

    def link_statuses(self) -> list[LinkState]:
        return [st for s in self.supervisors if s.spec.mirror for st in s.spec.mirror.statuses()]

    def states(self) -> Sequence[PluginState]:
        return [s.state for s in self.supervisors]

    def status(self) -> list[dict[str, Any]]:
        return [s.state.as_dict() for s in self.supervisors]

    def bot_status(self) -> list[dict[str, Any]]:
        """Bots given by `command:`, in the shape of the in-process bots' status."""
        return [
            {
                "id": s.spec.ident,
                "plugin": s.state.command,
                "state": s.state.state,
                "topics": json.loads(s.spec.launch.env.get("BRIDGEHOST_TOPICS", "[]")),
                "pid": s.state.pid,
                "restarts": s.state.restarts,
                "last_error": s.state.last_error,
            }
            for s in self.supervisors
            if s.spec.kind == "bot"
        ]

    async def stop(self) -> None:
        """Stop every plugin in order (concurrently), then end their supervisors."""
        results = await asyncio.gather(
            *(s.shutdown() for s in self.supervisors), return_exceptions=True
        )
        for sup, result in zip(self.supervisors, results, strict=True):
            if isinstance(result, BaseException):
                log.error("%s %s: stopping failed", sup.spec.kind, sup.spec.name, exc_info=result)
        await self.tasks.close()
