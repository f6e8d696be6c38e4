"""bridgehost.testing: the in-process server helpers users build their tests on."""

from pathlib import Path

from bridgehost.testing import running


async def test_running_server_publish_and_deliver(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        alice = await srv.client("alice")
        bob = await srv.client("bob")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        await bob.sub(lobby)
        event = await alice.publish(lobby, "hi")
        assert (event.seq, event.sender, event.body) == (1, "alice@test.example", "hi")
        got = await bob.next_event(5)
        assert got == event


async def test_reserved_and_guest_clients(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        bot = await srv.client("!bot")
        guest = await srv.client()
        assert bot.id == "!bot@test.example"
        assert guest.id.startswith("guest-")
        event = await bot.publish(srv.channel("x"), "relayed", nick="someone", origin="irc:a/#x")
        assert (event.nick, event.origin) == ("someone", "irc:a/#x")
