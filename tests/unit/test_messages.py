"""Typed messages: field checks in §9 order, event construction, event ids."""

import hashlib
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest

from bridgehost.scalar import events as ev
from bridgehost.scalar import messages as m
from bridgehost.scalar.errors import BadMessage, BadTopic, ScalarError, UnknownType
from bridgehost.scalar.wire import canonical

VECTORS = Path(__file__).parent.parent / "vectors"


def test_requests_parse_with_defaults() -> None:
    assert m.parse_request({"t": "sub", "topic": "#A@X"}) == m.Sub(topic="#a@x")
    assert m.parse_request({"t": "unsub", "topic": "*", "rid": 3}) == m.Unsub(topic="*", rid=3)
    assert m.parse_request({"t": "msg", "topic": "#a@x", "body": "hi"}) == m.Msg("#a@x", "hi")
    assert m.parse_request({"t": "topics"}) == m.Topics(offset=0, limit=100)
    assert m.parse_request({"t": "catchup", "topic": "#a@x"}) == m.Catchup("#a@x", limit=50)
    assert m.parse_request({"t": "ping"}) == m.Ping()
    ident = m.parse_request(
        {"t": "ident", "v": 1, "id": "a@x", "auth": {"method": "password", "secret": "hunter2"}}
    )
    assert ident == m.Ident(v=1, id="a@x", method="password", secret="hunter2")
    assert "hunter2" not in repr(ident)


def test_unknown_keys_are_ignored() -> None:
    req = m.parse_request({"t": "msg", "topic": "#a@x", "body": "hi", "future": [1, {"x": b""}]})
    assert req == m.Msg("#a@x", "hi")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"t": "nope", "rid": 4}, UnknownType),
        ({"rid": 4}, BadMessage),
        ({"t": 5, "rid": 4}, BadMessage),
        ({"t": "sub", "rid": 4}, BadMessage),
        ({"t": "sub", "topic": 5, "rid": 4}, BadMessage),
        ({"t": "sub", "topic": "nope", "rid": 4}, BadTopic),
        ({"t": "msg", "topic": "#a@x", "rid": 4}, BadMessage),
        ({"t": "msg", "topic": "#a@x", "body": "b", "kind": "shout", "rid": 4}, BadMessage),
        ({"t": "msg", "topic": "#a@x", "body": "b", "reply_to": b"short", "rid": 4}, BadMessage),
        ({"t": "msg", "topic": "#a@x", "body": "b", "ctype": "text/html", "rid": 4}, BadMessage),
        ({"t": "msg", "topic": "#a@x", "body": "b", "nick": "n" * 65, "rid": 4}, BadMessage),
        ({"t": "msg", "topic": "bad topic", "body": 1, "rid": 4}, BadMessage),
        ({"t": "catchup", "topic": "#a@x", "after": 1, "since": 2, "rid": 4}, BadMessage),
        ({"t": "catchup", "topic": "#a@x", "limit": 0, "rid": 4}, BadMessage),
        ({"t": "catchup", "topic": "#a@x", "after": -1, "rid": 4}, BadMessage),
        ({"t": "topics", "limit": -3, "rid": 4}, BadMessage),
        ({"t": "topics", "limit": "5", "rid": 4}, BadMessage),
        ({"t": "ident", "rid": 4}, BadMessage),
        ({"t": "ident", "v": 1, "auth": {"method": "password"}, "rid": 4}, BadMessage),
    ],
)
def test_field_errors_carry_the_rid(body: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        m.parse_request(body)
    assert info.value.rid == 4  # type: ignore[attr-defined]


def test_type_errors_win_over_topic_syntax() -> None:
    with pytest.raises(BadMessage):
        m.parse_request({"t": "msg", "topic": "not a topic", "body": 5})


def test_invalid_rid_is_bad_message_without_rid() -> None:
    for rid in (-1, 2**32, "1", True):
        with pytest.raises(BadMessage) as info:
            m.parse_request({"t": "ping", "rid": rid})
        assert info.value.rid is None


def test_limit_is_capped_at_1000() -> None:
    assert m.parse_request({"t": "topics", "limit": 5000}) == m.Topics(limit=1000)


def test_event_core_omits_absent_fields_and_plain_ctype() -> None:
    core = ev.Event.core_map(
        topic="#a@x", seq=1, sender="a@x", time=5, body="hi", ctype="text/plain"
    )
    assert core == {
        "topic": "#a@x",
        "seq": 1,
        "from": "a@x",
        "time": 5,
        "kind": "text",
        "body": "hi",
    }


def test_encoded_event_frames() -> None:
    core = ev.Event.core_map(
        topic="#a@x",
        seq=3,
        sender="!b@x",
        time=5,
        body="hi",
        nick="N",
        origin="irc:a/#a",
        reply_to=b"\x01" * 32,
        ctype="text/markdown",
    )
    enc = ev.EncodedEvent.build(core)
    assert enc.id == hashlib.sha256(cbor2.dumps(core, canonical=True)).digest()
    stored = cbor2.loads(enc.stored)
    assert stored == {**core, "id": enc.id}
    assert enc.stored == cbor2.dumps(stored, canonical=True)
    assert cbor2.loads(enc.frame_body()) == {"t": "event", **stored}
    assert cbor2.loads(enc.frame_body(rid=9)) == {"t": "event", "rid": 9, **stored}
    event = ev.Event.from_map(stored)
    assert event.expected_id() == enc.id
    assert (event.sender, event.nick, event.ctype, event.content_type) == (
        "!b@x",
        "N",
        "text/markdown",
        "text/markdown",
    )


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: _from_json(v) for k, v in value.items()}
    return value


