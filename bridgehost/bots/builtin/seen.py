"""`!seen NAME` -> when and where that nick or ID last spoke.

Every message in the bot's topics is recorded under the speaker's display
name (the relayed nick, or the name part of a Scalar ID) and, for Scalar
senders, under the full ID too. Records live in the bot's store, so they
survive restarts.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from ..api import Bot, Context, command, on_message

QUOTE_CHARS = 120


def ago(seconds: float) -> str:
    """`just now`, `5 minutes ago`, `2 days ago`."""
    seconds = max(0.0, seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            n = int(seconds // size)
            if unit == "second" and n < 10:
                break
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def keys_for(sender: str, nick: str | None) -> list[str]:
    """Where a message is filed: `nick:<name>` always, `id:<ID>` for direct senders."""
    if nick:
        return [f"nick:{nick.lower()}"]
    name = sender.lstrip("!").partition("@")[0]
    return [f"nick:{name.lower()}", f"id:{sender.lower()}"]


def lookup_key(name: str) -> str:
    name = name.strip()
    return f"id:{name.lower()}" if "@" in name else f"nick:{name.lower()}"


def sentence(record: dict[str, Any], now: float) -> str:
    when = dt.datetime.fromtimestamp(record["time"] / 1000, dt.UTC)
    text = re.sub(r"\s+", " ", str(record.get("text", "")))
    if len(text) > QUOTE_CHARS:
        text = text[: QUOTE_CHARS - 1] + "…"
    via = f" (via {record['origin']})" if record.get("origin") else ""
    verb = f"* {record['name']} {text}" if record.get("kind") == "action" else text
    return (
        f"{record['name']} was last seen in {record['topic']}{via} "
        f"{ago(now - record['time'] / 1000)} ({when:%Y-%m-%d %H:%M} UTC), saying: {verb}"
    )


class Seen(Bot):
    @on_message()
    async def record(self, ctx: Context, match: re.Match[str]) -> None:
        if ctx.is_direct:
            return
        event = ctx.event
        record: dict[str, Any] = {
            "name": ctx.nick,
            "id": event.sender,
            "topic": event.topic,
            "time": event.time,
            "kind": event.kind,
            "text": event.body[:500],
        }
        if event.origin:
            record["origin"] = event.origin
        for key in keys_for(event.sender, event.nick):
            await self.store.set(key, record)

    @command("seen", help="when and where NAME last spoke", usage="NAME")
    async def seen(self, ctx: Context, args: str) -> None:
        name = (args.split() or [""])[0]
        if not name:
            await ctx.reply(f"usage: {self.prefix}seen NAME")
            return
        if name.lower() in (ctx.nick.lower(), ctx.sender.lower()):
            await ctx.reply(f"{ctx.nick}: that's you!")
            return
        record: dict[str, Any] = await self.store.get(lookup_key(name), {})
        if not record:
            await ctx.reply(f"I have not seen {name}")
            return
        await ctx.reply(sentence(record, time.time()))
