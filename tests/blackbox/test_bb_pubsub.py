"""sub/unsub/meta, msg/event, topic syntax, subscription lifecycle (§3-§4, §9).

Direct messages and presence are in test_bb_direct.py."""

from __future__ import annotations

import asyncio
import hashlib

import cbor2
import pytest
import scalar_raw
from bbhelpers import DOMAIN, assert_error, channel, uniq
from scalar_raw import check_event, compute_event_id, event_core

# -- sub / unsub / meta --------------------------------------------------------


@pytest.mark.asyncio
async def test_sub_meta_fields(srv):
    a = await srv.user_conn()
    ch = channel()
    meta = await a.call({"t": "sub", "topic": ch, "rid": 7}, "meta")
    assert meta["rid"] == 7
    assert meta["topic"] == ch
    assert meta["seq"] == 0
    assert meta["subscribers"] == 1
    assert meta["history"] is True
    assert set(meta) <= {"t", "rid", "topic", "seq", "subscribers", "history", "title"}, meta
    if "title" in meta:
        assert isinstance(meta["title"], str)


@pytest.mark.asyncio
async def test_sub_twice_and_subscriber_count(srv):
    a = await srv.user_conn()
    b = await srv.user_conn()
    ch = channel()
    assert (await a.sub(ch))["subscribers"] == 1
    assert (await b.sub(ch))["subscribers"] == 2
    # sub twice: a second meta, nothing else changes
    again = await a.sub(ch)
    assert again["subscribers"] == 2 and again["seq"] == 0, again
    await a.expect_quiet(0.2)
    echo = await b.pub(ch, "one")
    ev = await a.recv_event()
    assert ev["seq"] == echo["seq"] == 1
    await a.expect_quiet(0.3)  # still exactly one copy after a double sub
    meta = await a.sub(ch)
    assert meta["seq"] == 1 and meta["subscribers"] == 2, meta
    # unsub counts down
    ok = await a.call({"t": "unsub", "topic": ch, "rid": 8}, "ok")
    assert ok["rid"] == 8
    c = await srv.user_conn()
    assert (await c.sub(ch))["subscribers"] == 2  # b and c


@pytest.mark.asyncio
async def test_sub_case_insensitive_topic(srv):
    a = await srv.user_conn()
    name = uniq("MiXeD")
    meta = await a.sub(f"#{name}@TEST.Example")
    topic = f"#{name.lower()}@{DOMAIN}"
    assert meta["topic"] == topic, meta
    echo = await a.pub(f"#{name.upper()}@test.EXAMPLE", "x")
    assert echo["topic"] == topic, echo


@pytest.mark.asyncio
async def test_unsub_not_subscribed_is_ok(srv):
    a = await srv.guest_conn()
    reply = await a.call({"t": "unsub", "topic": channel(), "rid": 3}, "ok")
    assert reply["rid"] == 3
    reply = await a.call({"t": "unsub", "topic": "*", "rid": 4}, "ok")
    assert reply["rid"] == 4


@pytest.mark.asyncio
async def test_unsub_then_no_delivery_and_publish_forbidden(srv):
    a = await srv.user_conn()
    b = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    await b.sub(ch)
    await a.call({"t": "unsub", "topic": ch}, "ok")
    await b.pub(ch, "after unsub")
    await a.expect_quiet(0.3)
    reply = await a.request({"t": "msg", "topic": ch, "body": "x", "rid": 5})
    assert_error(reply, "forbidden", rid=5)


@pytest.mark.asyncio
async def test_unsub_star(srv):
    user = srv.new_user()
    a = await srv.user_conn(user)
    b = await srv.user_conn()
    ch1, ch2 = channel(), channel()
    await a.sub(ch1)
    await a.sub(ch2)
    await a.sub(user[0])
    await b.sub(ch1)
    await b.sub(ch2)
    await a.call({"t": "unsub", "topic": "*"}, "ok")
    await b.pub(ch1, "x")
    await b.pub(ch2, "y")
    await b.pub(user[0], "dm")  # direct message: a no longer subscribed to its own id
    await a.expect_quiet(0.4)
    for ch in (ch1, ch2):
        reply = await a.request({"t": "msg", "topic": ch, "body": "x", "rid": 9})
        assert_error(reply, "forbidden", rid=9)
        assert (await b.sub(ch))["subscribers"] == 1


