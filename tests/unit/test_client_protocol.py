"""The sans-IO client connection: rids, answers, pongs and the end of a connection
are protocol state, tested without sockets."""

from typing import Any

import cbor2

from bridgehost.scalar.client_protocol import (
    Answer,
    ClientPhase,
    ClientProtocol,
    Closed,
    Delivery,
    Notice,
)
from bridgehost.scalar.continuity import Continuity
from bridgehost.scalar.events import EncodedEvent, Event
from bridgehost.scalar.messages import Ident, Msg, Ping, Sub, Welcome
from bridgehost.scalar.wire import FrameDecoder, encode_frame, frame


def _sent(proto: ClientProtocol) -> list[dict[str, Any]]:
    return [f for f in FrameDecoder().feed(proto.data_to_send()) if isinstance(f, dict)]


def _welcome(rid: int) -> bytes:
    return encode_frame(
        {
            "t": "ident",
            "rid": rid,
            "v": 1,
            "id": "a@x",
            "server": "s",
            "limits": {"frame": 16382, "rate": 5, "burst": 20, "subs": 500},
        }
    )


def _event(seq: int, rid: int | None = None) -> bytes:
    enc = EncodedEvent.build(
        Event.core_map(topic="#a@x", seq=seq, sender="b@x", time=1, body=f"m{seq}")
    )
    return frame(enc.frame_body(rid))


def test_ident_opens_and_answers_match_requests_by_rid() -> None:
    proto = ClientProtocol()
    rid = proto.request(Ident(id="a@x", method="password", secret="pw"))
    assert _sent(proto) == [
        {
            "t": "ident",
            "rid": rid,
            "v": 1,
            "id": "a@x",
            "auth": {"method": "password", "secret": "pw"},
        }
    ]
    assert proto.phase is ClientPhase.IDENT
    [answer] = proto.receive(_welcome(rid))
    assert isinstance(answer, Answer) and isinstance(answer.reply, Welcome)
    assert proto.open and proto.id == "a@x" and proto.limits is not None
    sub = proto.request(Sub(topic="#a@x"))
    pub = proto.request(Msg("#a@x", "hi", nonce="n"))
    assert sub != pub and list(proto.pending) == [sub, pub]
    data = (
        _event(2, rid=pub)
        + _event(1)
        + encode_frame(
            {"t": "meta", "rid": sub, "topic": "#a@x", "seq": 0, "subscribers": 1, "history": True}
        )
    )
    happenings = proto.receive(data[:7]) + proto.receive(data[7:])
    assert [type(h) for h in happenings] == [Answer, Delivery, Answer]
    assert isinstance(happenings[0], Answer) and happenings[0].rid == pub
    assert isinstance(happenings[0].request, Msg) and happenings[0].request.nonce == "n"
    assert not proto.pending


def test_pings_are_answered_whatever_else_arrives() -> None:
    proto = ClientProtocol()
    flood = b"".join(_event(i) for i in range(1, 500))
    happenings = proto.receive(flood + encode_frame({"t": "ping", "time": 7}))
    assert len(happenings) == 499
    assert _sent(proto) == [{"t": "pong", "time": 7}]
    rid = proto.request(Ping(time=9))
    _sent(proto)
    [answer] = proto.receive(encode_frame({"t": "pong", "rid": rid, "time": 9}))
    assert isinstance(answer, Answer)
    assert _sent(proto) == []  # a pong to our ping is not answered


def test_closed_is_state_not_a_queue_marker() -> None:
    proto = ClientProtocol()
    out = proto.receive(_event(1) + encode_frame({"t": "bye", "reason": "shutdown"}) + _event(2))
    assert [type(h) for h in out] == [Delivery, Closed]
    assert proto.phase is ClientPhase.CLOSED and proto.close_reason == "shutdown"
    assert proto.receive(_event(3)) == []
    assert proto.connection_lost() is None  # already over
    proto2 = ClientProtocol()
    assert proto2.connection_lost("reset") == Closed("reset")


def test_a_bad_header_from_the_server_ends_the_connection() -> None:
    proto = ClientProtocol()
    out = proto.receive(b"\x00\x00")
    assert out == [Closed("bad frame from the server")]
    assert proto.problems


def test_errors_without_a_waiting_request_are_notices() -> None:
    proto = ClientProtocol()
    rid = proto.request(Sub(topic="#a@x"))
    proto.forget(rid)
    out = proto.receive(
        encode_frame(
            {"t": "meta", "rid": rid, "topic": "#a@x", "seq": 0, "subscribers": 1, "history": True}
        )
        + encode_frame({"t": "error", "code": "bad-message", "text": "what"})
        + frame(cbor2.dumps({"t": "bogus"}))
    )
    assert [type(h) for h in out] == [Notice]
    assert proto.problems  # the unknown type is noted, not raised


def test_rids_skip_those_still_pending() -> None:
    proto = ClientProtocol()
    proto._next_rid = 2**32 - 1
    first = proto.request(Sub(topic="#a@x"))
    second = proto.request(Sub(topic="#a@x"))
    assert (first, second) == (2**32 - 1, 0)


def test_bye_is_sent_once() -> None:
    proto = ClientProtocol()
    proto.close("done")
    proto.close("again")
    assert _sent(proto) == [{"t": "bye", "reason": "done"}]


def _ev(seq: int, body: str = "", topic: str = "#a@x") -> Event:
    enc = EncodedEvent.build(
        Event.core_map(topic=topic, seq=seq, sender="b@x", time=1, body=body or f"m{seq}")
    )
    return Event.from_map(cbor2.loads(enc.stored))


def test_continuity_hands_over_what_was_missed_once_and_in_order() -> None:
    c = Continuity()
    for seq in (1, 2):
        assert c.live(_ev(seq))
    c.note(_ev(3, "mine"), echo=True)
    assert c.seen("#a@x") == 3
    assert c.hold("#a@x") and not c.hold("#a@x")
    assert not c.live(_ev(7))  # live while the gap is fetched: held
    missed = [_ev(3, "mine"), _ev(4), _ev(5), _ev(6), _ev(7)]
    out = c.release("#a@x", missed)
    assert [e.seq for e in out] == [4, 5, 6, 7]  # our echo and the duplicate 7 once
    assert c.seen("#a@x") == 7 and not c.holding("#a@x")
    assert c.live(_ev(8))
    assert c.release("#b@x", []) == []
