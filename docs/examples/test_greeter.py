from greeter import Greeter

from bridgehost.testing.bots import BotHarnessFactory, BotSpec

pytest_plugins = ["bridgehost.testing.fixtures"]


async def test_greeter(bot_harness: BotHarnessFactory) -> None:
    async with bot_harness(BotSpec(Greeter, config={"greeting": "hi"})) as bot:
        assert await bot.ask("!greet") == "hi, alice! (greeting #1)"
        assert await bot.ask("thanks!") == "you're welcome, alice"
        await bot.restart()  # the count is persistent
        assert await bot.ask("!greet Bob") == "hi, Bob! (greeting #2)"
