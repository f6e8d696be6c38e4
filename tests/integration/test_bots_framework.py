"""The framework's rules against a real in-process server: what bots ignore,
how failures are contained, pacing, jobs, config errors, reconnects."""

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridgehost.bots import Bot, Context, command, every, on_message
from bridgehost.testing import Running, running
from bridgehost.testing.bots import BotHarnessFactory, BotSpec

pytest_plugins = ["bridgehost.testing.fixtures"]


class Echo(Bot):
    """Answers every message with a *text* event: without the own-event rule
    it would answer itself forever."""

    @on_message()
    async def echo(self, ctx: Context, match: re.Match[str]) -> None:
        await ctx.send(ctx.reply_topic, f"echo: {ctx.event.body}")


class Fragile(Bot):
    @command("boom")
    async def boom(self, ctx: Context, args: str) -> None:
        raise RuntimeError("handler exploded")

    @command("slow")
    async def slow(self, ctx: Context, args: str) -> None:
        await asyncio.sleep(30)
        await ctx.reply("too late")

    @command("ok")
    async def ok(self, ctx: Context, args: str) -> None:
        await ctx.reply("ok")

    @command("burst")
    async def burst(self, ctx: Context, args: str) -> None:
        for i in range(int(args)):
            await ctx.reply(str(i))


class Ticker(Bot):
    @every(0.2)
    async def tick(self) -> None:
        count = await self.store.get("ticks", 0) + 1
        await self.store.set("ticks", count)
        for topic in self.topics:
            await self.send(topic, f"tick {count}", kind="notice")


@dataclass(frozen=True)
class GreeterConfig:
    greeting: str = "hello"
    shout: bool = False


class Greeter(Bot[GreeterConfig]):
    @command("greet", help="greets you")
    async def greet(self, ctx: Context, args: str) -> None:
        text = f"{self.config.greeting}, {args or ctx.nick}"
        await ctx.reply(text.upper() if self.config.shout else text)


async def test_notices_and_own_events_are_never_answered(bot_harness: BotHarnessFactory) -> None:
    async with bot_harness(Echo) as h:
        await h.say("hi")
        first = await h.next_reply()
        assert (first.body, first.kind) == ("echo: hi", "text")
        await h.say("automated", kind="notice")
        assert await h.replies(0.5) == []  # neither its own echo nor the notice


async def test_direct_messages_are_answered_directly(bot_harness: BotHarnessFactory) -> None:
    async with bot_harness(Echo) as h:
        me = h.user.id
        await h.user.sub(me)
        await h.user.publish("!echo@test.example", "psst")
        reply = await h.next_reply()
        assert (reply.topic, reply.body) == (me, "echo: psst")


