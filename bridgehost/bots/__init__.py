"""The bot framework: write a bot as a class, run it in process or over the protocol.

    from bridgehost.bots import Bot, Context, command

    class Ping(Bot):
        @command("ping", help="answers pong")
        async def ping(self, ctx: Context, args: str) -> None:
            await ctx.reply("pong")

See docs/bots.md.
"""

from .api import (
    Bot,
    BotCommands,
    CommandInfo,
    Context,
    Directory,
    command,
    every,
    on_event,
    on_message,
)
from .schema import BotConfigError
from .store import JSON, BotStore

__all__ = [
    "JSON",
    "Bot",
    "BotCommands",
    "BotConfigError",
    "BotStore",
    "CommandInfo",
    "Context",
    "Directory",
    "command",
    "every",
    "on_event",
    "on_message",
]
