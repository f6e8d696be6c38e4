"""Bots and rich events (§11) against a real in-process server: react, edit,
delete, `@on_event`, and commands that only ever come from what people said."""

from __future__ import annotations

from bridgehost.bots import Bot, Context, command, on_event
from bridgehost.testing.bots import BotHarnessFactory

pytest_plugins = ["bridgehost.testing.fixtures"]


class Rich(Bot):
    @command("thumbs")
    async def thumbs(self, ctx: Context, args: str) -> None:
        await ctx.react("👍")

    @command("work")
    async def work(self, ctx: Context, args: str) -> None:
        sent = await ctx.reply("working…")
        await ctx.edit(sent, "done: 42")

    @command("oops")
    async def oops(self, ctx: Context, args: str) -> None:
        sent = await ctx.reply("wrong answer")
        await ctx.delete(sent, "sorry")

    @on_event("react", "edit", "topic")
    async def noticed(self, ctx: Context) -> None:
        target = ctx.event.target.hex()[:8] if ctx.event.target else "-"
        await self.send(
            ctx.topic, f"saw {ctx.event.kind} {ctx.event.body} on {target}", kind="notice"
        )


async def test_react_edit_delete_and_on_event(bot_harness: BotHarnessFactory) -> None:
    async with bot_harness(Rich) as h:
        ask = await h.say("!thumbs")
        react = await h.next_reply()
        assert (react.kind, react.body, react.target) == ("react", "👍", ask.id)

        await h.say("!work")
        first = await h.next_reply()
        edit = await h.next_reply()
        assert (first.kind, first.body) == ("notice", "working…")
        assert (edit.kind, edit.body, edit.target) == ("edit", "done: 42", first.id)

        await h.say("!oops")
        wrong = await h.next_reply()
        gone = await h.next_reply()
        assert (gone.kind, gone.body, gone.target) == ("delete", "sorry", wrong.id)

        # Kinds the bot asked for reach @on_event; none of them runs a command.
        mine = await h.say("hello")
        await h.user.react(mine, "!thumbs")
        seen = await h.next_reply()
        assert seen.body == f"saw react !thumbs on {mine.id.hex()[:8]}"
        await h.user.edit(mine, "!work")
        seen = await h.next_reply()
        assert seen.body == f"saw edit !work on {mine.id.hex()[:8]}"
        await h.user.set_topic(h.topic, "!oops")
        seen = await h.next_reply()
        assert seen.body == "saw topic !oops on -"
        assert await h.replies(0.5) == []
