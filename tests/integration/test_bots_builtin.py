"""The builtin bots against a real in-process server, through the bot harness
(which is also how a user tests a bot: see docs/bots.md)."""

import copy
import time
from pathlib import Path

from bridgehost.bots.builtin.help import Help
from bridgehost.bots.builtin.ping import Ping
from bridgehost.bots.builtin.seen import Seen
from bridgehost.config import EMBEDDED_DEFAULT, parse_config
from bridgehost.testing import running
from bridgehost.testing.bots import BotHarnessFactory, BotSpec

pytest_plugins = ["bridgehost.testing.fixtures"]


async def test_ping_answers_pong_as_a_notice_reply(bot_harness: BotHarnessFactory) -> None:
    async with bot_harness(Ping) as h:
        asked = await h.say("!ping")
        reply = await h.next_reply()
        assert (reply.body, reply.kind, reply.sender) == ("pong", "notice", "!ping@test.example")
        assert reply.reply_to == asked.id and reply.topic == h.topic


async def test_help_lists_the_commands_of_every_bot_in_the_topic(
    bot_harness: BotHarnessFactory,
) -> None:
    elsewhere = BotSpec(Ping, id="!otherping", topics=("#elsewhere@test.example",), prefix="?")
    async with bot_harness(Ping, Help, Seen, elsewhere) as h:
        lines = (await h.ask("!help")).split("\n")
        assert lines == [
            "!help [COMMAND] — lists the commands of the bots here",
            "!ping — answers pong (is the bot alive?)",
            "!seen NAME — when and where NAME last spoke",
        ]
        assert await h.ask("!help seen") == "!seen NAME — when and where NAME last spoke"
        assert await h.ask("!help nope") == "no command 'nope' here"


async def test_seen_remembers_across_a_restart(bot_harness: BotHarnessFactory) -> None:
    async with bot_harness(Seen) as h:
        bob = await h.client("bob")
        await bob.sub(h.topic)
        await bob.publish(h.topic, "bye for now")
        relay = await h.client("!irc-net")
        await relay.publish(h.topic, "hi from irc", nick="Carol", origin="irc:net/#t")
        assert (await h.ask("!seen alice")) == "alice: that's you!"
        assert await h.ask("!seen nobody") == "I have not seen nobody"
        await h.restart()
        answer = await h.ask("!seen BOB")
        assert answer.startswith(f"bob was last seen in {h.topic} just now (")
        assert answer.endswith(" UTC), saying: bye for now")
        by_id = await h.ask("!seen bob@test.example")
        assert by_id == answer
        carol = await h.ask("!seen carol")
        assert carol.startswith(f"Carol was last seen in {h.topic} (via irc:net/#t) just now")
        stamp = time.strftime("%Y-%m-%d", time.gmtime())
        assert stamp in carol


async def test_the_embedded_default_runs_ping_help_and_seen_in_lobby(tmp_path: Path) -> None:
    raw = copy.deepcopy(EMBEDDED_DEFAULT)
    raw["server"].update(listen=["tcp://127.0.0.1:0"], data_dir=str(tmp_path / "data"))
    async with running(tmp_path, config=parse_config(raw, base=tmp_path)) as srv:
        guest = await srv.client()
        lobby = "#lobby@localhost"
        await guest.sub(lobby)
        await guest.publish(lobby, "!help")
        helped = await guest.next_event(5)
        assert (helped.sender, helped.body.count("\n")) == ("!help@localhost", 2)
        await guest.publish(lobby, "!ping")
        assert (await guest.next_event(5)).body == "pong"
        await guest.publish(lobby, "!seen nobody")
        assert (await guest.next_event(5)).body == "I have not seen nobody"
        states = {s["id"]: s["state"] for s in srv.app.status()["bots"]}
        assert states == {
            "!help@localhost": "connected",
            "!ping@localhost": "connected",
            "!seen@localhost": "connected",
        }