# -- msg / event ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_echo_and_fanout(srv):
    alice = srv.new_user("alice")
    a1 = await srv.user_conn(alice)
    a2 = await srv.user_conn(alice)
    b = await srv.user_conn()
    unsubbed = await srv.user_conn()
    ch = channel()
    for c in (a1, a2, b):
        await c.sub(ch)
    before = scalar_raw.now_ms()
    echo = await a1.request({"t": "msg", "topic": ch, "body": "hello", "rid": 1234})
    after = scalar_raw.now_ms()
    assert echo["t"] == "event" and echo["rid"] == 1234, echo
    check_event(echo)
    assert set(echo) == {"t", "rid", "id", "topic", "seq", "from", "time", "kind", "body"}, echo
    assert echo["topic"] == ch and echo["seq"] == 1 and echo["from"] == alice[0]
    assert echo["kind"] == "text" and echo["body"] == "hello"
    assert before - 2000 <= echo["time"] <= after + 2000, (before, echo["time"], after)
    for other in (a2, b):
        ev = await other.recv_event()
        assert "rid" not in ev, f"fan-out copies never carry a rid: {ev!r}"
        assert ev["t"] == "event"
        assert event_core(ev) == event_core(echo) and ev["id"] == echo["id"], (ev, echo)
    # exactly one copy each
    await a1.expect_quiet(0.3)
    await a2.expect_quiet(0.01)
    await b.expect_quiet(0.01)
    await unsubbed.expect_quiet(0.01)


@pytest.mark.asyncio
async def test_seq_strictly_increasing_from_one(srv):
    a = await srv.user_conn()
    b = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    await b.sub(ch)
    seqs = []
    for i in range(6):
        pub = a if i % 2 == 0 else b
        seqs.append((await pub.pub(ch, f"m{i}"))["seq"])
    assert seqs == [1, 2, 3, 4, 5, 6], seqs
    # the other channel has its own sequence
    ch2 = channel()
    await a.sub(ch2)
    assert (await a.pub(ch2, "x"))["seq"] == 1
    # receivers see them in order
    got = [(await b.recv_event())["seq"] for _ in range(3)]
    assert got == [1, 3, 5], got


@pytest.mark.asyncio
async def test_event_optional_fields(srv):
    a = await srv.user_conn()
    b = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    await b.sub(ch)
    first = await a.pub(ch, "plain")
    md = await a.pub(ch, "**bold**", ctype="text/markdown")
    assert md["ctype"] == "text/markdown", md
    plain = await a.pub(ch, "explicit plain", ctype="text/plain")
    assert "ctype" not in plain, f"ctype text/plain must be omitted: {plain!r}"
    rep = await a.pub(ch, "a reply", reply_to=first["id"])
    assert rep["reply_to"] == first["id"], rep
    act = await a.pub(ch, "waves", kind="action")
    assert act["kind"] == "action"
    note = await a.pub(ch, "automated", kind="notice")
    assert note["kind"] == "notice"
    txt = await a.pub(ch, "explicit text", kind="text")
    assert txt["kind"] == "text"
    for ev in (first, md, plain, rep, act, note, txt):
        check_event(ev)
        assert not ({"nick", "origin"} & set(ev)), ev
        fan = await b.recv_event()
        assert event_core(fan) == event_core(ev), (fan, ev)


@pytest.mark.asyncio
async def test_event_id_is_hash_of_deterministic_cbor(srv):
    a = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    body = "ünïcødé ✓ " + "x" * 300
    echo = await a.pub(ch, body, ctype="text/markdown", kind="notice")
    core = event_core(echo)
    assert echo["id"] == compute_event_id(echo)
    # also spelled out without cbor2's canonical mode: sort keys by (len, bytes)
    keys = sorted(core, key=lambda k: (len(k.encode()), k.encode()))
    enc = bytes([0xA0 + len(keys)])
    for k in keys:
        enc += cbor2.dumps(k) + cbor2.dumps(core[k])
    assert echo["id"] == hashlib.sha256(enc).digest()
    # and the fan-out / stored copies carry the same id
    hist = await a.call({"t": "catchup", "topic": ch}, "history")
    assert [e["id"] for e in hist["events"]] == [echo["id"]], hist