def test_golden_event_vectors() -> None:
    """Frozen encodings: a change here breaks every client that checks ids."""
    vectors = json.loads((VECTORS / "events.json").read_text())
    assert len(vectors) >= 3
    for vec in vectors:
        core = _from_json(vec["core"])
        enc = ev.EncodedEvent.build(core)
        assert canonical(core).hex() == vec["canonical_hex"], vec["name"]
        assert enc.id.hex() == vec["id_hex"], vec["name"]
        assert enc.frame_body().hex() == vec["event_frame_hex"], vec["name"]


def _independent_canonical(value: Any) -> bytes:
    """A second, minimal canonical CBOR encoder, to check cbor2 against."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
        raise ValueError(n)

    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(_independent_canonical(v) for v in value)
    if isinstance(value, dict):
        pairs = sorted(
            (_independent_canonical(k), _independent_canonical(v)) for k, v in value.items()
        )
        return head(5, len(value)) + b"".join(k + v for k, v in pairs)
    raise TypeError(value)


def test_golden_vectors_agree_with_an_independent_encoder() -> None:
    for vec in json.loads((VECTORS / "events.json").read_text()):
        core = _from_json(vec["core"])
        assert _independent_canonical(core).hex() == vec["canonical_hex"], vec["name"]
        assert hashlib.sha256(_independent_canonical(core)).hexdigest() == vec["id_hex"]


def test_replies_roundtrip() -> None:
    event = ev.Event(id=b"\x02" * 32, topic="#a@x", seq=1, sender="a@x", time=1, body="b")
    for msg in [
        m.Welcome(id="a@x", server="s", limits=m.Limits(16382, 5, 20, 500), rid=1),
        m.Meta(topic="#a@x", seq=3, subscribers=2, history=True, title="T", rid=2),
        m.Ok(rid=3),
        m.TopicList(total=1, offset=0, items=(m.TopicInfo("#a@x", 2, None),), rid=4),
        m.History(topic="#a@x", status="ok", events=(event,), more=False, rid=5),
        m.EventFrame(event=event, rid=6),
        m.Error(code="rate-limited", text="slow", retry_after=30, rid=7),
        m.Ping(time=5),
        m.Pong(time=5, rid=8),
        m.Bye(reason="shutdown"),
    ]:
        data = cbor2.loads(cbor2.dumps(msg.to_map()))
        assert m.parse_reply(data) == msg


def test_request_vectors() -> None:
    """Frozen request checks (§10 nonce, §11 kinds and target): the code each gets."""
    vectors = json.loads((VECTORS / "requests.json").read_text())
    assert len(vectors) >= 20
    for vec in vectors:
        body = _from_json(vec["body"])
        if vec["error"] is None:
            req = m.parse_request(body)
            assert req.rid == body["rid"], vec["name"]
            assert cbor2.loads(cbor2.dumps(req.to_map()))["t"] == body["t"]
            assert m.parse_request(req.to_map()) == req, vec["name"]
        else:
            with pytest.raises(ScalarError) as info:
                m.parse_request(body)
            assert info.value.code == vec["error"], vec["name"]
            assert info.value.rid == body["rid"], vec["name"]


def test_msg_carries_target_and_nonce() -> None:
    target = b"\x07" * 32
    req = m.parse_request(
        {
            "t": "msg",
            "topic": "#A@x",
            "kind": "edit",
            "body": "new",
            "target": target,
            "nonce": "abc",
        }
    )
    assert req == m.Msg("#a@x", "new", kind="edit", target=target, nonce="abc")
    assert req.to_map() == {
        "t": "msg",
        "topic": "#a@x",
        "body": "new",
        "kind": "edit",
        "target": target,
        "nonce": "abc",
    }
    deleted = m.parse_request({"t": "msg", "topic": "#a@x", "kind": "delete", "target": target})
    assert deleted == m.Msg("#a@x", "", kind="delete", target=target)


def test_event_target_is_part_of_the_id() -> None:
    base = dict(topic="#a@x", seq=2, sender="a@x", time=5, body="b", kind="react")
    one = ev.EncodedEvent.build(ev.Event.core_map(**base, target=b"\x01" * 32))
    two = ev.EncodedEvent.build(ev.Event.core_map(**base, target=b"\x02" * 32))
    assert one.id != two.id
    event = ev.Event.from_map(cbor2.loads(one.stored))
    assert event.target == b"\x01" * 32
    assert event.expected_id() == one.id
    assert cbor2.loads(one.stored)["target"] == b"\x01" * 32
    plain = ev.Event.from_map(
        cbor2.loads(
            ev.EncodedEvent.build(
                ev.Event.core_map(topic="#a@x", seq=1, sender="a@x", time=5, body="b")
            ).stored
        )
    )
    assert plain.target is None
    assert "target" not in plain.to_map()


def test_event_with_malformed_target_is_refused() -> None:
    stored = cbor2.loads(
        ev.EncodedEvent.build(
            ev.Event.core_map(
                topic="#a@x",
                seq=2,
                sender="a@x",
                time=5,
                body="b",
                kind="edit",
                target=b"\x01" * 32,
            )
        ).stored
    )
    stored["target"] = b"\x01" * 31
    with pytest.raises(BadMessage):
        ev.Event.from_map(stored)
