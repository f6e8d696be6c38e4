"""Framing, decoding, rid handling, unknown types/keys, ping/pong (spec §1, §2, §5, §9)."""

from __future__ import annotations

import asyncio
import struct

import cbor2
import pytest
import scalar_raw
from bbhelpers import assert_bye, assert_error, channel


async def _assert_open(conn: scalar_raw.Conn) -> None:
    """The connection still answers requests."""
    rid = conn.next_rid()
    reply = await conn.request({"t": "ping", "time": 42, "rid": rid})
    assert reply == {"t": "pong", "time": 42, "rid": rid}, reply


# -- bad-frame ----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("length", [0, 16383, 65535])
@pytest.mark.parametrize("authenticated", [False, True])
async def test_bad_frame_header_rejected_on_header_alone(srv, length, authenticated):
    conn = await srv.connect()
    if authenticated:
        await conn.login()
    # Only the header: the server must not wait for a body (spec §9).
    await conn.send_raw(struct.pack("<H", length))
    frames = await conn.expect_close(timeout=5)
    assert len(frames) == 2, f"expected error + bye then close, got {frames!r}"
    assert_error(frames[0], "bad-frame")
    assert_bye(frames[1], "bad-frame")


@pytest.mark.asyncio
async def test_bad_frame_after_valid_frames_in_same_write(srv):
    conn = await srv.connect()
    ping = cbor2.dumps({"t": "ping", "rid": 1, "time": 5})
    await conn.send_raw(scalar_raw.frame(ping) + b"\x00\x00")
    frames = await conn.expect_close(timeout=5)
    assert frames[0] == {"t": "pong", "rid": 1, "time": 5}, frames
    assert len(frames) == 3, frames
    assert_error(frames[1], "bad-frame")
    assert_bye(frames[2], "bad-frame")


@pytest.mark.asyncio
async def test_largest_frame_accepted(srv):
    conn = await srv.connect()
    base = {"t": "ping", "rid": 9, "time": 1, "pad": ""}
    overhead = len(cbor2.dumps(base))
    pad = "x" * (16382 - overhead - 2)  # text header grows by 2 bytes for >= 256 chars
    msg = {**base, "pad": pad}
    body = cbor2.dumps(msg)
    assert len(body) == 16382, len(body)
    await conn.send_body(body)
    reply = await conn.recv()
    assert reply == {"t": "pong", "rid": 9, "time": 1}, reply


@pytest.mark.asyncio
async def test_frames_split_and_coalesced(srv):
    conn = await srv.connect()
    f1 = scalar_raw.frame(cbor2.dumps({"t": "ping", "rid": 1, "time": 1}))
    f2 = scalar_raw.frame(cbor2.dumps({"t": "ping", "rid": 2, "time": 2}))
    f3 = scalar_raw.frame(cbor2.dumps({"t": "ping", "rid": 3, "time": 3}))
    # byte by byte for the first frame
    for b in f1:
        await conn.send_raw(bytes([b]))
        await asyncio.sleep(0.005)
    # two frames in one write, then a header split from its body
    await conn.send_raw(f2 + f3[:1])
    await asyncio.sleep(0.05)
    await conn.send_raw(f3[1:])
    got = [await conn.recv() for _ in range(3)]
    assert got == [{"t": "pong", "rid": i, "time": i} for i in (1, 2, 3)], got


# -- bad-message: the connection stays open ------------------------------------