@pytest.mark.asyncio
async def test_nick_and_origin_forbidden_for_users(srv):
    a = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    for extra in (
        {"nick": "someone"},
        {"origin": "irc:libera/#python"},
        {"nick": "x", "origin": "y"},
    ):
        reply = await a.request({"t": "msg", "topic": ch, "body": "x", "rid": 6, **extra})
        assert_error(reply, "forbidden", rid=6)
    # refused requests consume no seq
    assert (await a.pub(ch, "ok"))["seq"] == 1


@pytest.mark.asyncio
async def test_reserved_id_may_set_nick_origin_and_publish_unsubscribed(srv):
    bot = await srv.bot_conn()
    user = await srv.user_conn()
    ch = channel()
    await user.sub(ch)
    echo = await bot.pub(ch, "relayed", nick="Ünïcode Nick", origin="irc:libera/#python")
    assert echo["from"] == bot.id and echo["nick"] == "Ünïcode Nick", echo
    assert echo["origin"] == "irc:libera/#python", echo
    ev = await user.recv_event()
    assert event_core(ev) == event_core(echo)
    # reserved ids are exempt from the subscription requirement
    assert (await bot.pub(ch, "again"))["seq"] == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("who", ["user", "bot"])
async def test_presence_kind_forbidden(srv, who):
    c = await (srv.user_conn() if who == "user" else srv.bot_conn())
    ch = channel()
    await c.sub(ch)
    reply = await c.request(
        {"t": "msg", "topic": ch, "body": "online", "kind": "presence", "rid": 2}
    )
    assert_error(reply, "forbidden", rid=2)
    assert (await c.pub(ch, "x"))["seq"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["shout", "TEXT", "", "Action"])
async def test_bad_kind_is_bad_message(srv, kind):
    a = await srv.guest_conn()
    ch = channel()
    await a.sub(ch)
    reply = await a.request({"t": "msg", "topic": ch, "body": "x", "kind": kind, "rid": 2})
    assert_error(reply, "bad-message", rid=2)
    assert (await a.pub(ch, "x"))["seq"] == 1


@pytest.mark.asyncio
async def test_publish_unsubscribed_forbidden(srv):
    a = await srv.user_conn()
    b = await srv.user_conn()
    ch = channel()
    await b.sub(ch)
    reply = await a.request({"t": "msg", "topic": ch, "body": "x", "rid": 3})
    assert_error(reply, "forbidden", rid=3)
    await b.expect_quiet(0.3)
    # a subscription of another connection of the same user does not count
    user = srv.new_user()
    u1 = await srv.user_conn(user)
    u2 = await srv.user_conn(user)
    await u1.sub(ch)
    reply = await u2.request({"t": "msg", "topic": ch, "body": "x", "rid": 4})
    assert_error(reply, "forbidden", rid=4)
    assert (await u1.pub(ch, "ok"))["seq"] == 1


@pytest.mark.asyncio
async def test_other_domain_no_such_topic(srv):
    a = await srv.guest_conn()
    other = f"#{uniq('x')}@other.example"
    reply = await a.request({"t": "sub", "topic": other, "rid": 1})
    assert_error(reply, "no-such-topic", rid=1)
    reply = await a.request({"t": "msg", "topic": other, "body": "x", "rid": 2})
    assert_error(reply, "no-such-topic", rid=2)
    reply = await a.request({"t": "catchup", "topic": other, "rid": 3})
    assert_error(reply, "no-such-topic", rid=3)
    reply = await a.request({"t": "msg", "topic": "bob@other.example", "body": "x", "rid": 4})
    assert_error(reply, "no-such-topic", rid=4)
    # a single-label domain is well-formed (not bad-topic), just not ours
    reply = await a.request({"t": "sub", "topic": "#x@localhost", "rid": 5})
    assert_error(reply, "no-such-topic", rid=5)


