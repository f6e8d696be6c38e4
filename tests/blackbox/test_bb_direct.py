"""Direct messages and presence on user topics (§5-§6)."""

from __future__ import annotations

import pytest
from bbhelpers import assert_error, channel
from scalar_raw import check_event, event_core

# -- direct messages -------------------------------------------------------------


@pytest.mark.asyncio
async def test_direct_message(srv):
    alice = srv.new_user("alice")
    bob = srv.new_user("bob")
    carol = srv.new_user("carol")
    a = await srv.user_conn(alice)
    b1 = await srv.user_conn(bob)
    await b1.sub(bob[0])
    c = await srv.user_conn(carol)
    await c.sub(bob[0])
    b2 = await srv.user_conn(bob)  # not subscribed to its own id
    echo = await a.request({"t": "msg", "topic": bob[0], "body": "psst", "rid": 21})
    assert echo["t"] == "event" and echo["rid"] == 21, echo
    check_event(echo)
    assert echo["topic"] == bob[0] and echo["from"] == alice[0] and echo["body"] == "psst"
    assert echo["seq"] >= 1
    ev = await b1.recv_event()
    assert "rid" not in ev and event_core(ev) == event_core(echo), (ev, echo)
    await a.expect_quiet(0.3)
    await b1.expect_quiet(0.01)
    await b2.expect_quiet(0.01)
    await c.expect_quiet(0.01)  # others subscribed to bob's id get presence only
    # stored under the recipient's id: bob can catch up, others cannot
    hist = await b2.call({"t": "catchup", "topic": bob[0]}, "history")
    assert hist["status"] == "ok"
    assert [e for e in hist["events"] if e["id"] == echo["id"]], hist
    stored = next(e for e in hist["events"] if e["id"] == echo["id"])
    assert event_core(stored) == event_core(echo), (stored, echo)
    for conn in (a, c):
        reply = await conn.request({"t": "catchup", "topic": bob[0], "rid": 8})
        assert_error(reply, "forbidden", rid=8)
    # not under the sender's id
    hist = await a.call({"t": "catchup", "topic": alice[0]}, "history")
    assert not [e for e in hist["events"] if e["id"] == echo["id"]], hist
    # meta.history: true for the owner, false for others
    assert (await b2.sub(bob[0]))["history"] is True
    assert (await c.sub(bob[0]))["history"] is False
    # a second DM gets the next seq of bob's topic
    echo2 = await a.pub(bob[0], "again")
    assert echo2["seq"] == echo["seq"] + 1
    for conn in (b1, b2):
        ev = await conn.recv_event()
        assert ev["id"] == echo2["id"]


@pytest.mark.asyncio
async def test_direct_message_to_reserved_id(srv):
    bot = await srv.bot_conn()
    await bot.sub(bot.id)
    a = await srv.user_conn()
    echo = await a.pub(bot.id, "!help")
    ev = await bot.recv_event()
    assert event_core(ev) == event_core(echo) and "rid" not in ev
    # and the bot may answer with a direct message
    a_sub = await a.sub(a.id)
    assert a_sub["history"] is True
    reply = await bot.pub(a.id, "answer", kind="notice")
    ev = await a.recv_event()
    assert event_core(ev) == event_core(reply)
    # a user cannot catch up a reserved id's topic
    r = await a.request({"t": "catchup", "topic": bot.id, "rid": 4})
    assert_error(r, "forbidden", rid=4)
    assert (await a.sub(bot.id))["history"] is False


@pytest.mark.asyncio
async def test_dm_to_self_delivered_to_other_connections(srv):
    user = srv.new_user()
    a1 = await srv.user_conn(user)
    a2 = await srv.user_conn(user)
    await a1.sub(user[0])
    await a2.sub(user[0])
    echo = await a1.pub(user[0], "note to self")
    ev = await a2.recv_event()
    assert event_core(ev) == event_core(echo) and "rid" not in ev
    await a1.expect_quiet(0.3)  # exactly one copy: the echo


# -- presence ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_dm_topic_seq_in_meta(srv):
    bob = srv.new_user("bob")
    b = await srv.user_conn(bob)
    meta = await b.sub(bob[0])
    assert meta["seq"] == 0 and meta["history"] is True, meta
    a = await srv.user_conn()
    e1 = await a.pub(bob[0].upper(), "one")
    assert e1["topic"] == bob[0], e1
    e2 = await a.pub(bob[0], "two")
    assert (e1["seq"], e2["seq"]) == (1, 2)
    assert [(await b.recv_event())["seq"] for _ in range(2)] == [1, 2]
    assert (await b.sub(bob[0]))["seq"] == 2
    # a watcher sees the seq too, but not the events
    w = await srv.user_conn()
    m = await w.sub(bob[0])
    assert m["history"] is False


