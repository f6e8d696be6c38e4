"""topics listing, catchup/history, keep:0, persistence across restart (§5, §9)."""

from __future__ import annotations

import asyncio

import cbor2
import pytest
from bbhelpers import DOMAIN, assert_error, channel, uniq
from scalar_raw import check_event, event_core

# -- topics ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_topics_prefix_sorted_paging(srv):
    a = await srv.user_conn()
    b = await srv.user_conn()
    prefix = "#" + uniq("tl")
    names = [f"{prefix}-{x}@{DOMAIN}" for x in ("b", "a", "c")]
    for n in names:
        await a.sub(n)
    await b.sub(names[1])  # "-a" has 2 subscribers
    want = sorted(names)
    # prefix is lowercased and matched against the whole topic including '#'
    reply = await a.call({"t": "topics", "prefix": prefix.upper(), "rid": 1}, "topics")
    assert reply["rid"] == 1
    assert reply["total"] == 3 and reply["offset"] == 0, reply
    assert [i["topic"] for i in reply["items"]] == want, reply
    subs = {i["topic"]: i["subscribers"] for i in reply["items"]}
    assert subs == {want[0]: 2, want[1]: 1, want[2]: 1}, reply
    for item in reply["items"]:
        assert set(item) <= {"topic", "subscribers", "title"}, item
    # paging
    r = await a.call({"t": "topics", "prefix": prefix, "limit": 2}, "topics")
    assert [i["topic"] for i in r["items"]] == want[:2] and r["total"] == 3, r
    r = await a.call({"t": "topics", "prefix": prefix, "limit": 2, "offset": 2}, "topics")
    assert [i["topic"] for i in r["items"]] == want[2:] and r["offset"] == 2, r
    assert r["total"] == 3
    for off in (3, 4, 1000):
        r = await a.call({"t": "topics", "prefix": prefix, "offset": off}, "topics")
        assert r["items"] == [] and r["total"] == 3 and r["offset"] == off, r
    # a prefix that matches nothing
    r = await a.call({"t": "topics", "prefix": prefix + "-zzz"}, "topics")
    assert r["items"] == [] and r["total"] == 0, r
    # a prefix without '#' matches no channel
    r = await a.call({"t": "topics", "prefix": prefix[1:]}, "topics")
    assert r["items"] == [] and r["total"] == 0, r
    # stable while nothing changes
    r1 = await a.call({"t": "topics", "prefix": prefix}, "topics")
    r2 = await a.call({"t": "topics", "prefix": prefix}, "topics")
    assert r1["items"] == r2["items"]


@pytest.mark.asyncio
async def test_topics_lists_channels_only(srv):
    user = srv.new_user("lister")
    a = await srv.user_conn(user)
    bot = await srv.bot_conn()
    ch = channel("lo")
    await a.sub(ch)
    await a.sub(user[0])
    await a.sub(bot.id)
    await bot.sub(bot.id)
    await a.pub(user[0], "dm to self")
    r = await a.call({"t": "topics", "limit": 1000}, "topics")
    topics = [i["topic"] for i in r["items"]]
    assert all(t.startswith("#") for t in topics), topics
    assert topics == sorted(topics), topics
    assert len(set(topics)) == len(topics)
    assert user[0] not in topics and bot.id not in topics
    assert r["total"] >= len(topics)
    if r["total"] == len(topics):
        assert ch in topics
    r = await a.call({"t": "topics", "prefix": ch.split("@")[0]}, "topics")
    assert [i["topic"] for i in r["items"]] == [ch], r


@pytest.mark.asyncio
@pytest.mark.parametrize("limit", [0, -1, -1000])
async def test_topics_bad_limit(srv, limit):
    a = await srv.guest_conn()
    reply = await a.request({"t": "topics", "limit": limit, "rid": 3})
    assert_error(reply, "bad-message", rid=3)


@pytest.mark.asyncio
async def test_topics_limit_bounds(srv):
    a = await srv.guest_conn()
    prefix = "#" + uniq("lb")
    for x in range(3):
        await a.sub(f"{prefix}-{x}@{DOMAIN}")
    for limit in (1, 1000, 1001, 10**6):
        r = await a.call({"t": "topics", "prefix": prefix, "limit": limit}, "topics")
        assert len(r["items"]) == min(limit, 3) and r["total"] == 3, (limit, r)


