"""`!ping` -> `pong`: the smallest useful bot, and a liveness check."""

from __future__ import annotations

from ..api import Bot, Context, command


class Ping(Bot):
    @command("ping", help="answers pong (is the bot alive?)")
    async def ping(self, ctx: Context, args: str) -> None:
        await ctx.reply("pong")
