"""The session state machine in memory (FakeConn, MemoryJournal, FakeClock): order of
checks, rate limit, ident failures, liveness and the §11 rules, with no sockets."""

from typing import Any

import pytest

from bridgehost.scalar.session import Phase
from bridgehost.scalar.settings import Limits, ServerSettings, Timeouts
from bridgehost.testing.sessions import FakeConn, World, session_world

ALICE, BOB, BOT = "alice@test.example", "bob@test.example", "!bot@test.example"
LOBBY = "#lobby@test.example"
USERS = {ALICE: "pw-a", BOB: "pw-b", BOT: "tok"}


def _settings(**limits: Any) -> ServerSettings:
    return ServerSettings(
        domain="test.example",
        guests=True,
        limits=Limits(**limits),
        timeouts=Timeouts(ident=10, ping=60, pong=30),
    )


async def _call(conn: FakeConn, rid: int, **request: Any) -> dict[str, Any]:
    await conn.send({**request, "rid": rid})
    return conn.reply(rid)


def _code(frame: dict[str, Any]) -> str:
    assert frame["t"] == "error", frame
    return str(frame["code"])


async def test_before_ident_only_ident_ping_pong_bye() -> None:
    async with session_world(credentials=USERS) as world:
        conn = world.connect()
        assert _code(await _call(conn, 1, t="sub", topic=LOBBY)) == "not-authenticated"
        assert _code(await _call(conn, 2, t="nope")) == "unknown-type"  # type before state
        assert (await _call(conn, 3, t="ping", time=5)) == {"t": "pong", "rid": 3, "time": 5}
        assert conn.session.phase is Phase.IDENT
        await conn.send({"t": "bye"})
        assert conn.closed and conn.session.closing


async def test_order_of_checks_for_msg() -> None:
    async with session_world(_settings(rate=1, burst=1), credentials=USERS) as world:
        alice = await world.login(ALICE)
        await _call(alice, 1, t="sub", topic=LOBBY)  # made the topic: spent the one token
        world.clock.advance(1)
        cases = [
            ({"topic": LOBBY, "body": 5}, "bad-message"),  # fields
            ({"topic": "not a topic", "body": "x"}, "bad-topic"),  # identifier syntax
            ({"topic": "#x@other.example", "body": "x"}, "no-such-topic"),  # domain
            ({"topic": "#x@other.example", "body": "x", "nick": "n"}, "no-such-topic"),
            ({"topic": LOBBY, "body": "x", "nick": "n"}, "forbidden"),  # permission
            ({"topic": "#other@test.example", "body": "x"}, "forbidden"),  # not subscribed
            ({"topic": LOBBY, "body": "x" * 16300}, "too-large"),  # size before rate
        ]
        for i, (fields, code) in enumerate(cases):
            assert _code(await _call(alice, 10 + i, t="msg", **fields)) == code, fields
        await alice.send({"t": "msg", "topic": LOBBY, "body": "the one token", "rid": 20})
        await world.settled()  # the echo comes once the event is committed
        assert alice.reply(20)["seq"] == 1
        assert (await _call(alice, 21, t="msg", topic=LOBBY, body="x"))["code"] == "rate-limited"
        # Nothing refused used a seq: the one accepted event is seq 1.
        meta = await _call(alice, 22, t="sub", topic=LOBBY)
        assert meta["seq"] == 1


async def test_rate_limit_with_a_fake_clock() -> None:
    async with session_world(_settings(rate=2, burst=3), credentials=USERS) as world:
        bot = await world.login(BOT)
        await _call(bot, 1, t="sub", topic=LOBBY)  # reserved IDs are exempt from the bucket
        alice = await world.login(ALICE)
        await _call(alice, 2, t="sub", topic=LOBBY)  # an existing topic costs nothing
        for i in range(3):
            await alice.send({"t": "msg", "topic": LOBBY, "body": f"m{i}", "rid": 10 + i})
        limited = await _call(alice, 20, t="msg", topic=LOBBY, body="too fast")
        assert _code(limited) == "rate-limited" and limited["retry_after"] == 500
        world.clock.advance(0.5)  # one token back at 2 per second
        await alice.send({"t": "msg", "topic": LOBBY, "body": "later", "rid": 21})
        await world.settled()
        assert alice.reply(21)["t"] == "event"
        for i in range(30):
            await bot.send({"t": "msg", "topic": LOBBY, "body": f"b{i}", "rid": 100 + i})
        await world.settled()
        assert all(bot.reply(100 + i)["t"] == "event" for i in range(30))
        assert world.shared.counters.rate_limited == 1


async def test_ident_failures_say_bye() -> None:
    async with session_world(_settings(auth_failures=2), credentials=USERS) as world:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"v": 2, "id": ALICE}, "unsupported"),
            ({"v": 1, "id": "not an id"}, "bad-topic"),
            ({"v": 1, "id": ALICE, "auth": {"method": "password", "secret": "no"}}, "auth-failed"),
            ({"v": 1, "id": "#lobby@test.example"}, "auth-failed"),
            (
                {"v": 1, "id": ALICE, "auth": {"method": "password", "secret": "pw-a"}},
                "rate-limited",
            ),  # the allowance of 2 is spent, however right this one is
        ]
        for i, (fields, code) in enumerate(cases):
            conn = world.connect("198.51.100.9")
            reply = await _call(conn, i, t="ident", **fields)
            assert _code(reply) == code, fields
            assert conn.take() == [{"t": "bye", "reason": code}] and conn.closed
        assert world.credentials.checks == 1  # the rate-limited one was never checked
        world.clock.advance(2)  # the window passed: the right secret gets in
        await world.login(ALICE, remote="198.51.100.9")
        other = await world.login(ALICE, remote="198.51.100.10")
        assert _code(await _call(other, 9, t="ident", v=1)) == "forbidden"  # second ident
        assert other.session.open  # the session is kept