@pytest.mark.asyncio
async def test_topics_default_limit_100(srv):
    a = await srv.bot_conn()  # a sub that makes a channel spends a rate token (§10)
    prefix = "#" + uniq("dl")
    names = sorted(f"{prefix}-{i:03d}@{DOMAIN}" for i in range(120))
    for i, n in enumerate(names):
        await a.send({"t": "sub", "topic": n, "rid": 1000 + i})
    for _ in names:
        assert (await a.recv())["t"] == "meta"
    r = await a.call({"t": "topics", "prefix": prefix}, "topics")
    assert r["total"] == 120 and r["offset"] == 0, {k: r[k] for k in r if k != "items"}
    assert [i["topic"] for i in r["items"]] == names[:100]
    r = await a.call({"t": "topics", "prefix": prefix, "offset": 100}, "topics")
    assert [i["topic"] for i in r["items"]] == names[100:]


@pytest.mark.asyncio
async def test_catchup_default_limit_50(srv):
    bot = await srv.bot_conn()  # reserved ids are not rate limited
    ch = channel()
    for i in range(60):
        await bot.send({"t": "msg", "topic": ch, "body": f"e{i}", "rid": 100 + i})
    for _ in range(60):
        assert (await bot.recv())["t"] == "event"
    reader = await srv.guest_conn()
    r = await reader.call({"t": "catchup", "topic": ch}, "history")
    assert _seqs(r) == list(range(11, 61)) and r["more"] is True, _seqs(r)
    r = await reader.call({"t": "catchup", "topic": ch, "after": 0}, "history")
    assert _seqs(r) == list(range(1, 51)) and r["more"] is True, _seqs(r)
    r = await reader.call({"t": "catchup", "topic": ch, "after": 50}, "history")
    assert _seqs(r) == list(range(51, 61)) and r["more"] is False, _seqs(r)
    r = await reader.call({"t": "catchup", "topic": ch, "before": 11}, "history")
    assert _seqs(r) == list(range(1, 11)) and r["more"] is False, _seqs(r)


@pytest.mark.asyncio
async def test_topics_frame_full_paging(mk):
    """Fewer than `limit` items come back only at the end or when the frame is full."""
    srv = mk(subs=1000)
    a = await srv.bot_conn()  # a sub that makes a channel spends a rate token (§10)
    prefix = "#" + uniq("ff")
    names = sorted(f"{prefix}-{i:04d}-{'y' * 40}@{DOMAIN}" for i in range(320))
    for i, n in enumerate(names):
        await a.send({"t": "sub", "topic": n, "rid": 10_000 + i})
    for _ in names:
        m = await a.recv()
        assert m["t"] == "meta", m
    got: list[str] = []
    offset = 0
    pages = 0
    while True:
        r = await a.call(
            {"t": "topics", "prefix": prefix, "offset": offset, "limit": 1000, "rid": 7}, "topics"
        )
        assert r["total"] == len(names) and r["offset"] == offset, {
            k: r[k] for k in r if k != "items"
        }
        items = r["items"]
        if not items:
            break
        pages += 1
        got += [i["topic"] for i in items]
        assert len(cbor2.dumps(r)) <= 16382
        if offset + len(items) < len(names):
            # not the end, so the frame must be full: the next item would not fit
            nxt = await a.call(
                {
                    "t": "topics",
                    "prefix": prefix,
                    "limit": 1,
                    "offset": offset + len(items),
                    "rid": 7,
                },
                "topics",
            )
            fuller = dict(r)
            fuller["items"] = [*items, *nxt["items"]]
            assert len(cbor2.dumps(fuller)) > 16382, (
                f"page at offset {offset} has {len(items)} items but another one would fit"
            )
        offset += len(items)
        assert pages < 50
    assert got == names
    assert pages >= 2


# -- catchup -------------------------------------------------------------------


async def _channel_with_events(srv, n: int):
    a = await srv.user_conn()
    ch = channel("hist")
    await a.sub(ch)
    echoes = []
    for i in range(n):
        echoes.append(await a.pub(ch, f"message {i + 1}"))
        if i % 3 == 2:
            await asyncio.sleep(0.005)  # spread the times a little
    assert [e["seq"] for e in echoes] == list(range(1, n + 1))
    return a, ch, echoes


def _seqs(hist):
    return [e["seq"] for e in hist["events"]]


