"""Rate limits, subscription limit, order of checks, liveness, flow control (§6, §9)."""

from __future__ import annotations

import asyncio
import time

import cbor2
import pytest
from bbhelpers import assert_bye, assert_error, channel

# -- rate limit ----------------------------------------------------------------


async def _existing(srv, ch):
    """Make `ch` exist (a reserved ID subscribed to it): since §10 a `sub` that makes a
    new topic spends a token of the `msg` bucket, and these tests count tokens."""
    bot = await srv.bot_conn()
    await bot.sub(ch)
    return bot


@pytest.mark.asyncio
async def test_rate_limit_retry_after_and_flood(mk):
    srv = mk(rate=1, burst=3)
    t_before = time.monotonic()
    a = await srv.user_conn()
    assert a.ident_reply["limits"]["rate"] == 1 and a.ident_reply["limits"]["burst"] == 3
    ch = channel()
    await _existing(srv, ch)
    await a.sub(ch)
    # the bucket is full when the session opens: `burst` messages pass at once
    for i in range(3):
        assert (await a.pub(ch, f"m{i}"))["seq"] == i + 1
    reply = await a.request({"t": "msg", "topic": ch, "body": "too fast", "rid": 77})
    assert_error(reply, "rate-limited", rid=77)
    ra = reply.get("retry_after")
    assert isinstance(ra, int) and not isinstance(ra, bool), reply
    assert 0 < ra <= 1000, f"retry_after must be the ms until one token (rate 1/s): {reply!r}"
    # a flood never closes the connection, and every request gets exactly one reply
    n = 60
    for i in range(n):
        await a.send({"t": "msg", "topic": ch, "body": f"flood {i}", "rid": 1000 + i})
    got = [await a.recv(timeout=5) for _ in range(n)]
    elapsed = time.monotonic() - t_before
    assert sorted(m.get("rid") for m in got) == list(range(1000, 1000 + n)), got
    assert (await a.request({"t": "ping", "rid": 5000})) == {"t": "pong", "rid": 5000}
    accepted = [m for m in got if m["t"] == "event"]
    limited = [m for m in got if m["t"] == "error"]
    assert all(
        m["code"] == "rate-limited"
        and isinstance(m.get("retry_after"), int)
        and m["retry_after"] > 0
        for m in limited
    ), limited
    # at most the tokens that accrued since the session opened
    assert 3 + len(accepted) <= 3 + int(elapsed * 1), (elapsed, accepted)
    # refused requests consumed no seq
    seqs = [m["seq"] for m in accepted]
    assert seqs == list(range(4, 4 + len(seqs))), seqs
    last_ra = limited[-1]["retry_after"] if limited else ra
    await asyncio.sleep(last_ra / 1000 + 0.1)
    echo = await a.pub(ch, "after waiting")
    assert echo["seq"] == 4 + len(seqs), echo
    hist = await a.call({"t": "catchup", "topic": ch}, "history")
    assert _seqs(hist) == list(range(1, echo["seq"] + 1)), hist


def _seqs(hist):
    return [e["seq"] for e in hist["events"]]


@pytest.mark.asyncio
async def test_rate_limit_refill(mk):
    srv = mk(rate=2, burst=2)
    a = await srv.user_conn()
    ch = channel()
    await _existing(srv, ch)
    await a.sub(ch)
    await a.pub(ch, "1")
    await a.pub(ch, "2")
    reply = await a.request({"t": "msg", "topic": ch, "body": "3", "rid": 1})
    assert_error(reply, "rate-limited", rid=1)
    assert 0 < reply["retry_after"] <= 500, reply
    await asyncio.sleep(reply["retry_after"] / 1000 + 0.05)
    await a.pub(ch, "3")
    # the bucket never holds more than `burst`
    await asyncio.sleep(1.2)
    await a.pub(ch, "4")
    await a.pub(ch, "5")
    reply = await a.request({"t": "msg", "topic": ch, "body": "6", "rid": 2})
    assert_error(reply, "rate-limited", rid=2)


@pytest.mark.asyncio
async def test_rate_limit_refused_requests_spend_no_token(mk):
    srv = mk(rate=1, burst=3)
    a = await srv.user_conn()
    ch = channel()
    await _existing(srv, ch)
    for i in range(5):  # not subscribed yet: forbidden, no token spent
        reply = await a.request({"t": "msg", "topic": ch, "body": "x", "rid": i + 1})
        assert_error(reply, "forbidden", rid=i + 1)
    await a.sub(ch)
    for i in range(3):  # bad kind, nick: refused before rate
        reply = await a.request(
            {"t": "msg", "topic": ch, "body": "x", "kind": "loud", "rid": 10 + i}
        )
        assert_error(reply, "bad-message", rid=10 + i)
        reply = await a.request({"t": "msg", "topic": ch, "body": "x", "nick": "n", "rid": 20 + i})
        assert_error(reply, "forbidden", rid=20 + i)
    for i in range(3):
        echo = await a.pub(ch, f"m{i}")
        assert echo["seq"] == i + 1
    reply = await a.request({"t": "msg", "topic": ch, "body": "x", "rid": 30})
    assert_error(reply, "rate-limited", rid=30)


