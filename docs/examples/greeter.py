"""An example bot: typed config, a command, a pattern, storage, a scheduled job."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridgehost.bots import Bot, Context, command, every, on_message


@dataclass(frozen=True)
class GreeterConfig:
    greeting: str = "hello"
    reminder: str = ""  # posted hourly in every topic when set


class Greeter(Bot[GreeterConfig]):
    @command("greet", help="greets you, or NAME", usage="[NAME]")
    async def greet(self, ctx: Context, args: str) -> None:
        count = await self.store.get("greeted", 0) + 1
        await self.store.set("greeted", count)
        await ctx.reply(f"{self.config.greeting}, {args or ctx.nick}! (greeting #{count})")

    @on_message(r"\bthanks?\b", re.IGNORECASE)
    async def thanks(self, ctx: Context, match: re.Match[str]) -> None:
        await ctx.reply(f"you're welcome, {ctx.nick}")

    @every(3600)
    async def remind(self) -> None:
        if self.config.reminder:
            for topic in self.topics:
                await self.send(topic, self.config.reminder, kind="notice")
