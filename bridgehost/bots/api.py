"""What a bot author writes against: `Bot`, the handler decorators, `Context`.

    class Ping(Bot):
        @command("ping", help="answers pong")
        async def ping(self, ctx: Context, args: str) -> None:
            await ctx.reply("pong")

The decorators only mark methods; `Bot.__init_subclass__` collects the marks
once per class, so the runner never inspects methods per event. A bot
declares the shape of its `config:` map by parametrising the base class with
a dataclass (`class Greeter(Bot[GreeterConfig])`), which types `self.config`
for mypy and validates the YAML at start (see `schema.py`).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol

from typing_extensions import TypeVar

from ..scalar.events import Event

if TYPE_CHECKING:
    from .store import BotStore

ConfigT = TypeVar("ConfigT", default=dict[str, Any])
B = TypeVar("B", bound="Bot[Any]")

CommandHandler = Callable[[B, "Context", str], Awaitable[None]]
MessageHandler = Callable[[B, "Context", "re.Match[str]"], Awaitable[None]]
EventHandler = Callable[[B, "Context"], Awaitable[None]]
JobHandler = Callable[[B], Awaitable[None]]

_MARK = "__bridgehost_handlers__"
_COMMAND_NAME = re.compile(r"[^\s]{1,64}")
MESSAGE_KINDS = frozenset({"text", "action"})
"""Kinds whose body is something a person said: what commands and patterns see.
An edit, a reaction or a topic change never runs a command (`!ping` typed as a
reaction key, or an edit of an old `!ping`, is not a new request)."""


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """A command as `help` lists it."""

    name: str
    help: str = ""
    usage: str = ""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    info: CommandInfo
    attr: str


@dataclass(frozen=True, slots=True)
class PatternSpec:
    regex: re.Pattern[str] | None
    attr: str


@dataclass(frozen=True, slots=True)
class KindSpec:
    kinds: frozenset[str]
    attr: str


@dataclass(frozen=True, slots=True)
class JobSpec:
    seconds: float
    attr: str


@dataclass(frozen=True, slots=True)
class BotCommands:
    """One bot's commands as seen from a topic (what `Help` shows)."""

    bot_id: str
    prefix: str
    commands: tuple[CommandInfo, ...]
    topics: tuple[str, ...] = ()


class Directory(Protocol):
    """Which bots are present in a topic, with their commands."""

    def commands_in(self, topic: str) -> list[BotCommands]: ...


class Outlet(Protocol):
    """Where a bot's messages go: the runner (rate limit, current connection)."""

    async def publish(
        self,
        topic: str,
        body: str,
        *,
        kind: str,
        ctype: str | None,
        reply_to: bytes | None,
        target: bytes | None = None,
    ) -> Event: ...


def _mark(fn: Any, spec: object) -> None:
    marks = list(getattr(fn, _MARK, ()))
    marks.append(spec)
    setattr(fn, _MARK, tuple(marks))


def command(
    name: str, *, help: str = "", usage: str = ""
) -> Callable[[CommandHandler[B]], CommandHandler[B]]:
    """`!name args...` (the prefix is per bot, `!` by default) calls
    `handler(self, ctx, args)`; `args` is the rest of the line, stripped."""
    if not _COMMAND_NAME.fullmatch(name):
        raise ValueError(f"bad command name {name!r}: 1-64 characters, no spaces")

    def mark(fn: CommandHandler[B]) -> CommandHandler[B]:
        _mark(fn, CommandInfo(name.lower(), help, usage))
        return fn

    return mark


def on_message(
    pattern: str | re.Pattern[str] | None = None, flags: int = 0
) -> Callable[[MessageHandler[B]], MessageHandler[B]]:
    """Every message whose body matches `pattern` (`re.search`) calls
    `handler(self, ctx, match)`; without a pattern, every message does."""
    regex = None if pattern is None else re.compile(pattern, flags)

    def mark(fn: MessageHandler[B]) -> MessageHandler[B]:
        _mark(fn, PatternSpec(regex, ""))
        return fn

    return mark


def on_event(*kinds: str) -> Callable[[EventHandler[B]], EventHandler[B]]:
    """Every event of one of `kinds` (`edit`, `delete`, `react`, `join`, `part`,
    `topic`, or `text`/`action`/`notice`) calls `handler(self, ctx)`; what it
    acts on is `ctx.event.target`. Bots never see `notice`s, `presence` or their
    own events, whatever they ask for."""
    if not kinds:
        raise ValueError("on_event needs at least one kind")

    def mark(fn: EventHandler[B]) -> EventHandler[B]:
        _mark(fn, KindSpec(frozenset(kinds), ""))
        return fn

    return mark


def every(seconds: float) -> Callable[[JobHandler[B]], JobHandler[B]]:
    """Call `handler(self)` every `seconds` (first run one interval after start);
    runs never overlap."""
    if seconds <= 0:
        raise ValueError("every(seconds) needs seconds > 0")

    def mark(fn: JobHandler[B]) -> JobHandler[B]:
        _mark(fn, JobSpec(float(seconds), ""))
        return fn

    return mark


