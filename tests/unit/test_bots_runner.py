"""The runner's dispatch rules, without a server: which events call which
handlers, and how failing or slow handlers are contained."""

import asyncio
import contextlib
import logging
import re

import pytest

from bridgehost.bots import Bot, Context, command, every, on_message
from bridgehost.bots.runner import BotRunner, RunSettings
from bridgehost.scalar.client import Client
from bridgehost.scalar.errors import ConnectionClosed
from bridgehost.scalar.events import Event
from bridgehost.testing import wait_until

ME, TOPIC = "!rec@d", "#a@d"


class Recorder(Bot):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    @command("echo")
    async def echo(self, ctx: Context, args: str) -> None:
        self.calls.append(("echo", args))

    @on_message(r"tea|coffee")
    async def drinks(self, ctx: Context, match: re.Match[str]) -> None:
        self.calls.append(("drink", match.group(0)))

    @command("boom")
    async def boom(self, ctx: Context, args: str) -> None:
        raise ValueError("kaboom")

    @command("slow")
    async def slow(self, ctx: Context, args: str) -> None:
        await asyncio.sleep(10)

    @every(0.05)
    async def tick(self) -> None:
        self.calls.append(("tick", ""))


async def never() -> Client:
    raise AssertionError("not connected in unit tests")


def runner(**settings: object) -> tuple[Recorder, BotRunner]:
    bot = Recorder()
    bot.id = ME
    r = BotRunner(bot, connect=never, topics=[TOPIC], settings=RunSettings(**settings))  # type: ignore[arg-type]
    return bot, r


def ev(body: str, *, kind: str = "text", sender: str = "alice@d", topic: str = TOPIC) -> Event:
    return Event(id=b"\1" * 32, topic=topic, seq=1, sender=sender, time=0, body=body, kind=kind)


async def settle(r: BotRunner) -> None:
    await r.handlers.wait(2)


async def test_commands_patterns_and_arguments() -> None:
    bot, r = runner()
    for body in ("!echo  hello world ", "!ECHO", "!echoes", "! echo", "I want coffee", "echo"):
        r.dispatch(ev(body))
    await settle(r)
    assert sorted(bot.calls) == [("drink", "coffee"), ("echo", ""), ("echo", "hello world")]


async def test_notices_presence_own_events_and_other_topics_are_ignored() -> None:
    bot, r = runner()
    r.dispatch(ev("!echo a", kind="notice"))
    r.dispatch(ev("!echo b", kind="presence"))
    r.dispatch(ev("!echo c", sender=ME))
    r.dispatch(ev("!echo d", topic="#other@d"))
    r.dispatch(ev("!echo e", topic=ME))  # a direct message is answered
    r.dispatch(ev("!echo f", kind="action"))
    await settle(r)
    assert sorted(bot.calls) == [("echo", "e"), ("echo", "f")]
    assert r.received == 2


async def test_custom_prefix() -> None:
    bot, r = runner(prefix="@@")
    r.dispatch(ev("!echo no"))
    r.dispatch(ev("@@echo yes"))
    await settle(r)
    assert bot.calls == [("echo", "yes")]


async def test_raising_handler_is_logged_with_the_bot_name_and_the_bot_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot, r = runner()
    with caplog.at_level(logging.ERROR, logger="bridgehost.bots.runner"):
        r.dispatch(ev("!boom"))
        await settle(r)
    assert any(
        f"bot {ME}: handler boom raised ValueError" in rec.getMessage() for rec in caplog.records
    )
    assert (r.errors, r.last_error) == (1, "boom: ValueError: kaboom")
    r.dispatch(ev("!echo still here"))
    await settle(r)
    assert bot.calls == [("echo", "still here")]


async def test_slow_handler_times_out_without_delaying_others() -> None:
    bot, r = runner(timeout=0.3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    r.dispatch(ev("!slow"))
    r.dispatch(ev("!echo fast"))
    await asyncio.sleep(0.05)
    assert bot.calls == [("echo", "fast")]
    await settle(r)
    assert 0.25 < loop.time() - start < 2
    assert r.errors == 1 and "timed out" in (r.last_error or "")


async def test_too_many_running_handlers_drops_new_ones() -> None:
    _, r = runner(max_tasks=2, timeout=0.2)
    for _ in range(3):
        r.dispatch(ev("!slow"))
    assert (len(r.handlers), r.dropped) == (2, 1)
    await r.handlers.close()


async def test_every_job_repeats() -> None:
    bot, r = runner()
    r.tasks.spawn(r._job_loop(Recorder._jobs[0]))
    await asyncio.sleep(0.3)
    await r.tasks.close()
    assert 3 <= bot.calls.count(("tick", "")) <= 7


class Greeter(Bot):
    @on_message(r"hi")
    async def hi(self, ctx: Context, match: re.Match[str]) -> None:
        await asyncio.sleep(0.3)
        await ctx.reply("hello")


class Peer:
    """A connection as the runner sees it: some events, then lost after `lose_after` s."""

    def __init__(self, events: list[Event], lose_after: float | None) -> None:
        self.events, self.lose_after = events, lose_after
        self.closed, self.close_reason = False, ""
        self.published: list[str] = []

    async def sub(self, topic: str) -> None:
        pass

    def __aiter__(self) -> "Peer":
        return self

    async def __anext__(self) -> Event:
        if self.events:
            return self.events.pop(0)
        if self.lose_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(self.lose_after or 0)
        self.closed, self.close_reason = True, "lost"
        raise StopAsyncIteration

    async def publish(self, topic: str, body: str, **extra: object) -> Event:
        if self.closed:
            raise ConnectionClosed("connection closed: lost")
        self.published.append(body)
        return ev(body)

    async def close(self) -> None:
        self.closed = True


async def test_a_handler_running_when_the_connection_drops_replies_after_the_reconnect() -> None:
    peers = [Peer([ev("hi")], lose_after=0.05), Peer([], lose_after=None)]
    made: list[Peer] = []

    async def connect() -> Client:
        made.append(peers[len(made)])
        return made[-1]  # type: ignore[return-value]

    bot = Greeter()
    bot.id = ME
    settings = RunSettings(reconnect_initial=0.01, reconnect_max=0.01)
    r = BotRunner(bot, connect=connect, topics=[TOPIC], settings=settings)
    task = asyncio.create_task(r.run())
    try:
        await wait_until(lambda: bool(peers[1].published), 3, "the reply")
        assert len(made) == 2
        assert peers[1].published == ["hello"], (r.errors, r.last_error)
        assert r.errors == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