@pytest.mark.asyncio
async def test_catchup_cursors(srv):
    _a, ch, echoes = await _channel_with_events(srv, 10)
    reader = await srv.user_conn()  # not subscribed: channels are open to anyone

    async def cu(**kw):
        r = await reader.call({"t": "catchup", "topic": ch, **kw}, "history")
        assert r["topic"] == ch and r["status"] == "ok", r
        for e in r["events"]:
            check_event(e)
            assert "rid" not in e and "t" not in e, e
        return r

    r = await cu()
    assert _seqs(r) == list(range(1, 11)) and r["more"] is False, r
    for e, echo in zip(r["events"], echoes, strict=True):
        assert event_core(e) == event_core(echo) and e["id"] == echo["id"], (e, echo)
    r = await cu(limit=3)
    assert _seqs(r) == [8, 9, 10] and r["more"] is True, r
    r = await cu(after=7)
    assert _seqs(r) == [8, 9, 10] and r["more"] is False, r
    r = await cu(after=2, limit=3)
    assert _seqs(r) == [3, 4, 5] and r["more"] is True, r
    r = await cu(after=7, limit=3)
    assert _seqs(r) == [8, 9, 10] and r["more"] is False, r
    r = await cu(after=0)
    assert _seqs(r) == list(range(1, 11)) and r["more"] is False, r
    r = await cu(after=10)
    assert r["events"] == [] and r["more"] is False, r
    r = await cu(after=1000)
    assert r["events"] == [] and r["more"] is False, r
    r = await cu(before=4)
    assert _seqs(r) == [1, 2, 3] and r["more"] is False, r
    r = await cu(before=8, limit=2)
    assert _seqs(r) == [6, 7] and r["more"] is True, r
    r = await cu(before=3, limit=2)
    assert _seqs(r) == [1, 2] and r["more"] is False, r
    r = await cu(before=1)
    assert r["events"] == [] and r["more"] is False, r
    r = await cu(before=1000, limit=4)
    assert _seqs(r) == [7, 8, 9, 10] and r["more"] is True, r
    r = await cu(limit=10)
    assert _seqs(r) == list(range(1, 11)) and r["more"] is False, r
    r = await cu(limit=1000)
    assert _seqs(r) == list(range(1, 11)) and r["more"] is False, r
    r = await cu(limit=5000)  # larger is treated as 1000
    assert _seqs(r) == list(range(1, 11)) and r["more"] is False, r


@pytest.mark.asyncio
async def test_catchup_since_inclusive(srv):
    a, ch, echoes = await _channel_with_events(srv, 9)
    times = [e["time"] for e in echoes]
    assert times == sorted(times), "server receive times go backwards"
    for k in (0, 4, 8):
        since = echoes[k]["time"]
        want = [e["seq"] for e in echoes if e["time"] >= since]
        r = await a.call({"t": "catchup", "topic": ch, "since": since}, "history")
        assert r["status"] == "ok" and _seqs(r) == want and r["more"] is False, (since, r)
        assert echoes[k]["seq"] in _seqs(r)  # inclusive
    since = echoes[2]["time"]
    want = [e["seq"] for e in echoes if e["time"] >= since]
    r = await a.call({"t": "catchup", "topic": ch, "since": since, "limit": 2}, "history")
    assert _seqs(r) == want[:2] and r["more"] is (len(want) > 2), r
    r = await a.call({"t": "catchup", "topic": ch, "since": times[-1] + 1}, "history")
    assert r["events"] == [] and r["more"] is False, r
    r = await a.call({"t": "catchup", "topic": ch, "since": 0}, "history")
    assert _seqs(r) == list(range(1, 10)), r


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "cursors",
    [
        {"after": 1, "before": 5},
        {"after": 1, "since": 0},
        {"before": 5, "since": 0},
        {"after": 1, "before": 5, "since": 0},
    ],
)
async def test_catchup_two_cursors_bad_message(srv, cursors):
    a = await srv.guest_conn()
    ch = channel()
    await a.sub(ch)
    reply = await a.request({"t": "catchup", "topic": ch, "rid": 12, **cursors})
    assert_error(reply, "bad-message", rid=12)


@pytest.mark.asyncio
@pytest.mark.parametrize("limit", [0, -1])
async def test_catchup_bad_limit(srv, limit):
    a = await srv.guest_conn()
    ch = channel()
    await a.sub(ch)
    reply = await a.request({"t": "catchup", "topic": ch, "limit": limit, "rid": 13})
    assert_error(reply, "bad-message", rid=13)


@pytest.mark.asyncio
async def test_catchup_empty_channel(srv):
    a = await srv.guest_conn()
    ch = channel()
    meta = await a.sub(ch)
    assert meta["history"] is True
    r = await a.call({"t": "catchup", "topic": ch, "rid": 1}, "history")
    assert r == {
        "t": "history",
        "rid": 1,
        "topic": ch,
        "status": "ok",
        "events": [],
        "more": False,
    }, r


@pytest.mark.asyncio
async def test_catchup_frame_fill_drops_farthest(srv):
    a = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    echoes = [await a.pub(ch, f"{i}" + "z" * 6000) for i in range(1, 6)]
    # two ~6 KB events fit a 16 KiB frame, three do not
    r = await a.call({"t": "catchup", "topic": ch, "after": 0}, "history")
    assert _seqs(r) == [1, 2] and r["more"] is True, _seqs(r)
    r = await a.call({"t": "catchup", "topic": ch, "since": echoes[0]["time"]}, "history")
    assert _seqs(r) == [1, 2] and r["more"] is True, _seqs(r)
    r = await a.call({"t": "catchup", "topic": ch}, "history")
    assert _seqs(r) == [4, 5] and r["more"] is True, _seqs(r)
    r = await a.call({"t": "catchup", "topic": ch, "before": 5}, "history")
    assert _seqs(r) == [3, 4] and r["more"] is True, _seqs(r)
    r = await a.call({"t": "catchup", "topic": ch, "after": 2, "limit": 1}, "history")
    assert _seqs(r) == [3] and r["more"] is True, _seqs(r)
    for e in r["events"]:
        check_event(e)


