"""ident and the session state machine (spec §5, §6, §9 ident)."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
import scalar_raw
from bbhelpers import DOMAIN, assert_bye, assert_error, channel, fresh_source_address

GUEST_RE = re.compile(r"^guest-[0-9a-f]{8}@" + re.escape(DOMAIN) + r"$")


async def _failed_ident(srv, msg, code):
    """Send one ident from a fresh source address; expect error(code) + bye(code) + close."""
    conn = await srv.connect(local_host=fresh_source_address())
    msg = {**msg, "rid": 31}
    await conn.send(msg)
    frames = await conn.expect_close(timeout=5)
    assert len(frames) == 2, f"{msg!r}: expected error + bye then close, got {frames!r}"
    assert_error(frames[0], code, rid=31)
    assert_bye(frames[1], code)
    return frames[0]


@pytest.mark.asyncio
async def test_ident_user_success(srv):
    uid, pw = srv.new_user("alice")
    conn = await srv.connect()
    reply = await conn.request(
        {
            "t": "ident",
            "v": 1,
            "id": uid,
            "rid": 1,
            "auth": {"method": "password", "secret": pw},
            "client": "blackbox/1",
        }
    )
    assert reply["t"] == "ident", reply
    assert reply["rid"] == 1, reply
    assert reply["v"] == 1, reply
    assert reply["id"] == uid, reply
    assert isinstance(reply["server"], str) and reply["server"], reply
    limits = reply["limits"]
    assert isinstance(limits, dict), reply
    assert limits["frame"] == 16382, reply
    assert limits["rate"] == 5, reply
    assert limits["burst"] == 20, reply
    assert limits["subs"] == 500, reply
    await conn.expect_quiet(0.2)
    # the session is open
    ch = channel()
    meta = await conn.sub(ch)
    assert meta["topic"] == ch
    echo = await conn.pub(ch, "hi")
    assert echo["from"] == uid


@pytest.mark.asyncio
async def test_ident_limits_reflect_config(mk):
    srv = mk(rate=2, burst=7, subs=33)
    conn = await srv.connect()
    reply = await conn.login()
    assert reply["limits"]["frame"] == 16382, reply
    assert reply["limits"]["rate"] == 2, reply
    assert reply["limits"]["burst"] == 7, reply
    assert reply["limits"]["subs"] == 33, reply


@pytest.mark.asyncio
async def test_ident_id_is_case_insensitive_and_normalised(srv):
    uid, pw = srv.new_user("mixed")
    conn = await srv.connect()
    reply = await conn.ident(uid.upper(), pw)
    assert reply["t"] == "ident", reply
    assert reply["id"] == uid, reply  # lowercase, as the server sees it


@pytest.mark.asyncio
async def test_same_id_many_connections(srv):
    user = srv.new_user()
    conns = [await srv.user_conn(user) for _ in range(4)]
    for c in conns:
        assert c.id == user[0]


@pytest.mark.asyncio
async def test_guest_ids(srv):
    ids = set()
    for _ in range(3):
        conn = await srv.connect()
        reply = await conn.request({"t": "ident", "v": 1, "rid": 2})
        assert reply["t"] == "ident" and reply["rid"] == 2, reply
        assert GUEST_RE.match(reply["id"]), reply
        assert reply["limits"]["frame"] == 16382, reply
        ids.add(reply["id"])
    assert len(ids) == 3, f"guest ids must differ: {ids}"


@pytest.mark.asyncio
async def test_guest_can_subscribe_publish_catch_up_but_not_nick_or_origin(srv):
    g = await srv.guest_conn()
    ch = channel()
    await g.sub(ch)
    echo = await g.pub(ch, "hello from a guest")
    assert echo["from"] == g.id and echo["seq"] == 1
    hist = await g.call({"t": "catchup", "topic": ch}, "history")
    assert hist["status"] == "ok" and [e["seq"] for e in hist["events"]] == [1], hist
    reply = await g.request({"t": "msg", "topic": ch, "body": "x", "nick": "bob"})
    assert_error(reply, "forbidden", rid=reply.get("rid"))
    reply = await g.request({"t": "msg", "topic": ch, "body": "x", "origin": "irc:x/#y"})
    assert_error(reply, "forbidden", rid=reply.get("rid"))
    assert (await g.pub(ch, "again"))["seq"] == 2


@pytest.mark.asyncio
async def test_guests_off(mk):
    srv = mk(guests=False)
    await _failed_ident(srv, {"t": "ident", "v": 1}, "auth-failed")
    # users still work
    uid, pw = srv.new_user()
    conn = await srv.connect()
    assert (await conn.ident(uid, pw))["id"] == uid


@pytest.mark.asyncio
async def test_reserved_id_token_auth(srv):
    bot_id, token = srv.new_bot()
    conn = await srv.connect()
    reply = await conn.request(
        {"t": "ident", "v": 1, "id": bot_id, "rid": 3, "auth": {"method": "token", "secret": token}}
    )
    assert reply["t"] == "ident" and reply["id"] == bot_id and reply["rid"] == 3, reply


AUTH_CASES = [
    "wrong-password",
    "unknown-user",
    "channel-id",
    "wrong-method",
    "unknown-method",
    "no-auth",
    "empty-secret",
    "reserved-with-password",
    "wrong-token",
    "unknown-reserved",
    "other-domain-user",
    "other-domain-guest-like",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("case", AUTH_CASES)
async def test_ident_auth_failed(srv, case):
    uid, pw = srv.new_user("victim") if case != "unknown-user" else (None, None)
    bot_id = token = None
    if case in ("reserved-with-password", "wrong-token"):
        bot_id, token = srv.new_bot()
    msg = {
        "wrong-password": {"id": uid, "auth": {"method": "password", "secret": "nope" + str(pw)}},
        "unknown-user": {
            "id": f"nobody-xyz@{DOMAIN}",
            "auth": {"method": "password", "secret": "whatever"},
        },
        "channel-id": {"id": f"#lobby@{DOMAIN}", "auth": {"method": "password", "secret": "x"}},
        "wrong-method": {"id": uid, "auth": {"method": "token", "secret": pw}},
        "unknown-method": {"id": uid, "auth": {"method": "magic", "secret": pw}},
        "no-auth": {"id": uid},
        "empty-secret": {"id": uid, "auth": {"method": "password", "secret": ""}},
        "reserved-with-password": {"id": bot_id, "auth": {"method": "password", "secret": token}},
        "wrong-token": {"id": bot_id, "auth": {"method": "token", "secret": str(token) + "x"}},
        "unknown-reserved": {"id": f"!nobody@{DOMAIN}", "auth": {"method": "token", "secret": "x"}},
        "other-domain-user": {
            "id": "alice@other.example",
            "auth": {"method": "password", "secret": "x"},
        },
        "other-domain-guest-like": {
            "id": f"{str(uid).split('@')[0]}@other.example",
            "auth": {"method": "password", "secret": pw},
        },
    }[case]
    await _failed_ident(srv, {"t": "ident", "v": 1, **msg}, "auth-failed")


@pytest.mark.asyncio
async def test_auth_failed_never_says_which(srv):
    uid, _pw = srv.new_user("victim")
    e1 = await _failed_ident(
        srv,
        {"t": "ident", "v": 1, "id": uid, "auth": {"method": "password", "secret": "bad"}},
        "auth-failed",
    )
    e2 = await _failed_ident(
        srv,
        {
            "t": "ident",
            "v": 1,
            "id": f"ghost-zz@{DOMAIN}",
            "auth": {"method": "password", "secret": "bad"},
        },
        "auth-failed",
    )
    e3 = await _failed_ident(
        srv,
        {
            "t": "ident",
            "v": 1,
            "id": f"#chan@{DOMAIN}",
            "auth": {"method": "password", "secret": "bad"},
        },
        "auth-failed",
    )
    assert e1["text"] == e2["text"] == e3["text"], (
        f"auth-failed text reveals which check failed: {e1!r} / {e2!r} / {e3!r}"
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("v", [0, 2, 100])
async def test_ident_unsupported_version(srv, v):
    await _failed_ident(srv, {"t": "ident", "v": v}, "unsupported")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "bad_id",
    [
        "not an id",
        "alice",
        "alice@",
        "@test.example",
        "al ice@test.example",
        "alice@test.example.",
        "alice@test.example:7667",
        "alice@-test.example",
        "a" * 65 + "@test.example",
        "alicé@test.example",
        "#@test.example",
        "!@test.example",
        "alice@@test.example",
    ],
)
async def test_ident_malformed_id(srv, bad_id):
    await _failed_ident(
        srv,
        {"t": "ident", "v": 1, "id": bad_id, "auth": {"method": "password", "secret": "x"}},
        "bad-topic",
    )


@pytest.mark.asyncio
async def test_second_ident_forbidden_session_kept(srv):
    user = srv.new_user()
    conn = await srv.user_conn(user)
    ch = channel()
    await conn.sub(ch)
    other, opw = srv.new_user()
    reply = await conn.request(
        {
            "t": "ident",
            "v": 1,
            "id": other,
            "rid": 99,
            "auth": {"method": "password", "secret": opw},
        }
    )
    assert_error(reply, "forbidden", rid=99)
    await conn.expect_quiet(0.2)
    # still open, same identity, same subscriptions
    echo = await conn.pub(ch, "still me")
    assert echo["from"] == user[0], echo
    reply = await conn.request({"t": "ident", "v": 1, "rid": 100})  # guest attempt too
    assert_error(reply, "forbidden", rid=100)
    echo = await conn.pub(ch, "still me 2")
    assert echo["from"] == user[0] and echo["seq"] == 2, echo


REQUESTS_BEFORE_IDENT = {
    "sub": {"t": "sub", "topic": "#x@test.example"},
    "unsub": {"t": "unsub", "topic": "*"},
    "msg": {"t": "msg", "topic": "#x@test.example", "body": "x"},
    "topics": {"t": "topics"},
    "catchup": {"t": "catchup", "topic": "#x@test.example"},
    # session-open is checked before fields (§9 order)
    "sub-bad-topic": {"t": "sub", "topic": "not a topic"},
    "sub-topic-int": {"t": "sub", "topic": 5},
    "msg-other-domain": {"t": "msg", "topic": "#x@other.example", "body": "x"},
}


@pytest.mark.asyncio
async def test_requests_before_ident_not_authenticated(srv):
    conn = await srv.connect()
    for i, (name, msg) in enumerate(REQUESTS_BEFORE_IDENT.items(), start=1):
        reply = await conn.request({**msg, "rid": i})
        assert reply["t"] == "error" and reply.get("code") == "not-authenticated", (name, reply)
        assert reply["rid"] == i and isinstance(reply.get("text"), str), (name, reply)
    # ping works before ident
    reply = await conn.request({"t": "ping", "time": 5, "rid": 500})
    assert reply == {"t": "pong", "time": 5, "rid": 500}, reply
    # unknown type before ident is unknown-type, not not-authenticated (§9 order)
    reply = await conn.request({"t": "frob", "rid": 501})
    assert_error(reply, "unknown-type", rid=501)
    await conn.expect_quiet(0.2)
    # and the connection can still authenticate
    reply = await conn.login()
    assert GUEST_RE.match(reply["id"]), reply


@pytest.mark.asyncio
async def test_ident_timeout(mk):
    srv = mk(ident=0.6)
    conn = await srv.connect()
    t0 = time.monotonic()
    frames = await conn.expect_close(timeout=6)
    elapsed = time.monotonic() - t0
    assert len(frames) == 1, f"expected bye{{reason:'timeout'}} then close, got {frames!r}"
    assert_bye(frames[0], "timeout")
    assert elapsed >= 0.4, f"closed after {elapsed:.2f}s, before the ident timeout"
    # a client that does ident in time is not affected
    conn2 = await srv.connect()
    await conn2.login()
    await asyncio.sleep(1.0)
    reply = await conn2.request({"t": "ping", "rid": 1})
    assert reply == {"t": "pong", "rid": 1}, reply


@pytest.mark.asyncio
async def test_ident_timeout_not_reset_by_ping(mk):
    srv = mk(ident=0.8)
    conn = await srv.connect()
    t0 = time.monotonic()
    frames = []
    closed = False
    while time.monotonic() - t0 < 5:
        try:
            await conn.send({"t": "ping", "time": 1})
        except (ConnectionError, OSError):
            closed = True
            break
        try:
            while True:
                frames.append(await conn.recv(timeout=0.2))
        except TimeoutError:
            continue
        except scalar_raw.Closed:
            closed = True
            break
    assert closed, "pings before ident kept the connection open past the ident timeout"
    non_pong = [f for f in frames if f["t"] != "pong"]
    assert non_pong and non_pong[-1] == {"t": "bye", "reason": "timeout"}, frames


@pytest.mark.asyncio
async def test_failed_idents_rate_limited_per_address(srv):
    uid, _pw = srv.new_user("target")
    addr = fresh_source_address()
    seen_codes = []
    for _ in range(150):
        conn = await srv.connect(local_host=addr)
        await conn.send(
            {
                "t": "ident",
                "v": 1,
                "id": uid,
                "rid": 1,
                "auth": {"method": "password", "secret": "wrong"},
            }
        )
        frames = await conn.expect_close(timeout=5)
        assert len(frames) == 2, frames
        code = frames[0].get("code")
        assert frames[0]["t"] == "error" and code in ("auth-failed", "rate-limited"), frames
        assert_bye(frames[1], code)
        await conn.close()
        seen_codes.append(code)
        if code == "rate-limited":
            assert frames[0].get("rid") == 1, frames
            break
    assert "rate-limited" in seen_codes, (
        f"150 failed idents from one address in a row were never rate limited: {seen_codes}"
    )
    # another address is not affected
    conn = await srv.connect(local_host=fresh_source_address())
    reply = await conn.ident(uid, "wrong")
    assert_error(reply, "auth-failed", rid=reply.get("rid"))


def test_cli_cannot_create_guest_names(server):
    res = server.cli("user", "add", "guest-abcdef12", "--password-stdin", input="secret\n")
    assert res.returncode != 0, (
        "`user add guest-abcdef12` succeeded; user names starting with guest- cannot be "
        f"created (§9): {res.stdout} {res.stderr}"
    )


@pytest.mark.asyncio
async def test_nothing_after_failed_ident_bye(srv):
    uid, _pw = srv.new_user()
    conn = await srv.connect(local_host=fresh_source_address())
    frames = [
        {
            "t": "ident",
            "v": 1,
            "id": uid,
            "rid": 1,
            "auth": {"method": "password", "secret": "wrong"},
        },
        {"t": "ping", "rid": 2},
        {"t": "sub", "topic": channel(), "rid": 3},
    ]
    await conn.send_raw(b"".join(scalar_raw.frame(scalar_raw.encode(f)) for f in frames))
    got = await conn.expect_close(timeout=5)
    assert len(got) == 2, f"nothing may follow bye: {got!r}"
    assert_error(got[0], "auth-failed", rid=1)
    assert_bye(got[1], "auth-failed")


@pytest.mark.asyncio
async def test_pipelined_ident_sub_msg(srv):
    user = srv.new_user()
    ch = channel()
    frames = [
        {
            "t": "ident",
            "v": 1,
            "id": user[0],
            "rid": 1,
            "auth": {"method": "password", "secret": user[1]},
        },
        {"t": "sub", "topic": ch, "rid": 2},
        {"t": "msg", "topic": ch, "body": "first", "rid": 3},
        {"t": "catchup", "topic": ch, "rid": 4},
    ]
    conn = await srv.connect()
    await conn.send_raw(b"".join(scalar_raw.frame(scalar_raw.encode(f)) for f in frames))
    got = [await conn.recv() for _ in range(4)]
    assert [(f["t"], f.get("rid")) for f in got] == [
        ("ident", 1),
        ("meta", 2),
        ("event", 3),
        ("history", 4),
    ], got
    assert got[2]["seq"] == 1 and got[2]["from"] == user[0]
    assert [e["id"] for e in got[3]["events"]] == [got[2]["id"]]
    await conn.expect_quiet(0.2)
