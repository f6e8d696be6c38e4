"""`!help` lists every command of every bot present in the topic, with its help.

In-process bots come from the host's shared registry; bots in other
processes from the manifests they send to `!bots@<domain>` (see
bridgehost/bots/directory.py).
"""

from __future__ import annotations

from ..api import Bot, BotCommands, CommandInfo, Context, command

MAX_LINES = 20


def usage(prefix: str, info: CommandInfo) -> str:
    return f"{prefix}{info.name}" + (f" {info.usage}" if info.usage else "")


def describe(entries: list[BotCommands], wanted: str = "") -> list[str]:
    """One line per command (`!seen NAME — when and where NAME last spoke`)."""
    wanted = wanted.strip().lstrip("!").lower()
    lines = []
    for entry in entries:
        for info in entry.commands:
            if wanted and info.name != wanted and usage(entry.prefix, info).lower() != wanted:
                continue
            text = usage(entry.prefix, info)
            lines.append(f"{text} — {info.help}" if info.help else text)
    return sorted(set(lines))


class Help(Bot):
    @command("help", help="lists the commands of the bots here", usage="[COMMAND]")
    async def help(self, ctx: Context, args: str) -> None:
        lines = describe(self.directory.commands_in(ctx.topic), args)
        if not lines:
            await ctx.reply(f"no command {args!r} here" if args else "no bot commands here")
            return
        if len(lines) > MAX_LINES:
            lines = [*lines[: MAX_LINES - 1], f"… and {len(lines) - MAX_LINES + 1} more"]
        await ctx.reply("\n".join(lines))