@pytest.mark.asyncio
async def test_catchup_permissions(srv):
    alice = srv.new_user("alice")
    a = await srv.user_conn(alice)
    b = await srv.user_conn()
    bot = await srv.bot_conn()
    r = await a.call({"t": "catchup", "topic": alice[0]}, "history")
    assert r["status"] == "ok" and r["topic"] == alice[0]
    for conn, topic in ((b, alice[0]), (a, bot.id), (b, bot.id)):
        reply = await conn.request({"t": "catchup", "topic": topic, "rid": 2})
        assert_error(reply, "forbidden", rid=2)
    r = await bot.call({"t": "catchup", "topic": bot.id}, "history")
    assert r["status"] == "ok"
    # meta.history is true exactly when catchup by the same connection answers ok
    assert (await a.sub(alice[0]))["history"] is True
    assert (await b.sub(alice[0]))["history"] is False
    assert (await b.sub(bot.id))["history"] is False
    assert (await bot.sub(bot.id))["history"] is True


@pytest.mark.asyncio
async def test_keep_zero_unavailable(mk):
    srv = mk(keep=0)
    a = await srv.user_conn()
    ch = channel()
    meta = await a.sub(ch)
    assert meta["history"] is False, meta
    assert (await a.pub(ch, "one"))["seq"] == 1
    assert (await a.pub(ch, "two"))["seq"] == 2
    r = await a.call({"t": "catchup", "topic": ch, "rid": 4}, "history")
    assert r["rid"] == 4 and r["topic"] == ch, r
    assert r["status"] == "unavailable", r
    assert r["events"] == [], r
    r = await a.call({"t": "catchup", "topic": ch, "after": 0}, "history")
    assert r["status"] == "unavailable" and r["events"] == [], r
    own = await a.sub(a.id)
    assert own["history"] is False, own
    r = await a.call({"t": "catchup", "topic": a.id}, "history")
    assert r["status"] == "unavailable", r
    # still checks: other domain, bad topic
    reply = await a.request({"t": "catchup", "topic": "#x@other.example", "rid": 5})
    assert_error(reply, "no-such-topic", rid=5)


# -- persistence -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_history_survives_restart(mk):
    srv = mk()
    user = srv.new_user()
    a = await srv.user_conn(user)
    ch = channel("persist")
    await a.sub(ch)
    echoes = [await a.pub(ch, f"before restart {i}") for i in range(3)]
    dm = await a.pub(user[0], "note to self")
    await srv.close_all()
    srv.restart()  # SIGTERM (exit code 0 asserted), same data dir
    a = await srv.user_conn(user)
    meta = await a.sub(ch)
    assert meta["seq"] == 3 and meta["history"] is True, meta
    echo4 = await a.pub(ch, "after restart")
    assert echo4["seq"] == 4, f"seq restarted after a server restart: {echo4!r}"
    r = await a.call({"t": "catchup", "topic": ch}, "history")
    assert _seqs(r) == [1, 2, 3, 4], r
    for e, echo in zip(r["events"][:3], echoes, strict=True):
        assert event_core(e) == event_core(echo), (e, echo)
    r = await a.call({"t": "catchup", "topic": user[0]}, "history")
    assert [e["id"] for e in r["events"]] == [dm["id"]], r
    assert (await a.pub(user[0], "second note"))["seq"] == dm["seq"] + 1
    # the channel is still known
    t = await a.call({"t": "topics", "prefix": ch.split("@")[0]}, "topics")
    assert [i["topic"] for i in t["items"]] == [ch], t
    # tokens and users survive as well
    bot = srv.new_bot()
    srv.restart()
    b = await srv.bot_conn(bot)
    assert b.id == bot[0]
    assert (await b.pub(ch, "bot after second restart"))["seq"] == 5


@pytest.mark.asyncio
async def test_sigterm_with_clients_connected_exits_zero(mk):
    srv = mk()
    a = await srv.user_conn()
    ch = channel()
    await a.sub(ch)
    await srv.guest_conn()
    rc = srv.stop(check=False)
    assert rc == 0, f"exit code {rc} on SIGTERM with clients connected:\n{srv.log_tail()}"
    frames = await a.expect_close(timeout=5)
    assert all(f["t"] in ("bye", "event") for f in frames), frames