@pytest.mark.asyncio
async def test_rate_limit_only_on_msg_per_connection_reserved_exempt(mk):
    srv = mk(rate=1, burst=3)
    user = srv.new_user()
    a = await srv.user_conn(user)
    ch = channel()
    await _existing(srv, ch)
    await a.sub(ch)
    for i in range(3):
        await a.pub(ch, f"m{i}")
    reply = await a.request({"t": "msg", "topic": ch, "body": "x", "rid": 1})
    assert_error(reply, "rate-limited", rid=1)
    # other requests are not limited
    for _ in range(25):
        await a.call({"t": "ping"}, "pong")
        await a.call({"t": "sub", "topic": ch}, "meta")
        await a.call({"t": "catchup", "topic": ch, "limit": 1}, "history")
        await a.call({"t": "topics", "limit": 1}, "topics")
    # the bucket is per connection: another connection of the same user is full
    a2 = await srv.user_conn(user)
    await a2.sub(ch)
    for i in range(3):
        await a2.pub(ch, f"n{i}")
    # reserved ids are exempt
    bot = await srv.bot_conn()
    for i in range(15):
        assert (await bot.pub(ch, f"b{i}"))["seq"] == 7 + i


@pytest.mark.asyncio
async def test_check_order_size_and_permission_before_rate(mk):
    srv = mk(rate=1, burst=1)
    a = await srv.user_conn()
    ch = channel()
    await _existing(srv, ch)
    await a.sub(ch)
    await a.pub(ch, "uses the only token")
    # empty bucket now
    big = {"t": "msg", "topic": ch, "body": "x" * 16300, "rid": 2}
    assert len(cbor2.dumps(big)) <= 16382
    assert_error(await a.request(big), "too-large", rid=2)
    other = channel()
    assert_error(
        await a.request({"t": "msg", "topic": other, "body": "x", "rid": 3}), "forbidden", rid=3
    )
    assert_error(
        await a.request({"t": "msg", "topic": "#x@other.example", "body": "x", "rid": 4}),
        "no-such-topic",
        rid=4,
    )
    assert_error(
        await a.request({"t": "msg", "topic": "#bad topic@x", "body": "x", "rid": 5}),
        "bad-topic",
        rid=5,
    )
    assert_error(
        await a.request({"t": "msg", "topic": ch, "body": 1, "rid": 6}), "bad-message", rid=6
    )
    assert_error(
        await a.request({"t": "msg", "topic": ch, "body": "x", "rid": 7}), "rate-limited", rid=7
    )


@pytest.mark.asyncio
async def test_check_order_misc(srv):
    a = await srv.user_conn()
    ch = channel()
    # fields before domain: malformed wins over other domain
    assert_error(
        await a.request({"t": "sub", "topic": "#a b@other.example", "rid": 1}), "bad-topic", rid=1
    )
    # domain before permission: unsubscribed + other domain
    assert_error(
        await a.request({"t": "msg", "topic": "#x@other.example", "body": "x", "rid": 2}),
        "no-such-topic",
        rid=2,
    )
    assert_error(
        await a.request(
            {"t": "msg", "topic": "#x@other.example", "body": "x", "kind": "presence", "rid": 3}
        ),
        "no-such-topic",
        rid=3,
    )
    # fields before permission: bad kind on an unsubscribed channel
    assert_error(
        await a.request({"t": "msg", "topic": ch, "body": "x", "kind": "yell", "rid": 4}),
        "bad-message",
        rid=4,
    )
    assert_error(
        await a.request({"t": "msg", "topic": ch, "body": "x", "reply_to": b"short", "rid": 5}),
        "bad-message",
        rid=5,
    )
    # permission before size: unsubscribed and too large
    assert_error(
        await a.request({"t": "msg", "topic": ch, "body": "x" * 16300, "rid": 6}),
        "forbidden",
        rid=6,
    )
    # unknown type before field checks
    assert_error(await a.request({"t": "frob", "topic": 5, "rid": 7}), "unknown-type", rid=7)
    # decode before unknown type
    await a.send_body(cbor2.dumps({"t": "frob", "rid": 8}) + b"\x01")
    reply = await a.recv()
    assert reply["t"] == "error" and reply["code"] == "bad-message", reply