class Bot(Generic[ConfigT]):
    """Base class of every bot. Subclass it, decorate async methods.

    Available from `setup()` on (set by the framework before it runs):
    `id` (the bot's reserved ID), `config` (validated `config:` map, or an
    instance of the dataclass the bot is parametrised with), `store`
    (persistent key-value store), `log`, `topics`, `prefix`, `directory`.
    """

    config_schema: ClassVar[Mapping[str, Any] | None] = None
    """Optional dict schema for an untyped config: `{"key": type}` (required)
    or `{"key": (type, default)}`. Prefer `Bot[SomeDataclass]`."""

    _commands: ClassVar[dict[str, CommandSpec]] = {}
    _patterns: ClassVar[tuple[PatternSpec, ...]] = ()
    _kinds: ClassVar[tuple[KindSpec, ...]] = ()
    _jobs: ClassVar[tuple[JobSpec, ...]] = ()

    config: ConfigT
    store: BotStore
    directory: Directory

    def __init__(self) -> None:
        self.id = ""
        self.topics: tuple[str, ...] = ()
        self.prefix = "!"
        self.log = logging.getLogger(f"bridgehost.bot.{type(self).__name__}")
        self._outlet: Outlet | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        commands: dict[str, CommandSpec] = {}
        patterns: list[PatternSpec] = []
        kinds: list[KindSpec] = []
        jobs: list[JobSpec] = []
        names = {name for klass in cls.__mro__ for name in vars(klass)}
        for attr in sorted(names):
            value = inspect.getattr_static(cls, attr, None)
            for mark in getattr(value, _MARK, ()):
                if isinstance(mark, CommandInfo):
                    commands[mark.name] = CommandSpec(mark, attr)
                elif isinstance(mark, PatternSpec):
                    patterns.append(PatternSpec(mark.regex, attr))
                elif isinstance(mark, KindSpec):
                    kinds.append(KindSpec(mark.kinds, attr))
                elif isinstance(mark, JobSpec):
                    jobs.append(JobSpec(mark.seconds, attr))
        cls._commands, cls._patterns, cls._jobs = commands, tuple(patterns), tuple(jobs)
        cls._kinds = tuple(kinds)

    # --- what the framework sets up ----------------------------------------------------

    def _attach(
        self,
        *,
        id: str,
        config: ConfigT,
        store: BotStore,
        topics: tuple[str, ...],
        prefix: str,
        directory: Directory,
    ) -> None:
        self.id, self.config, self.store = id, config, store
        self.topics, self.prefix, self.directory = topics, prefix, directory
        local = id.lstrip("!").partition("@")[0] or type(self).__name__
        self.log = logging.getLogger(f"bridgehost.bot.{local}")

    # --- hooks ---------------------------------------------------------------------------

    async def setup(self) -> None:
        """Called once before the bot connects (open files, load state)."""

    async def teardown(self) -> None:
        """Called once when the bot stops."""

    # --- acting --------------------------------------------------------------------------

    async def send(
        self,
        topic: str,
        text: str,
        *,
        kind: str = "text",
        ctype: str | None = None,
        reply_to: bytes | None = None,
        target: bytes | None = None,
    ) -> Event:
        """Publish to any topic (a channel, or a user ID for a direct message).
        Waits for the bot's rate limit and for a live connection."""
        if self._outlet is None:
            raise RuntimeError(f"bot {self.id or type(self).__name__} is not running")
        return await self._outlet.publish(
            topic, text, kind=kind, ctype=ctype, reply_to=reply_to, target=target
        )

    async def edit(self, event: Event, text: str) -> Event:
        """Replace the text of an event this bot published (§11 `edit`)."""
        return await self.send(event.topic, text, kind="edit", target=event.id)

    async def delete(self, event: Event, reason: str = "") -> Event:
        """Withdraw an event this bot published (§11 `delete`)."""
        return await self.send(event.topic, reason, kind="delete", target=event.id)

    async def react(self, event: Event, key: str) -> Event:
        """React to any event with `key` (an emoji or a short text, at most 64 bytes)."""
        return await self.send(event.topic, key, kind="react", target=event.id)

    @classmethod
    def commands(cls) -> tuple[CommandInfo, ...]:
        return tuple(spec.info for _, spec in sorted(cls._commands.items()))


class Context:
    """One incoming event, and how to answer it."""

    __slots__ = ("bot", "event")

    def __init__(self, bot: Bot[Any], event: Event) -> None:
        self.bot = bot
        self.event = event

    @property
    def topic(self) -> str:
        return self.event.topic

    @property
    def sender(self) -> str:
        """The authenticated sender ID (a bridge's ID for relayed messages)."""
        return self.event.sender

    @property
    def nick(self) -> str:
        """Display name: the relayed nick, else the name part of the sender ID."""
        if self.event.nick:
            return self.event.nick
        return self.event.sender.lstrip("!").partition("@")[0]

    @property
    def is_direct(self) -> bool:
        """A direct message to the bot (its own ID is the topic)."""
        return self.event.topic == self.bot.id

    @property
    def reply_topic(self) -> str:
        return self.event.sender if self.is_direct else self.event.topic

    async def reply(self, text: str, *, ctype: str | None = None) -> Event:
        """Answer with a `notice` where the event came from (to the sender for
        a direct message), marked as a reply to it."""
        return await self.bot.send(
            self.reply_topic, text, kind="notice", ctype=ctype, reply_to=self.event.id
        )

    async def send(
        self, topic: str, text: str, *, kind: str = "text", ctype: str | None = None
    ) -> Event:
        return await self.bot.send(topic, text, kind=kind, ctype=ctype)

    async def react(self, key: str) -> Event:
        """React to the incoming event with `key` (an emoji or a short text)."""
        return await self.bot.react(self.event, key)

    async def edit(self, event: Event, text: str) -> Event:
        """Replace the text of `event`, one the bot published (say, what `reply`
        returned: answer at once, then fill in the result)."""
        return await self.bot.edit(event, text)

    async def delete(self, event: Event, reason: str = "") -> Event:
        """Withdraw `event`, one the bot published."""
        return await self.bot.delete(event, reason)
