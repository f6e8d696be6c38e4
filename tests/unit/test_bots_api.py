"""The bot API: decorators collect handlers per class; Context derives replies."""

import re
from dataclasses import dataclass

import pytest

from bridgehost.bots import Bot, Context, command, every, on_message
from bridgehost.scalar.events import Event


class Base(Bot):
    @command("Hello", help="greets", usage="[NAME]")
    async def hello(self, ctx: Context, args: str) -> None:
        pass

    @on_message(r"\bcoffee\b", re.I)
    async def coffee(self, ctx: Context, match: re.Match[str]) -> None:
        pass

    @every(5)
    async def tick(self) -> None:
        pass


class Child(Base):
    async def hello(self, ctx: Context, args: str) -> None:  # no longer a command
        pass

    @command("bye")
    @command("quit")
    async def bye(self, ctx: Context, args: str) -> None:
        pass


def event(**kw: object) -> Event:
    base: dict[str, object] = dict(
        id=b"\x01" * 32, topic="#x@d", seq=1, sender="alice@d", time=0, body="hi"
    )
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


def test_decorators_collect_commands_patterns_and_jobs() -> None:
    assert set(Base._commands) == {"hello"}
    assert Base._commands["hello"].info.help == "greets"
    assert [p.attr for p in Base._patterns] == ["coffee"]
    assert Base._patterns[0].regex is not None and Base._patterns[0].regex.search("More COFFEE!")
    assert [(j.attr, j.seconds) for j in Base._jobs] == [("tick", 5.0)]
    assert [c.name for c in Base.commands()] == ["hello"]
    assert Base.commands()[0].usage == "[NAME]"


def test_subclass_inherits_and_overriding_undecorated_removes_the_command() -> None:
    assert set(Child._commands) == {"bye", "quit"}
    assert Child._commands["quit"].attr == "bye"
    assert [p.attr for p in Child._patterns] == ["coffee"]
    assert set(Base._commands) == {"hello"}  # the base class is untouched


def test_bad_command_name_and_interval_are_refused() -> None:
    with pytest.raises(ValueError):
        command("two words")
    with pytest.raises(ValueError):
        every(0)


def test_context_nick_sender_and_reply_topic() -> None:
    bot = Base()
    bot.id = "!b@d"
    plain = Context(bot, event())
    assert (plain.nick, plain.sender, plain.topic, plain.reply_topic) == (
        "alice",
        "alice@d",
        "#x@d",
        "#x@d",
    )
    assert not plain.is_direct
    relayed = Context(bot, event(sender="!irc-x@d", nick="Bob"))
    assert relayed.nick == "Bob"
    direct = Context(bot, event(topic="!b@d"))
    assert direct.is_direct and direct.reply_topic == "alice@d"


async def test_send_before_the_bot_runs_says_so() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        await Base().send("#x@d", "hi")


@dataclass(frozen=True)
class Settings:
    greeting: str = "hi"


def test_config_type_is_taken_from_the_generic_base() -> None:
    from bridgehost.bots.schema import config_type

    class Typed(Bot[Settings]):
        pass

    class Sub(Typed):
        pass

    assert config_type(Typed) is Settings
    assert config_type(Sub) is Settings
    assert config_type(Base) is None