# -- subscription limit -------------------------------------------------------------


@pytest.mark.asyncio
async def test_subs_limit(mk):
    srv = mk(subs=3)
    a = await srv.user_conn()
    b = await srv.user_conn()
    assert a.ident_reply["limits"]["subs"] == 3
    chans = [channel() for _ in range(5)]
    await a.sub(chans[0])
    await a.sub(chans[1])
    await a.sub(a.id)  # user topics count as subscriptions too
    assert_error(await a.request({"t": "sub", "topic": chans[2], "rid": 9}), "forbidden", rid=9)
    # the refused sub changed nothing
    assert (await b.sub(chans[2]))["subscribers"] == 1
    assert_error(
        await a.request({"t": "msg", "topic": chans[2], "body": "x", "rid": 10}),
        "forbidden",
        rid=10,
    )
    # re-subscribing an existing one is fine
    assert (await a.sub(chans[0]))["subscribers"] == 1
    await a.call({"t": "unsub", "topic": chans[1]}, "ok")
    await a.sub(chans[3])
    assert_error(await a.request({"t": "sub", "topic": chans[4], "rid": 11}), "forbidden", rid=11)
    await a.call({"t": "unsub", "topic": "*"}, "ok")
    for ch in chans[2:]:
        await a.sub(ch)
    # the limit is per connection
    for ch in chans[:3]:
        await b.sub(ch)


# -- liveness ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_server_pings_idle_client_and_pong_keeps_it(mk):
    srv = mk(ping=0.5, pong=0.6)
    a = await srv.user_conn()
    t_last = time.monotonic()
    for _round in range(3):
        ping = await a.recv(timeout=5)
        waited = time.monotonic() - t_last
        assert ping["t"] == "ping", ping
        assert waited >= 0.35, f"server pinged after {waited:.2f}s idle (ping timeout 0.5 s)"
        if "time" in ping:
            assert isinstance(ping["time"], int), ping
        pong = {"t": "pong"}
        if "time" in ping:
            pong["time"] = ping["time"]
        if "rid" in ping:
            pong["rid"] = ping["rid"]
        await a.send(pong)
        t_last = time.monotonic()
    reply = await a.request({"t": "ping", "time": 1, "rid": 2})
    assert reply == {"t": "pong", "time": 1, "rid": 2}


@pytest.mark.asyncio
async def test_server_closes_unresponsive_client(mk):
    srv = mk(ping=0.5, pong=0.5)
    a = await srv.user_conn()
    t0 = time.monotonic()
    frames = await a.expect_close(timeout=6)
    elapsed = time.monotonic() - t0
    assert frames and frames[0]["t"] == "ping", frames
    assert all(f["t"] in ("ping", "bye") for f in frames), frames
    assert elapsed >= 0.8, f"closed after {elapsed:.2f}s, before ping+pong timeouts"
    # a healthy client on the same server is unaffected
    b = await srv.user_conn()
    await b.send({"t": "ping", "rid": 1})
    assert await b.recv() == {"t": "pong", "rid": 1}


@pytest.mark.asyncio
async def test_any_frame_counts_as_activity(mk):
    srv = mk(ping=1.0, pong=1.0)
    a = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    deadline = time.monotonic() + 3.0
    i = 0
    while time.monotonic() < deadline:
        i += 1
        # alternate request types: any frame counts
        if i % 2:
            await a.send({"t": "ping", "rid": i})
            assert await a.recv(timeout=2) == {"t": "pong", "rid": i}
        else:
            await a.send({"t": "sub", "topic": ch, "rid": i})
            m = await a.recv(timeout=2)
            assert m["t"] == "meta" and m["rid"] == i, m
        await asyncio.sleep(0.2)


@pytest.mark.asyncio
async def test_server_ping_before_ident_answered_is_fine(mk):
    srv = mk(ping=0.4, pong=0.4, ident=5)
    a = await srv.connect()
    # Before ident the ident timeout governs; a client that answers pings and then
    # identifies must not be cut off.
    await asyncio.sleep(0.2)
    await a.login()
    ping = await a.recv(timeout=3)
    assert ping["t"] == "ping", ping
    await a.send(
        {
            "t": "pong",
            **({"time": ping["time"]} if "time" in ping else {}),
            **({"rid": ping["rid"]} if "rid" in ping else {}),
        }
    )
    await asyncio.sleep(0.2)
    reply = await a.request({"t": "ping", "rid": 9})
    assert reply == {"t": "pong", "rid": 9}