# -- presence ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_presence_online_offline(srv):
    frank = srv.new_user("frank")
    eve = await srv.user_conn()
    meta = await eve.sub(frank[0])
    assert meta["history"] is False, meta
    seq_before = meta["seq"]
    f1 = await srv.user_conn(frank)
    ev = await eve.recv_event(skip_presence=False)
    assert ev["kind"] == "presence" and ev["body"] == "online", ev
    assert ev["topic"] == frank[0] and ev["seq"] == 0, ev
    assert "rid" not in ev
    f2 = await srv.user_conn(frank)
    await eve.expect_quiet(0.3)  # not the first connection
    await f2.close()
    await eve.expect_quiet(0.3)  # not the last connection
    await f1.close()
    ev = await eve.recv_event(skip_presence=False)
    assert ev["kind"] == "presence" and ev["body"] == "offline", ev
    assert ev["topic"] == frank[0] and ev["seq"] == 0, ev
    # presence does not advance the topic's seq and is not stored
    meta = await eve.sub(frank[0])
    assert meta["seq"] == seq_before, meta
    f3 = await srv.user_conn(frank)
    ev = await eve.recv_event(skip_presence=False)
    assert ev["body"] == "online", ev
    hist = await f3.call({"t": "catchup", "topic": frank[0]}, "history")
    assert hist["status"] == "ok"
    assert not [e for e in hist["events"] if e["kind"] == "presence"], hist
    # presence on the topic of a connection that sends bye
    await f3.send({"t": "bye"})
    ev = await eve.recv_event(skip_presence=False)
    assert ev["body"] == "offline", ev


@pytest.mark.asyncio
async def test_presence_not_delivered_to_channel_subscribers(srv):
    a = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    await srv.user_conn()
    await a.expect_quiet(0.3)


@pytest.mark.asyncio
async def test_presence_cannot_be_published_on_user_topic(srv):
    a = await srv.user_conn()
    reply = await a.request(
        {"t": "msg", "topic": a.id, "body": "online", "kind": "presence", "rid": 1}
    )
    assert_error(reply, "forbidden", rid=1)


@pytest.mark.asyncio
async def test_subscribing_to_other_user_gets_presence_only(srv):
    bob = srv.new_user("bob")
    b = await srv.user_conn(bob)
    await b.sub(bob[0])
    watcher = await srv.user_conn()
    await watcher.sub(bob[0])
    sender = await srv.user_conn()
    await sender.pub(bob[0], "private")
    await b.recv_event()
    await watcher.expect_quiet(0.3)


@pytest.mark.asyncio
async def test_guest_presence_and_direct_messages(srv):
    watcher = await srv.user_conn()
    g = await srv.guest_conn()
    meta = await watcher.sub(g.id)
    assert meta["topic"] == g.id and meta["history"] is False, meta
    await g.sub(g.id)
    echo = await watcher.pub(g.id, "hello guest")
    ev = await g.recv_event()
    assert event_core(ev) == event_core(echo) and ev["topic"] == g.id
    hist = await g.call({"t": "catchup", "topic": g.id}, "history")
    assert [e["id"] for e in hist["events"]] == [echo["id"]], hist
    # guests may send direct messages too
    await watcher.sub(watcher.id)
    back = await g.pub(watcher.id, "hi back")
    assert back["from"] == g.id
    ev = await watcher.recv_event()
    assert ev["id"] == back["id"]
    await g.close()
    ev = await watcher.recv_event(skip_presence=False)
    assert ev["kind"] == "presence" and ev["body"] == "offline" and ev["seq"] == 0, ev
    assert ev["topic"] == g.id, ev


@pytest.mark.asyncio
async def test_reserved_id_presence(srv):
    bot = srv.new_bot()
    watcher = await srv.user_conn()
    await watcher.sub(bot[0])
    b = await srv.bot_conn(bot)
    ev = await watcher.recv_event(skip_presence=False)
    assert ev == {**ev, "kind": "presence", "body": "online", "seq": 0, "topic": bot[0]}, ev
    await b.close()
    ev = await watcher.recv_event(skip_presence=False)
    assert ev == {**ev, "kind": "presence", "body": "offline", "seq": 0, "topic": bot[0]}, ev
