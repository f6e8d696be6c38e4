"""Sans-IO framing and strict CBOR decoding (protocol §1, §9 framing rules)."""

import cbor2
import pytest

from bridgehost.scalar import wire
from bridgehost.scalar.errors import BadFrame, BadMessage
from bridgehost.scalar.wire import FrameDecoder


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(2, "little") + body


def test_encode_frame_is_u16_le_length_plus_cbor() -> None:
    data = wire.encode_frame({"t": "ping", "time": 5})
    assert data[:2] == (len(data) - 2).to_bytes(2, "little")
    assert cbor2.loads(data[2:]) == {"t": "ping", "time": 5}


def test_encode_frame_refuses_oversized_body() -> None:
    with pytest.raises(BadFrame):
        wire.encode_frame({"t": "msg", "body": "x" * wire.MAX_FRAME})


def test_frames_split_across_feeds_and_coalesced_in_one_feed() -> None:
    a = wire.encode_frame({"t": "ping", "rid": 1})
    b = wire.encode_frame({"t": "ping", "rid": 2})
    dec = FrameDecoder()
    stream = a + b
    out = []
    for i in range(len(stream)):
        out += dec.feed(stream[i : i + 1])
    assert out == [{"t": "ping", "rid": 1}, {"t": "ping", "rid": 2}]
    assert dec.feed(a + b + a[:3]) == [{"t": "ping", "rid": 1}, {"t": "ping", "rid": 2}]
    assert dec.buffered == 3


@pytest.mark.parametrize(
    "header", [b"\x00\x00", (wire.MAX_FRAME + 1).to_bytes(2, "little"), b"\xff\xff"]
)
def test_bad_header_is_fatal_without_waiting_for_a_body(header: bytes) -> None:
    dec = FrameDecoder()
    good = wire.encode_frame({"t": "ping"})
    out = dec.feed(good + header)
    assert out[0] == {"t": "ping"}
    assert isinstance(out[1], BadFrame) and out[1].code == "bad-frame"
    assert dec.failed
    with pytest.raises(BadFrame):
        dec.feed(good)


def test_largest_frame_is_accepted() -> None:
    body = cbor2.dumps({"t": "msg", "body": "x" * 100})
    pad = wire.MAX_FRAME - len(body)
    body = cbor2.dumps({"t": "msg", "body": "x" * (100 + pad)})
    # the text header grows by one byte past 255 chars; trim to exactly MAX_FRAME
    body = cbor2.dumps({"t": "msg", "body": "x" * (100 + pad - (len(body) - wire.MAX_FRAME))})
    assert len(body) == wire.MAX_FRAME
    assert FrameDecoder().feed(framed(body))[0]["t"] == "msg"  # type: ignore[index]


def _bad(body: bytes) -> BadMessage:
    [item] = FrameDecoder().feed(framed(body))
    assert isinstance(item, BadMessage), item
    return item


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("malformed", b"\xa1\x61"),
        ("trailing bytes", cbor2.dumps({"t": "ping"}) + b"\x00"),
        ("not a map", cbor2.dumps(["t", "ping"])),
        ("invalid utf-8", b"\xa1\x61t\x62\xc3\x28"),
        ("float", cbor2.dumps({"t": "ping", "time": 1.5})),
        ("tag", b"\xa2\x61t\x64ping\x64time\xc1\x01"),
        ("undefined", b"\xa1\x61t\xf7"),
        ("simple value", b"\xa1\x61t\xf0"),
        ("non-text key", cbor2.dumps({1: "x", "t": "ping"})),
        ("indefinite map", b"\xbf\x61t\x64ping\xff"),
        ("duplicate keys", b"\xa2\x61t\x64ping\x61t\x64pong"),
        ("deep nesting", b"\xa1\x61x" + b"\x81" * 40 + b"\x00"),
        ("huge nesting", b"\x81" * 16000 + b"\x00"),
    ],
)
def test_undecodable_bodies_are_bad_message(name: str, body: bytes) -> None:
    err = _bad(body)
    assert err.code == "bad-message"


def test_bad_message_carries_rid_when_in_range() -> None:
    assert _bad(cbor2.dumps({"t": "ping", "rid": 7, "x": 1.5})).rid == 7
    assert _bad(cbor2.dumps({"t": "ping", "rid": 2**32, "x": 1.5})).rid is None
    assert _bad(cbor2.dumps({"t": "ping", "rid": True, "x": 1.5})).rid is None


def test_connection_survives_a_bad_body() -> None:
    dec = FrameDecoder()
    out = dec.feed(framed(b"\xff") + wire.encode_frame({"t": "ping"}))
    assert isinstance(out[0], BadMessage)
    assert out[1] == {"t": "ping"}
    assert not dec.failed


@pytest.mark.parametrize("n", [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1])
def test_head_matches_cbor2(n: int) -> None:
    # an unsigned int is major type 0 with the same length encoding as map/array heads
    assert wire.head(0, n) == cbor2.dumps(n)
    assert wire.head(5, n)[0] >> 5 == 5
    assert wire.head(5, n)[1:] == cbor2.dumps(n)[1:]


def test_map_items_and_raw_array_roundtrip() -> None:
    for size in (3, 30, 300):
        m = {f"k{i}": i for i in range(size)}
        n, pairs = wire.map_items(cbor2.dumps(m))
        assert n == size
        assert cbor2.loads(wire.head(5, n) + pairs) == m
    items = [cbor2.dumps({"a": i}) for i in range(30)]
    raw = wire.map_with_raw_array({"t": "history", "rid": 3}, "events", items)
    assert cbor2.loads(raw) == {"t": "history", "rid": 3, "events": [{"a": i} for i in range(30)]}


def test_canonical_orders_shorter_keys_first_then_bytewise() -> None:
    data = wire.canonical({"bb": 1, "a": 2, "c": {"zz": 1, "y": 2}})
    assert data.hex() == "a3616102616" + "3a2617902627a7a01" + "62626201"
    assert list(cbor2.loads(data)) == ["a", "c", "bb"]
    assert list(cbor2.loads(data)["c"]) == ["y", "zz"]


@pytest.mark.parametrize("topic", ["#a@x", "#" + "b" * 200 + "@x.example"])
@pytest.mark.parametrize("body", ["", "y" * 300, "z" * 16000])
def test_lone_history_size_is_the_size_of_that_history_frame(topic: str, body: str) -> None:
    event = cbor2.dumps({"id": b"\0" * 32, "topic": topic, "body": body})
    frame = {
        "t": "history",
        "rid": 2**32 - 1,
        "topic": topic,
        "status": "ok",
        "more": False,
        "events": [cbor2.loads(event)],
    }
    assert wire.lone_history_size(topic, event) == len(cbor2.dumps(frame))