async def test_preauthenticated_session() -> None:
    async with session_world(credentials=USERS) as world:
        conn = world.connect()
        conn.session.preauth = "!plugin@test.example"
        assert _code(await _call(conn, 1, t="ident", v=1, id=BOT)) == "auth-failed"
        conn = world.connect()
        conn.session.preauth = "!plugin@test.example"
        welcome = await _call(conn, 1, t="ident", v=1, id="!Plugin@test.example")
        assert welcome["id"] == "!plugin@test.example" and conn.session.reserved


async def test_liveness_with_a_fake_clock() -> None:
    async with session_world(credentials=USERS) as world:
        silent = world.connect()
        world.clock.advance(9.9)
        silent.session.tick(world.clock.monotonic())
        assert not silent.closed
        world.clock.advance(0.1)
        silent.session.tick(world.clock.monotonic())
        assert silent.take() == [{"t": "bye", "reason": "timeout"}]
        alice = await world.login(ALICE)
        world.clock.advance(60)
        alice.session.tick(world.clock.monotonic())
        (ping,) = alice.take()
        assert ping["t"] == "ping" and ping["time"] == world.clock.now_ms()
        await alice.send({"t": "pong", "time": ping["time"]})  # any frame counts
        world.clock.advance(59)
        alice.session.tick(world.clock.monotonic())
        assert alice.take() == []
        world.clock.advance(1)
        alice.session.tick(world.clock.monotonic())
        assert alice.take()[0]["t"] == "ping"
        world.clock.advance(30)
        alice.session.tick(world.clock.monotonic())
        assert alice.take() == [{"t": "bye", "reason": "timeout"}] and alice.closed


async def _world_with_event(world: World) -> tuple[FakeConn, FakeConn, bytes]:
    alice, bob = await world.login(ALICE), await world.login(BOB)
    for conn in (alice, bob):
        await _call(conn, 1, t="sub", topic=LOBBY)
    await alice.send({"t": "msg", "topic": LOBBY, "body": "helo", "rid": 2})
    await world.settled()
    first = alice.reply(2)
    bob.take()
    return alice, bob, first["id"]


async def test_rich_event_rules() -> None:
    async with session_world(_settings(rate=100, burst=100), credentials=USERS) as world:
        alice, bob, first = await _world_with_event(world)
        edit = {"t": "msg", "topic": LOBBY, "kind": "edit", "body": "hello", "target": first}
        assert _code(await _call(bob, 3, **edit)) == "forbidden"  # not his
        assert _code(await _call(alice, 4, **{**edit, "target": b"\x00" * 32})) == ("no-such-topic")
        await _call(alice, 5, t="sub", topic="#other@test.example")
        assert _code(await _call(alice, 6, **{**edit, "topic": "#other@test.example"})) == (
            "no-such-topic"
        )  # the target is in another topic
        assert _code(await _call(alice, 7, t="msg", topic=LOBBY, kind="join", nick="x")) == (
            "forbidden"
        )  # join and part are for reserved IDs
        await alice.send({**edit, "rid": 8})
        await bob.send(
            {"t": "msg", "topic": LOBBY, "kind": "react", "body": "+1", "target": first, "rid": 9}
        )
        await world.settled()
        edited, react = alice.reply(8), bob.reply(9)
        assert (edited["kind"], edited["target"]) == ("edit", first)
        assert (react["kind"], react["target"]) == ("react", first)
        assert _code(await _call(alice, 10, t="msg", topic=ALICE, kind="topic", body="t")) == (
            "forbidden"
        )  # only channels have a title
        assert (
            _code(
                await _call(
                    alice, 11, t="msg", topic=LOBBY, kind="edit", body="x", target=react["id"]
                )
            )
            == "forbidden"
        )  # bob's reaction
        assert (
            _code(
                await _call(
                    alice, 12, t="msg", topic=LOBBY, kind="edit", body="x", target=edited["id"]
                )
            )
            == "forbidden"
        )  # an edit is no text
        await bob.send(
            {"t": "msg", "topic": LOBBY, "kind": "delete", "target": react["id"], "rid": 13}
        )
        await world.settled()
        assert bob.reply(13)["kind"] == "delete"  # withdrawing his own reaction


async def test_a_repeated_nonce_is_answered_with_the_first_event() -> None:
    async with session_world(credentials=USERS) as world:
        alice, bob, _ = await _world_with_event(world)
        msg = {"t": "msg", "topic": LOBBY, "body": "once", "nonce": "n1"}
        await alice.send({**msg, "rid": 10})
        await world.settled()
        first = alice.reply(10)
        again = await _call(alice, 11, **msg)
        assert again == {**first, "rid": 11}
        assert [f["body"] for f in bob.take()] == ["once"]  # published once


@pytest.mark.parametrize("guests", [True, False])
async def test_guests(guests: bool) -> None:
    settings = ServerSettings(domain="test.example", guests=guests)
    async with session_world(settings, credentials=USERS) as world:
        conn = world.connect()
        reply = await _call(conn, 1, t="ident", v=1)
        if guests:
            assert reply["id"].startswith("guest-") and conn.session.guest
            forbidden = await _call(conn, 2, t="msg", topic=LOBBY, body="x", origin="o")
            assert _code(forbidden) == "forbidden"
        else:
            assert _code(reply) == "auth-failed"