async def test_failing_and_slow_handlers_are_contained(
    bot_harness: BotHarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with bot_harness(BotSpec(Fragile, timeout=0.5)) as h:
        with caplog.at_level(logging.ERROR, logger="bridgehost.bots.runner"):
            await h.say("!boom")
            await h.say("!slow")
            assert await h.ask("!ok", timeout=0.4) == "ok"  # not delayed by !slow
            await asyncio.sleep(0.6)
        messages = [r.getMessage() for r in caplog.records]
        assert any(
            "bot !fragile@test.example: handler boom raised RuntimeError" in m for m in messages
        )
        assert any("bot !fragile@test.example: handler slow timed out" in m for m in messages)
        assert await h.replies(0.2) == []  # "too late" never came
        assert await h.ask("!ok") == "ok"
        status = {s["id"]: s for s in h.srv.app.status()["bots"]}["!fragile@test.example"]
        assert (status["state"], status["errors"]) == ("connected", 2)


async def test_publishing_is_paced_per_bot(bot_harness: BotHarnessFactory) -> None:
    async with bot_harness(BotSpec(Fragile, rate=5, burst=2)) as h:
        loop = asyncio.get_running_loop()
        await h.say("!burst 6")
        arrivals = []
        for _ in range(6):
            event = await h.next_reply()
            arrivals.append((event.body, loop.time()))
        assert [body for body, _ in arrivals] == ["0", "1", "2", "3", "4", "5"]
        start = arrivals[0][1]
        assert arrivals[1][1] - start < 0.15  # the burst goes at once (paced: 0.2 s)
        assert 0.7 < arrivals[5][1] - start < 1.6  # then 5 per second: 4 more in 0.8 s


async def test_every_job_runs_and_uses_the_store(bot_harness: BotHarnessFactory) -> None:
    async with bot_harness(Ticker) as h:
        counts = [int((await h.next_reply(2)).body.split()[1]) for _ in range(3)]
        assert counts == list(range(counts[0], counts[0] + 3))
        await h.restart()
        after = int((await h.next_reply(2)).body.split()[1])
        assert after > counts[-1]  # the count went on from the stored value


class Slowpoke(Bot):
    """Records a message only after a pause, in two writes (as `seen` files a
    message under the nick and the ID)."""

    @on_message()
    async def note(self, ctx: Context, match: re.Match[str]) -> None:
        if ctx.event.body.startswith("!"):
            return
        await self.store.set("first", ctx.event.body)
        await asyncio.sleep(0.3)
        await self.store.set("second", ctx.event.body)
        await ctx.reply(f"noted {ctx.event.body}")

    @command("recall")
    async def recall(self, ctx: Context, args: str) -> None:
        first, second = await self.store.get("first"), await self.store.get("second")
        await ctx.reply(f"{first} / {second}")


async def test_a_stop_lets_running_handlers_finish(bot_harness: BotHarnessFactory) -> None:
    async with bot_harness(Slowpoke) as h:
        await h.say("just before the restart")
        await asyncio.sleep(0.05)  # the handler is between its two writes
        await h.restart()
        assert await h.ask("!recall") == "just before the restart / just before the restart"


async def test_typed_config(bot_harness: BotHarnessFactory) -> None:
    spec = BotSpec(Greeter, config={"greeting": "hey", "shout": True})
    plain = BotSpec(Greeter, id="!plain", topics=("#plain@test.example",))
    async with bot_harness(spec, plain) as h:
        assert await h.ask("!greet") == "HEY, ALICE"
        await h.user.sub("#plain@test.example")
        await h.say("!greet Bob", topic="#plain@test.example")
        assert (await h.next_reply()).body == "hello, Bob"
        assert isinstance(h.bot(Greeter).config, GreeterConfig)


async def test_bad_bots_are_reported_and_the_others_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lobby = "#lobby@test.example"
    bots = [
        {"plugin": "no_such_module:Bot", "id": "!broken@test.example", "topics": [lobby]},
        {
            "plugin": f"{__name__}:Greeter",
            "id": "!badconf@test.example",
            "topics": [lobby],
            "config": {"greeting": 5, "colour": "red"},
        },
        {"plugin": "ping", "id": "!ping@test.example", "topics": [lobby]},
        {"plugin": "ping", "id": "!bots@test.example", "topics": [lobby]},
    ]
    with caplog.at_level(logging.ERROR, logger="bridgehost.bots.host"):
        async with running(tmp_path, {"bots": bots}) as srv:
            alice = await srv.client("alice")
            await alice.sub(lobby)
            await alice.publish(lobby, "!ping")
            assert (await alice.next_event(5)).body == "pong"
            status = {s["id"]: s for s in srv.app.status()["bots"]}
    assert status["!ping@test.example"]["state"] == "connected"
    assert status["!broken@test.example"]["state"] == "failed"
    assert "cannot import no_such_module" in status["!broken@test.example"]["last_error"]
    assert "reserved for the bot directory" in status["!bots@test.example"]["last_error"]
    bad = status["!badconf@test.example"]["last_error"]
    assert "config.greeting: must be str, not 5" in bad
    assert "config.colour: unknown key (known: greeting, shout)" in bad
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "bot !broken@test.example (no_such_module:Bot) not started: cannot import" in logged
    assert "bot !badconf@test.example" in logged and "config.greeting" in logged


async def test_lost_connection_is_reconnected_and_resubscribed(
    bot_harness: BotHarnessFactory,
) -> None:
    async with bot_harness(Fragile) as h:
        server = h.srv.app.server
        assert server is not None
        conns = [c for c in server.connections if c.id == "!fragile@test.example"]
        assert len(conns) == 1
        conns[0].sink.abort()
        runner = h.host.runners["!fragile@test.example"]
        await asyncio.sleep(0.05)
        assert not runner.ready.is_set()
        assert await runner.wait_ready(5)
        assert await h.ask("!ok") == "ok"
        assert runner.status()["last_error"].startswith("connection lost")


async def test_bridgehost_server_fixture(bridgehost_server: Running) -> None:
    alice = await bridgehost_server.client("alice")
    lobby = bridgehost_server.channel("lobby")
    await alice.sub(lobby)
    assert (await alice.publish(lobby, "hi")).seq == 1