@pytest.mark.asyncio
async def test_any_frame_answers_a_server_ping(mk):
    srv = mk(ping=0.5, pong=0.7)
    a = await srv.user_conn()
    ch = channel()
    ping = await a.recv(timeout=5)
    assert ping["t"] == "ping", ping
    # not a pong: a request also counts as a frame received
    reply = await a.request({"t": "sub", "topic": ch})
    assert reply["t"] == "meta", reply
    t0 = time.monotonic()
    nxt = await a.recv(timeout=5)
    assert nxt["t"] == "ping", f"expected the next idle ping, got {nxt!r}"
    assert time.monotonic() - t0 >= 0.35
    await a.send({"t": "pong", **({"time": nxt["time"]} if "time" in nxt else {})})
    await asyncio.sleep(0.3)
    assert (await a.request({"t": "ping", "rid": 3})) == {"t": "pong", "rid": 3}


# -- flow control ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_slow_consumer_disconnected_others_unaffected(mk):
    srv = mk(send_buffer=65536)
    ch = channel("slow")
    slow = await srv.connect(rcvbuf=4096, limit=4096)
    await slow.login()
    await slow.sub(ch)
    fast = await srv.user_conn()
    await fast.sub(ch)
    monitor = await srv.user_conn()
    bot = await srv.bot_conn()
    slow.pause()  # never reads again (until the end)

    received: list[int] = []

    async def read_fast():
        while True:
            ev = await fast.recv(timeout=30)
            assert ev["t"] == "event", ev
            received.append(ev["seq"])

    reader = asyncio.get_running_loop().create_task(read_fast())
    body = "s" * 8000
    sent = 0
    disconnected = False
    t0 = time.monotonic()
    try:
        for _batch in range(200):  # at most 200 * 25 * 8 KB = 40 MB
            for _ in range(25):
                sent += 1
                await bot.send({"t": "msg", "topic": ch, "body": body, "rid": sent})
            for _ in range(25):
                echo = await bot.recv(timeout=10)
                assert echo["t"] == "event" and "rid" in echo, echo
            # the fast subscriber keeps up promptly while the slow one is stuck
            deadline = time.monotonic() + 5
            while len(received) < sent:
                assert not reader.done(), reader
                assert time.monotonic() < deadline, (
                    f"fast subscriber stalled: {len(received)} of {sent} events"
                )
                await asyncio.sleep(0.01)
            t = await monitor.call({"t": "topics", "prefix": ch.split("@")[0]}, "topics")
            subs = t["items"][0]["subscribers"]
            if subs == 1:
                disconnected = True
                break
            assert subs == 2, t
        assert disconnected, (
            f"a subscriber that never reads was not disconnected after {sent} events "
            f"of 8 KB with send_buffer 64 KiB"
        )
        # a few more events still reach the fast subscriber
        for _ in range(10):
            sent += 1
            await bot.send({"t": "msg", "topic": ch, "body": "after", "rid": sent})
            assert (await bot.recv(timeout=5))["t"] == "event"
        deadline = time.monotonic() + 5
        while len(received) < sent:
            assert time.monotonic() < deadline, "fast subscriber lost events"
            await asyncio.sleep(0.01)
        assert received == list(range(1, sent + 1)), "fast subscriber missed or reordered"
        assert time.monotonic() - t0 < 60
    finally:
        reader.cancel()
    # the slow connection was closed by the server, with bye{slow-consumer} if anything
    slow.resume()
    frames = await slow.expect_close(timeout=20, allow_truncated=True)
    byes = [f for f in frames if f["t"] == "bye"]
    assert all(f["t"] in ("event", "bye") for f in frames), [f["t"] for f in frames]
    if byes:
        assert len(byes) == 1 and frames[-1] is byes[0], "bye must be the last frame"
        assert_bye(byes[0], "slow-consumer")
    seqs = [f["seq"] for f in frames if f["t"] == "event"]
    assert seqs == list(range(1, len(seqs) + 1)), "slow consumer got a non-contiguous stream"
    assert len(seqs) < sent


@pytest.mark.asyncio
async def test_many_fast_subscribers_all_receive(srv):
    ch = channel()
    subs = [await srv.guest_conn() for _ in range(8)]
    for s in subs:
        await s.sub(ch)
    bot = await srv.bot_conn()
    echoes = [await bot.pub(ch, f"x{i}") for i in range(30)]
    for s in subs:
        got = [await s.recv_event() for _ in range(30)]
        assert [e["id"] for e in got] == [e["id"] for e in echoes]
        await s.expect_quiet(0.01)