BAD_TOPICS = {
    "empty": "",
    "sigil-only": "#",
    "no-domain": "#abc",
    "empty-name": "#@test.example",
    "empty-domain": "#abc@",
    "space": "#a b@test.example",
    "upper-non-ascii": "#é@test.example",
    "bad-char": "#a+b@test.example",
    "slash": "#a/b@test.example",
    "two-at": "#a@b@test.example",
    "label-leading-dash": "#a@-test.example",
    "label-trailing-dash": "#a@test-.example",
    "empty-label": "#a@test..example",
    "trailing-dot": "#a@test.example.",
    "port": "#a@test.example:7667",
    "underscore-domain": "#a@te_st.example",
    "name-65": "#" + "a" * 65 + "@test.example",
    "label-64": "#a@" + "b" * 64 + ".example",
    "too-long": "#a@" + ".".join(["b" * 63] * 4),
    "256-bytes": "#a@" + ".".join(["b" * 63] * 3) + "." + "c" * 61,
    "double-sigil": "##a@test.example",
    "star": "*",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("topic", list(BAD_TOPICS.values()), ids=list(BAD_TOPICS))
async def test_bad_topic(srv, topic):
    a = await srv.guest_conn()
    reply = await a.request({"t": "sub", "topic": topic, "rid": 1})
    assert_error(reply, "bad-topic", rid=1)
    reply = await a.request({"t": "msg", "topic": topic, "body": "x", "rid": 2})
    assert_error(reply, "bad-topic", rid=2)
    reply = await a.request({"t": "catchup", "topic": topic, "rid": 3})
    assert_error(reply, "bad-topic", rid=3)


@pytest.mark.asyncio
async def test_topic_length_limits_accepted(srv):
    a = await srv.guest_conn()
    base = uniq("n")
    name64 = base + "x" * (64 - len(base))
    assert len(name64) == 64
    meta = await a.sub(f"#{name64}@{DOMAIN}")
    assert meta["topic"] == f"#{name64}@{DOMAIN}"
    odd = f"#{uniq('a.b_c')}-9@{DOMAIN}"  # all of [a-z0-9._-] in a name
    meta = await a.sub(odd)
    assert meta["topic"] == odd, meta
    # a single-char name and a 63-char label are fine too (other domain -> no-such-topic)
    reply = await a.request({"t": "sub", "topic": "#a@" + "b" * 63 + ".example", "rid": 2})
    assert_error(reply, "no-such-topic", rid=2)
    # 255 bytes total with a long (other) domain: well-formed, so no-such-topic
    dom = ".".join(["b" * 63] * 3) + "." + "c" * (255 - 3 - 3 * 64)
    topic = "#a@" + dom
    assert len(topic) == 255
    reply = await a.request({"t": "sub", "topic": topic, "rid": 1})
    assert_error(reply, "no-such-topic", rid=1)


@pytest.mark.asyncio
async def test_too_large_boundary(srv):
    """§10: too-large is decided against the larger of the echo and a `history` frame
    holding the event alone (with the largest rid a catchup may carry), so whatever is
    accepted can be fetched again."""
    a = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    rid = 5

    def event(n: int) -> dict:
        return {
            "id": b"\0" * 32,
            "topic": ch,
            "seq": 1,
            "from": a.id,
            "time": scalar_raw.now_ms(),
            "kind": "text",
            "body": "x" * n,
        }

    def size(n: int) -> int:
        echo = {"t": "event", "rid": rid, **event(n)}
        history = {
            "t": "history",
            "rid": 2**32 - 1,
            "topic": ch,
            "status": "ok",
            "more": False,
            "events": [event(n)],
        }
        return max(len(cbor2.dumps(echo)), len(cbor2.dumps(history)))

    n = 16382 - (size(0) + 2)  # a text header grows from 1 to 3 bytes at 256 chars
    assert size(n) == 16382
    big = {"t": "msg", "topic": ch, "body": "x" * (n + 1), "rid": rid}
    assert len(cbor2.dumps(big)) <= 16382  # the request itself fits a frame
    reply = await a.request(big)
    assert_error(reply, "too-large", rid=rid)
    # exactly fitting is accepted, and the refused one consumed no seq
    echo = await a.request({"t": "msg", "topic": ch, "body": "x" * n, "rid": rid})
    assert echo["t"] == "event", f"a lone history frame of exactly 16382 bytes fits: {echo!r}"
    assert echo["seq"] == 1 and len(echo["body"]) == n
    check_event(echo)
    history = await a.request({"t": "catchup", "topic": ch, "rid": 2**32 - 1})
    assert [e["id"] for e in history["events"]] == [echo["id"]]


@pytest.mark.asyncio
async def test_too_large_multibyte(srv):
    a = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    body = "€" * 5440  # 16320 bytes of UTF-8: the request fits, the echo does not
    msg = {"t": "msg", "topic": ch, "body": body, "rid": 1}
    assert len(cbor2.dumps(msg)) <= 16382
    echo_min = {
        "t": "event",
        "rid": 1,
        "id": b"\0" * 32,
        "topic": ch,
        "seq": 1,
        "from": a.id,
        "time": scalar_raw.now_ms(),
        "kind": "text",
        "body": body,
    }
    assert len(cbor2.dumps(echo_min)) > 16382
    reply = await a.request(msg)
    assert_error(reply, "too-large", rid=1)


# -- subscription lifecycle, transports ------------------------------------------


@pytest.mark.asyncio
async def test_disconnect_forgets_subscriptions(srv):
    a = await srv.user_conn()
    b = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    await b.sub(ch)
    await b.close()
    for _ in range(50):  # the server notices the close asynchronously
        meta = await a.sub(ch)
        if meta["subscribers"] == 1:
            break
        await asyncio.sleep(0.05)
    assert meta["subscribers"] == 1, meta
    c = await srv.user_conn()
    await c.send({"t": "bye"})
    await c.expect_close(timeout=5)
    d = await srv.user_conn()
    assert (await d.sub(ch))["subscribers"] == 2


@pytest.mark.asyncio
async def test_unsub_checks_topic(srv):
    a = await srv.guest_conn()
    assert_error(
        await a.request({"t": "unsub", "topic": "#a b@test.example", "rid": 1}), "bad-topic", rid=1
    )
    assert_error(
        await a.request({"t": "unsub", "topic": "#x@other.example", "rid": 2}),
        "no-such-topic",
        rid=2,
    )


@pytest.mark.asyncio
async def test_nick_boundary_from_reserved(srv):
    bot = await srv.bot_conn()
    ch = channel()
    nick = "Ж" * 64  # 64 chars, 128 bytes: allowed
    echo = await bot.pub(ch, "x", nick=nick)
    assert echo["nick"] == nick
    hist = await bot.call({"t": "catchup", "topic": ch}, "history")
    assert hist["events"][0]["nick"] == nick


@pytest.mark.asyncio
async def test_sub_during_traffic_no_gap(srv):
    """meta.seq is the last seq: live events that follow it continue without a gap."""
    bot = await srv.bot_conn()
    ch = channel()
    subs = [await srv.guest_conn() for _ in range(4)]
    total = 400

    async def publish():
        for i in range(total):
            await bot.send({"t": "msg", "topic": ch, "body": f"n{i}", "rid": i + 1})
            if i % 50 == 49:
                await asyncio.sleep(0.01)
        for _ in range(total):
            assert (await bot.recv(timeout=10))["t"] == "event"

    task = asyncio.get_running_loop().create_task(publish())
    metas = []
    for s in subs:
        await asyncio.sleep(0.01)
        metas.append(await s.request({"t": "sub", "topic": ch}))
    await task
    for s, meta in zip(subs, metas, strict=True):
        assert meta["t"] == "meta", meta
        seqs = []
        while True:
            try:
                ev = await s.recv(timeout=0.5)
            except TimeoutError:
                break
            assert ev["t"] == "event", ev
            seqs.append(ev["seq"])
        later = [q for q in seqs if q > meta["seq"]]
        assert later == list(range(meta["seq"] + 1, total + 1)), (
            f"meta.seq={meta['seq']}, then got {later[:5]}...{later[-5:]} ({len(later)})"
        )


@pytest.mark.asyncio
async def test_unix_socket_transport(mk):
    srv = mk(unix=True)
    ch = channel()
    tcp = await srv.user_conn()
    await tcp.sub(ch)
    u = await srv.connect_unix()
    reply = await u.login()
    assert reply["limits"]["frame"] == 16382
    await u.sub(ch)
    echo = await u.pub(ch, "over a unix socket")
    ev = await tcp.recv_event()
    assert event_core(ev) == event_core(echo)
    await u.send_raw(b"\x00\x00")
    frames = await u.expect_close(timeout=5)
    assert [f["t"] for f in frames] == ["error", "bye"], frames
