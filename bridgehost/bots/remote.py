"""`bridgehost bot PLUGIN --server URL --id ID --token T`: the same bot class,
out of process, over the protocol with the client library.

Exit codes: 0 stopped by SIGINT/SIGTERM (handled by the CLI), 1 refused login (retrying cannot
fix a wrong token, so it does not retry), 2 bad usage (plugin, config, ID).
A lost connection is not an exit: the runner reconnects and subscribes
again. The store is a SQLite file of the bot's own (`--data`, default
`$XDG_DATA_HOME/bridgehost/bots/<id>.sqlite`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..scalar import ids
from ..scalar.client import Client, Endpoint, connect
from ..scalar.errors import BadTopic
from .api import BotCommands
from .directory import StaticDirectory
from .loader import BotLoadError, load_bot_class
from .runner import BotAuthError, BotRunner, RunSettings
from .schema import BotConfigError, build_config
from .store import BotStore, SqliteKV

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def default_data_path(ident: str) -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "bridgehost" / "bots" / f"{ident.lstrip('!')}.sqlite"


def _read_bot_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: must be a map of the bot's config keys")
    return raw


def _parse_ids(args: argparse.Namespace) -> tuple[str, tuple[str, ...]]:
    try:
        ident = ids.parse(args.id)
    except BadTopic as exc:
        raise UsageError(f"--id: {exc}") from exc
    if ident.kind is not ids.Kind.RESERVED:
        raise UsageError(f"--id: a bot runs as a reserved ID like '!name@domain', not {args.id!r}")
    topics = []
    for topic in args.topics:
        try:
            topics.append(ids.normalise(topic))
        except BadTopic as exc:
            raise UsageError(f"--topic: {exc}") from exc
    return str(ident), tuple(topics)


async def run_remote(args: argparse.Namespace) -> int:
    def say(text: str) -> None:
        print(f"bridgehost bot: {text}", file=sys.stderr, flush=True)

    token = args.token or os.environ.get("BRIDGEHOST_TOKEN")
    try:
        ident, topics = _parse_ids(args)
        if not token:
            raise UsageError(
                "no token: pass --token or set $BRIDGEHOST_TOKEN "
                f"(create one on the server: bridgehost token create '{ident}')"
            )
        Endpoint.parse(args.server)
        if getattr(args, "rate", 2.0) <= 0 or getattr(args, "burst", 5) < 1:
            raise UsageError("--rate must be > 0 and --burst at least 1")
        if getattr(args, "timeout", 30.0) <= 0:
            raise UsageError("--timeout must be > 0")
        cls = load_bot_class(args.plugin)
        config = build_config(cls, _read_bot_config(args.bot_config))
        bot = cls()
    except (UsageError, ValueError) as exc:
        say(str(exc))
        return EXIT_USAGE
    except BotLoadError as exc:
        say(f"bot {args.plugin}: {exc}")
        return EXIT_USAGE
    except BotConfigError as exc:
        for problem in exc.problems:
            say(f"bot {args.plugin}: {problem}")
        return EXIT_USAGE

    if not topics:
        log.warning("no --topic given: %s only gets direct messages", ident)
    data = args.data or default_data_path(ident)
    try:
        kv = await SqliteKV.open(data)
    except Exception as exc:
        say(f"cannot open the bot's store {data}: {exc}")
        return EXIT_FAIL
    settings = RunSettings(
        prefix=getattr(args, "prefix", "!"),
        rate=getattr(args, "rate", 2.0),
        burst=getattr(args, "burst", 5),
        timeout=getattr(args, "timeout", 30.0),
        announce=True,
    )
    me = BotCommands(ident, settings.prefix, cls.commands(), topics)
    bot._attach(
        id=ident,
        config=config,
        store=BotStore(kv),
        topics=topics,
        prefix=settings.prefix,
        directory=StaticDirectory([me]),
    )

    async def connector() -> Client:
        return await connect(args.server, id=ident, secret=token, client_name="bridgehost-bot")

    runner = BotRunner(bot, connect=connector, topics=topics, settings=settings, plugin=args.plugin)
    try:
        return await _serve(runner, ident, say)
    finally:
        await kv.close()


async def _serve(runner: BotRunner, ident: str, say: Callable[[str], None]) -> int:
    """Run the bot until it fails or is cancelled (the CLI cancels it on SIGINT/SIGTERM)."""
    try:
        await runner.run()
    except BotAuthError:
        say(
            f"the server refused {ident}: wrong token, or no token was created for this ID "
            f"(on the server: bridgehost token create '{ident}')"
        )
        return EXIT_FAIL
    except Exception as error:
        say(f"bot {ident} failed: {type(error).__name__}: {error}")
        return EXIT_FAIL
    except asyncio.CancelledError:
        log.info("bot %s stopped", ident)
        raise
    log.info("bot %s stopped", ident)
    return EXIT_OK