MALFORMED = {
    "lone-break": b"\xff",
    "reserved-additional-info": b"\x1c",
    "truncated-map": b"\xa2\x61t\x64ping",
    "truncated-text": b"\xa1\x61t\x64pi",
    "truncated-uint": b"\xa1\x63rid\x1a\x00\x00",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
@pytest.mark.parametrize("authenticated", [False, True])
async def test_malformed_cbor_is_bad_message(srv, body, authenticated):
    conn = await srv.connect()
    if authenticated:
        await conn.login()
    await conn.send_body(body)
    reply = await conn.recv()
    assert_error(reply, "bad-message")
    await conn.expect_quiet(0.2)
    await _assert_open(conn)


@pytest.mark.asyncio
async def test_each_undecodable_frame_gets_one_error(srv):
    conn = await srv.connect()
    await conn.login()
    bad = [b"\xff", cbor2.dumps([1]), b"\xa1\x61t", cbor2.dumps({"t": "ping"}) + b"\x00"]
    ping = cbor2.dumps({"t": "ping", "rid": 99})
    await conn.send_raw(b"".join(scalar_raw.frame(b) for b in [*bad, ping]))
    for _ in bad:
        reply = await conn.recv()
        assert reply["t"] == "error" and reply["code"] == "bad-message", reply
    assert await conn.recv() == {"t": "pong", "rid": 99}
    await conn.expect_quiet(0.3)


@pytest.mark.asyncio
async def test_trailing_bytes_is_bad_message_and_nothing_else(srv):
    conn = await srv.connect()
    await conn.login()
    await conn.send_body(cbor2.dumps({"t": "ping", "rid": 3, "time": 7}) + b"\x00")
    reply = await conn.recv()
    assert reply["t"] == "error" and reply["code"] == "bad-message", reply
    assert isinstance(reply.get("text"), str), reply
    # exactly one reply: the ping inside was not executed
    await conn.expect_quiet(0.3)
    await _assert_open(conn)


NON_MAPS = {
    "array": cbor2.dumps([1, 2]),
    "text": cbor2.dumps("ping"),
    "int": cbor2.dumps(5),
    "bytes": cbor2.dumps(b"\xa1"),
    "null": cbor2.dumps(None),
    "true": cbor2.dumps(True),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("body", list(NON_MAPS.values()), ids=list(NON_MAPS))
async def test_non_map_is_bad_message(srv, body):
    conn = await srv.connect()
    await conn.send_body(body)
    reply = await conn.recv()
    assert_error(reply, "bad-message")
    await conn.expect_quiet(0.2)
    await _assert_open(conn)


@pytest.mark.asyncio
async def test_map_with_non_text_key_is_bad_message(srv):
    conn = await srv.connect()
    # {"t": "ping", 1: "x"}
    await conn.send_body(b"\xa2\x61t\x64ping\x01\x61x")
    reply = await conn.recv()
    assert reply["t"] == "error" and reply["code"] == "bad-message", reply
    await conn.expect_quiet(0.2)
    await _assert_open(conn)


INVALID_UTF8 = {
    # {"t": "ping", "x": <text ff fe>}
    "in-value": b"\xa2\x61t\x64ping\x61x\x62\xff\xfe",
    # {"t": "ping", <text c3 28>: 1}
    "in-key": b"\xa2\x61t\x64ping\x62\xc3\x28\x01",
    # {"t": "pi\xffg"}
    "in-type": b"\xa1\x61t\x64pi\xffg",
    # overlong encoding of "/"
    "overlong": b"\xa2\x61t\x64ping\x61x\x62\xc0\xaf",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("body", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
async def test_invalid_utf8_is_bad_message(srv, body):
    conn = await srv.connect()
    await conn.login()
    await conn.send_body(body)
    reply = await conn.recv()
    assert reply["t"] == "error" and reply["code"] == "bad-message", reply
    assert isinstance(reply.get("text"), str), reply
    await conn.expect_quiet(0.2)
    await _assert_open(conn)


@pytest.mark.asyncio
async def test_invalid_utf8_in_published_body_is_bad_message(srv):
    conn = await srv.connect()
    await conn.login()
    ch = channel()
    await conn.sub(ch)
    rid = 11
    body = (
        b"\xa4\x61t\x63msg\x63rid"
        + bytes([rid])
        + b"\x65topic"
        + cbor2.dumps(ch)
        + b"\x64body\x63a\xffb"
    )
    await conn.send_body(body)
    reply = await conn.recv()
    assert reply["t"] == "error" and reply["code"] == "bad-message", reply
    await conn.expect_quiet(0.2)
    # nothing was published: the next event is seq 1
    echo = await conn.pub(ch, "ok")
    assert echo["seq"] == 1, echo


# -- rid -----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("authenticated", [False, True])
async def test_bad_message_echoes_rid_missing_t(srv, authenticated):
    conn = await srv.connect()
    if authenticated:
        await conn.login()
    await conn.send({"rid": 78})
    reply = await conn.recv()
    assert_error(reply, "bad-message", rid=78)
    await _assert_open(conn)


@pytest.mark.asyncio
async def test_bad_message_echoes_rid_missing_required_field(srv):
    conn = await srv.connect()
    await conn.login()
    reply = await conn.request({"t": "sub", "rid": 77})
    assert_error(reply, "bad-message", rid=77)
    await _assert_open(conn)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "rid",
    [-1, 2**32, 2**40, "7", b"\x07", True, [1], {"a": 1}, None],
    ids=["neg", "2^32", "2^40", "text", "bytes", "bool", "array", "map", "null"],
)
async def test_bad_rid_is_bad_message_without_rid(srv, rid):
    conn = await srv.connect()
    await conn.login()
    await conn.send({"t": "ping", "time": 1, "rid": rid})
    reply = await conn.recv()
    assert_error(reply, "bad-message", rid=None)
    await conn.expect_quiet(0.2)
    await _assert_open(conn)


@pytest.mark.asyncio
@pytest.mark.parametrize("rid", [0, 1, 23, 24, 255, 65536, 2**32 - 1])
async def test_rid_range_echoed(srv, rid):
    conn = await srv.connect()
    await conn.send({"t": "ping", "time": 3, "rid": rid})
    reply = await conn.recv()
    assert reply == {"t": "pong", "time": 3, "rid": rid}, reply


@pytest.mark.asyncio
async def test_requests_without_rid_get_reply_without_rid(srv):
    conn = await srv.connect()
    await conn.send({"t": "ident", "v": 1})
    reply = await conn.recv()
    assert reply["t"] == "ident" and "rid" not in reply, reply
    ch = channel()
    await conn.send({"t": "sub", "topic": ch})
    reply = await conn.recv()
    assert reply["t"] == "meta" and "rid" not in reply and reply["topic"] == ch, reply
    await conn.send({"t": "msg", "topic": ch, "body": "x"})
    reply = await conn.recv()
    assert reply["t"] == "event" and "rid" not in reply, reply
    scalar_raw.check_event(reply)
    await conn.expect_quiet(0.3)  # exactly one copy, even without rid
    await conn.send({"t": "sub", "topic": 5})
    reply = await conn.recv()
    assert_error(reply, "bad-message", rid=None)


# -- wrong field types ---------------------------------------------------------

WRONG_FIELDS = {
    "sub-topic-int": {"t": "sub", "topic": 5},
    "sub-topic-bytes": {"t": "sub", "topic": b"#x@test.example"},
    "sub-topic-null": {"t": "sub", "topic": None},
    "unsub-missing-topic": {"t": "unsub"},
    "msg-missing-body": {"t": "msg", "topic": "#wf@test.example"},
    "msg-missing-topic": {"t": "msg", "body": "x"},
    "msg-body-int": {"t": "msg", "topic": "#wf@test.example", "body": 5},
    "msg-body-bytes": {"t": "msg", "topic": "#wf@test.example", "body": b"x"},
    "msg-reply_to-31": {
        "t": "msg",
        "topic": "#wf@test.example",
        "body": "x",
        "reply_to": b"\x01" * 31,
    },
    "msg-reply_to-33": {
        "t": "msg",
        "topic": "#wf@test.example",
        "body": "x",
        "reply_to": b"\x01" * 33,
    },
    "msg-reply_to-text": {
        "t": "msg",
        "topic": "#wf@test.example",
        "body": "x",
        "reply_to": "a" * 32,
    },
    "msg-kind-int": {"t": "msg", "topic": "#wf@test.example", "body": "x", "kind": 1},
    "msg-ctype-int": {"t": "msg", "topic": "#wf@test.example", "body": "x", "ctype": 1},
    "catchup-missing-topic": {"t": "catchup"},
    "catchup-limit-text": {"t": "catchup", "topic": "#wf@test.example", "limit": "x"},
    "catchup-after-text": {"t": "catchup", "topic": "#wf@test.example", "after": "1"},
    "catchup-since-bytes": {"t": "catchup", "topic": "#wf@test.example", "since": b"1"},
    "topics-offset-text": {"t": "topics", "offset": "0"},
    "topics-limit-text": {"t": "topics", "limit": "10"},
    "topics-prefix-int": {"t": "topics", "prefix": 1},
    "ping-time-text": {"t": "ping", "time": "now"},
}


@pytest.mark.asyncio
@pytest.mark.parametrize("msg", list(WRONG_FIELDS.values()), ids=list(WRONG_FIELDS))
async def test_wrong_field_type_is_bad_message_with_rid(srv, msg):
    conn = await srv.connect()
    await conn.login()
    await conn.sub("#wf@test.example")
    reply = await conn.request({**msg, "rid": 4242})
    assert_error(reply, "bad-message", rid=4242)
    await conn.expect_quiet(0.2)
    await _assert_open(conn)


# -- unknown keys and types ---------------------------------------------------


@pytest.mark.asyncio
async def test_unknown_keys_ignored(srv):
    conn = await srv.connect()
    extra = {"zz-future": [1, {"a": b"x"}], "x": None}
    reply = await conn.request({"t": "ping", "time": 8, "rid": 1, **extra})
    assert reply == {"t": "pong", "time": 8, "rid": 1}, reply
    reply = await conn.request({"t": "ident", "v": 1, "client": "bb/1", **extra})
    assert reply["t"] == "ident", reply
    ch = channel()
    reply = await conn.request({"t": "sub", "topic": ch, **extra})
    assert reply["t"] == "meta" and reply["topic"] == ch, reply
    echo = await conn.request({"t": "msg", "topic": ch, "body": "b", **extra})
    assert echo["t"] == "event", echo
    scalar_raw.check_event(echo)
    assert "zz-future" not in echo and "x" not in echo, echo
    reply = await conn.request({"t": "catchup", "topic": ch, **extra})
    assert reply["t"] == "history", reply
    reply = await conn.request({"t": "topics", **extra})
    assert reply["t"] == "topics", reply
    reply = await conn.request({"t": "unsub", "topic": ch, **extra})
    assert reply["t"] == "ok", reply


@pytest.mark.asyncio
@pytest.mark.parametrize("authenticated", [False, True])
async def test_unknown_type(srv, authenticated):
    conn = await srv.connect()
    if authenticated:
        await conn.login()
    reply = await conn.request({"t": "frobnicate", "rid": 5})
    assert_error(reply, "unknown-type", rid=5)
    reply = await conn.request({"t": "SUB", "rid": 6, "topic": "#x@test.example"})
    assert_error(reply, "unknown-type", rid=6)
    await conn.expect_quiet(0.2)
    await _assert_open(conn)


# -- ping / pong / bye ---------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("authenticated", [False, True])
async def test_ping_pong_echo(srv, authenticated):
    conn = await srv.connect()
    if authenticated:
        await conn.login()
    t = scalar_raw.now_ms()
    await conn.send({"t": "ping", "time": t, "rid": 17})
    assert await conn.recv() == {"t": "pong", "time": t, "rid": 17}
    await conn.send({"t": "ping", "time": 12345})
    assert await conn.recv() == {"t": "pong", "time": 12345}
    await conn.send({"t": "ping", "rid": 18})
    assert await conn.recv() == {"t": "pong", "rid": 18}
    await conn.send({"t": "ping"})
    assert await conn.recv() == {"t": "pong"}
    for t in (0, -5, 2**63 - 1, -(2**63)):
        await conn.send({"t": "ping", "time": t, "rid": 1})
        assert await conn.recv() == {"t": "pong", "time": t, "rid": 1}
    await conn.expect_quiet(0.2)


@pytest.mark.asyncio
async def test_unsolicited_pong_gets_no_reply(srv):
    conn = await srv.connect()
    await conn.login()
    await conn.send({"t": "pong", "time": 1})
    await conn.expect_quiet(0.3)
    await _assert_open(conn)


@pytest.mark.asyncio
@pytest.mark.parametrize("authenticated", [False, True])
async def test_client_bye_closes_without_reply(srv, authenticated):
    conn = await srv.connect()
    if authenticated:
        await conn.login()
    await conn.send({"t": "bye", "reason": "done"})
    frames = await conn.expect_close(timeout=5)
    assert frames == [], f"bye gets no reply, got {frames!r}"


@pytest.mark.asyncio
async def test_float_or_tag_where_int_expected_is_bad_message(srv):
    conn = await srv.connect()
    await conn.login()
    # a pong echoing these would make the server send a float/tag, which it never does
    for value in (1.5, 2.0, cbor2.CBORTag(1, 5)):
        reply = await conn.request({"t": "ping", "time": value, "rid": 3})
        assert_error(reply, "bad-message", rid=3)
    ch = channel()
    await conn.sub(ch)
    reply = await conn.request({"t": "catchup", "topic": ch, "limit": 5.0, "rid": 4})
    assert_error(reply, "bad-message", rid=4)
    await _assert_open(conn)


@pytest.mark.asyncio
async def test_indefinite_length_input_tolerated_or_rejected(srv):
    conn = await srv.connect()
    # {_ "t": "ping", "rid": 6} with an indefinite-length map
    await conn.send_body(b"\xbf\x61t\x64ping\x63rid\x06\xff")
    reply = await conn.recv()
    assert reply == {"t": "pong", "rid": 6} or (
        reply["t"] == "error" and reply["code"] == "bad-message"
    ), reply
    await conn.expect_quiet(0.2)
    await _assert_open(conn)
