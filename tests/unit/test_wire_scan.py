"""Input that a server never expands (§10): the linear pre-scan in front of the CBOR decoder.

Every rejection class has golden bytes; the tag 28/29 "bomb" that froze the
server is refused; hypothesis compares the scan with an independent,
recursive reading of the rules over hostile CBOR, and the work done (lines
executed in `wire`, counted with a tracer, so no wall clock) stays linear in
the body's length.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridgehost.scalar import wire
from bridgehost.scalar.errors import BadMessage
from bridgehost.scalar.wire import FrameDecoder, decode_body

# --- counting work -----------------------------------------------------------------------

LINES_PER_BYTE = 40
"""Bound on the lines of `wire` executed per body byte (measured: about 15)."""


class TooMuchWork(Exception):
    pass


def work(data: bytes) -> tuple[int, object]:
    """(lines of wire.py executed, outcome) for decoding one body; stops past the bound."""
    cap = LINES_PER_BYTE * len(data) + 200
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count > cap:
                raise TooMuchWork(f"more than {cap} lines for {len(data)} bytes")
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == wire.__file__ else None

    outcome: object
    sys.settrace(calls)
    try:
        outcome = decode_body(data)
    except BadMessage as exc:
        outcome = exc
    finally:
        sys.settrace(None)
    return count, outcome


def refused(data: bytes) -> BadMessage:
    _, outcome = work(data)
    assert isinstance(outcome, BadMessage), outcome
    assert outcome.code == "bad-message"
    return outcome


# --- golden bytes --------------------------------------------------------------------------

PING = b"\xa2\x61t\x64ping"
"""The start of a two-pair map {"t": "ping", ...}: append one key and one value."""

REFUSED = [
    # tags, value sharing included
    ("tag 1 (epoch time)", PING + b"\x64time\xc1\x01", "tags"),
    ("tag 2 (bignum)", PING + b"\x64time\xc2\x41\x01", "tags"),
    ("tag 28 (shareable)", PING + b"\x61x\xd8\x1c\x80", "tags"),
    ("tag 29 (shared ref)", PING + b"\x61x\xd8\x1d\x00", "tags"),
    ("tag 55799 (self-describe)", b"\xd9\xd9\xf7\xa1\x61t\x64ping", "not a CBOR map"),
    ("tag inside an array", PING + b"\x61x\x82\x01\xc0\x60", "tags"),
    # floats and simple values other than true/false/null
    ("half float", PING + b"\x64time\xf9\x3c\x00", "floats"),
    ("single float", PING + b"\x64time\xfa\x3f\xc0\x00\x00", "floats"),
    ("double float", PING + b"\x64time\xfb\x3f\xf8" + bytes(6), "floats"),
    ("undefined", PING + b"\x61x\xf7", "floats"),
    ("simple value 16", PING + b"\x61x\xf0", "floats"),
    ("simple value 255", PING + b"\x61x\xf8\xff", "floats"),
    # indefinite lengths and reserved heads
    ("indefinite map", b"\xbf\x61t\x64ping\xff", "indefinite"),
    ("indefinite array", PING + b"\x61x\x9f\x01\xff", "indefinite"),
    ("indefinite text", PING + b"\x61x\x7f\x61a\xff", "indefinite"),
    ("indefinite bytes", PING + b"\x61x\x5f\x41a\xff", "indefinite"),
    ("lone break", PING + b"\x61x\xff", "indefinite"),
    ("reserved info 28", PING + b"\x61x\x1c", "indefinite"),
    # keys
    ("duplicate key", b"\xa2\x61t\x64ping\x61t\x64pong", "duplicate"),
    ("duplicate key, longer head", b"\xa2\x61t\x64ping\x78\x01t\x64pong", "duplicate"),
    ("duplicate key in a nested map", PING + b"\x61x\xa2\x61a\x01\x61a\x02", "duplicate"),
    ("integer key", b"\xa2\x61t\x64ping\x01\x02", "keys must be text"),
    ("byte string key", b"\xa2\x61t\x64ping\x41t\x02", "keys must be text"),
    ("array key", b"\xa2\x61t\x64ping\x80\x02", "keys must be text"),
    # UTF-8
    ("invalid UTF-8 value", PING + b"\x61x\x62\xc3\x28", "UTF-8"),
    ("invalid UTF-8 key", b"\xa2\x61t\x64ping\x62\xc3\x28\x01", "UTF-8"),
    ("overlong UTF-8", PING + b"\x61x\x62\xc0\xaf", "UTF-8"),
    ("UTF-8 surrogate", PING + b"\x61x\x63\xed\xa0\x80", "UTF-8"),
    # nesting and item counts
    ("17 levels of nesting", PING + b"\x61x" + b"\x81" * 15 + b"\xa0", "nesting"),
    ("array announcing 2^32 items", PING + b"\x61x\x9a\xff\xff\xff\xff\x00", "more data items"),
    ("map announcing 2^64-1 pairs", b"\xbb" + b"\xff" * 8 + b"\x61t\x64ping", "more data items"),
    ("array longer than the body", PING + b"\x61x\x83\x01\x02", "more data items"),
    # integers beyond 64 bits (signed)
    ("2^63", PING + b"\x64time\x1b\x80" + bytes(7), "64 bits"),
    ("2^64 - 1", PING + b"\x64time\x1b" + b"\xff" * 8, "64 bits"),
    ("-2^63 - 1", PING + b"\x64time\x3b\x80" + bytes(7), "64 bits"),
    # shape
    ("not a map", cbor2.dumps(["t", "ping"]), "not a CBOR map"),
    ("trailing bytes", cbor2.dumps({"t": "ping"}) + b"\x00", "trailing"),
    ("truncated head", PING + b"\x64time\x1b\x00", "truncated"),
    ("truncated text", PING + b"\x61x\x65ab", "truncated"),
    ("missing value", b"\xa2\x61t\x64ping\x61x", "truncated"),
]


@pytest.mark.parametrize(("name", "body", "why"), REFUSED, ids=[r[0] for r in REFUSED])
def test_each_rejection_class_is_bad_message(name: str, body: bytes, why: str) -> None:
    err = refused(body)
    assert why in err.text, err.text
    [item] = FrameDecoder().feed(len(body).to_bytes(2, "little") + body)
    assert isinstance(item, BadMessage)


ACCEPTED = [
    ("int64 max", PING + b"\x61x\x1b\x7f" + b"\xff" * 7, 2**63 - 1),
    ("int64 min", PING + b"\x61x\x3b\x7f" + b"\xff" * 7, -(2**63)),
    ("true, false, null", PING + b"\x61x\x83\xf5\xf4\xf6", [True, False, None]),
    ("non-preferred lengths", PING + b"\x61x\x79\x00\x02ab", "ab"),
    ("valid UTF-8", PING + b"\x61x\x63\xe2\x82\xac", "\u20ac"),
    ("bytes and an empty map", PING + b"\x61x\x82\x42\x00\xff\xa0", [b"\x00\xff", {}]),
    (
        "16 levels of nesting",
        PING + b"\x61x" + b"\x81" * 14 + b"\xa0",
        [[[[[[[[[[[[[[{}]]]]]]]]]]]]]],
    ),
]


@pytest.mark.parametrize(("name", "body", "value"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_allowed_input_decodes(name: str, body: bytes, value: object) -> None:
    _, decoded = work(body)
    assert decoded == {"t": "ping", "x": value}


def test_the_error_keeps_the_rid_wherever_it_is() -> None:
    after = cbor2.dumps({"t": "ping", "time": 1.5, "rid": 3})
    assert refused(after).rid == 3
    before = cbor2.dumps({"rid": 4, "x": cbor2.CBORTag(28, [])})
    assert refused(before).rid == 4
    assert refused(cbor2.dumps({"rid": 2**32, "x": 1.5})).rid is None
    assert refused(cbor2.dumps({"rid": -1, "x": 1.5})).rid is None
    assert refused(b"\xa3\x63rid\x01\x61x\xf7\x63rid\x02").rid is None  # two rids: neither


# --- the value-sharing bomb ---------------------------------------------------------------


def sharing_bomb(levels: int, width: int) -> bytes:
    """{"t": "ping", "x": 28([28([...], 29(n) x (width-1))...])}: each level holds the
    level below once and refers to it width-1 times, so walking the decoded value
    visits width**levels nodes."""

    def level(k: int) -> bytes:
        if k == 0:
            return b"\xd8\x1c\x80"
        ref = b"\xd8\x1d" + cbor2.dumps(levels - k)
        return b"\xd8\x1c" + bytes([0x80 | width]) + level(k - 1) + ref * (width - 1)

    return PING + b"\x61x" + level(levels - 1)


def test_the_196_byte_bomb_is_refused_with_little_work() -> None:
    bomb = sharing_bomb(15, 4)  # 4**15 paths through the shared values
    pad = 196 - len(bomb) - 3
    body = b"\xa3" + bomb[1:] + b"\x61p" + bytes([0x60 | pad]) + b"p" * pad
    assert len(body) == 196
    count, outcome = work(body)
    assert isinstance(outcome, BadMessage) and "tags" in outcome.text
    # refused at the first tag; skimming the rest for a `rid` is linear too
    assert count <= LINES_PER_BYTE * len(body)


@pytest.mark.parametrize("levels", [4, 8, 12, 15])
@pytest.mark.parametrize("width", [2, 4, 6])
def test_sharing_bombs_of_any_shape_are_refused(levels: int, width: int) -> None:
    refused(sharing_bomb(levels, width))


def test_work_is_linear_in_the_body_for_inputs_refused_at_the_very_end() -> None:
    """The costliest refusals: everything valid up to one bad byte at the end."""
    counts = []
    for n in (100, 400, 1600, 3200):
        items = b"".join(b"\x8f" + b"\x81" * 12 + b"\xa1\x61k\x01" + b"\x01" * 14 for _ in range(n))
        body = b"\xa2\x61t\x64ping\x61x" + wire.head(4, n + 1) + items + b"\xf9\x00\x00"
        assert len(body) <= 200_000
        count, outcome = work(body)
        assert isinstance(outcome, BadMessage) and "floats" in outcome.text
        counts.append(count / len(body))
    assert max(counts) <= 1.1 * min(counts), counts


# --- hypothesis: hostile CBOR against an independent reading ------------------------------


class Refused(Exception):
    pass


def reference(data: bytes) -> object:
    """A recursive, value-building reading of §1 and §10 (fine for small inputs only)."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if n > len(data) - pos:
            raise Refused("truncated")
        chunk = data[pos : pos + n]
        pos += n
        return chunk

    def item(depth: int) -> object:
        (b,) = take(1)
        major, info = b >> 5, b & 31
        if major == 6:
            raise Refused("tag")
        if major == 7:
            if info in (20, 21, 22):
                return {20: False, 21: True, 22: None}[info]
            raise Refused("float or simple")
        if info > 27:
            raise Refused("indefinite or reserved")
        arg = int.from_bytes(take(1 << (info - 24)), "big") if info >= 24 else info
        if major == 0:
            if arg >= 2**63:
                raise Refused("int")
            return arg
        if major == 1:
            if arg >= 2**63:
                raise Refused("int")
            return -1 - arg
        if major == 2:
            return take(arg)
        if major == 3:
            try:
                return take(arg).decode("utf-8")
            except UnicodeDecodeError:
                raise Refused("utf-8") from None
        count = arg if major == 4 else 2 * arg
        if count > len(data) - pos:
            raise Refused("count")
        if depth == 16:
            raise Refused("depth")
        if major == 4:
            return [item(depth + 1) for _ in range(arg)]
        out: dict[str, object] = {}
        for _ in range(arg):
            key = item(depth + 1)
            if not isinstance(key, str) or key in out:
                raise Refused("key")
            out[key] = item(depth + 1)
        return out

    if not data or data[0] >> 5 != 5:
        raise Refused("not a map")
    value = item(0)
    if pos != len(data):
        raise Refused("trailing")
    return value


def raw_head(major: int, arg: int, wide: int) -> bytes:
    """A CBOR head, in its shortest form or (wide > 0) a longer one when the value fits."""
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 24 and not wide:
            return bytes([major << 5 | arg])
        if arg < 1 << (8 * width) and width >= wide:
            return bytes([major << 5 | info]) + arg.to_bytes(width, "big")
    raise ValueError(arg)


wide = st.sampled_from([0, 0, 0, 1, 2, 4, 8])
u64 = st.one_of(
    st.integers(0, 30), st.integers(0, 2**64 - 1), st.sampled_from([2**63 - 1, 2**63, 2**64 - 1])
)
names = st.sampled_from(["t", "rid", "x", "a", "topic"]) | st.text(max_size=4)


@st.composite
def text_item(draw: st.DrawFn, *, valid: bool = True) -> bytes:
    data = draw(st.text(max_size=8)).encode() if valid else draw(st.binary(max_size=6))
    return raw_head(3, len(data), draw(wide)) + data


ints = st.builds(lambda v, w: raw_head(0, v, w), u64, wide) | st.builds(
    lambda v, w: raw_head(1, v, w), u64, wide
)
leaves = st.one_of(
    ints,
    st.builds(lambda b, w: raw_head(2, len(b), w) + b, st.binary(max_size=8), wide),
    text_item(),
    text_item(valid=False),
    st.sampled_from(
        [
            b"\xf4",
            b"\xf5",
            b"\xf6",
            b"\xf7",
            b"\xf0",
            b"\xf8\x20",
            b"\xf9\x3c\x00",
            b"\xfa\x3f\xc0\x00\x00",
            b"\xfb" + bytes(8),
            b"\xff",
            b"\x1c",
            b"\x5f\xff",
        ]
    ),
)


def containers(kids: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    named = st.builds(lambda n: raw_head(3, len(n.encode()), 0) + n.encode(), names)
    keys = st.integers(0, 4).flatmap(lambda i: named if i < 3 else text_item() if i == 3 else kids)
    pairs = st.lists(st.tuples(keys, kids), max_size=4)
    tags = st.sampled_from([0, 1, 2, 3, 28, 29, 55799, 2**32])
    arrays = st.builds(
        lambda xs, w: raw_head(4, len(xs), w) + b"".join(xs), st.lists(kids, max_size=4), wide
    )
    maps = st.builds(
        lambda ps, w: raw_head(5, len(ps), w) + b"".join(k + v for k, v in ps), pairs, wide
    )
    hostile = st.one_of(
        st.builds(lambda xs: b"\x9f" + b"".join(xs) + b"\xff", st.lists(kids, max_size=3)),
        st.builds(lambda t, x: raw_head(6, t, 0) + x, tags, kids),
        st.builds(lambda n, x: b"\x81" * n + x, st.integers(8, 20), kids),
        st.builds(lambda x, n: raw_head(4, n, 0) + x, kids, st.integers(2, 2**40)),
    )
    return st.integers(0, 9).flatmap(lambda i: arrays if i < 4 else maps if i < 8 else hostile)


items = st.recursive(leaves, containers, max_leaves=20)
top_pairs = st.lists(
    st.tuples(st.builds(lambda n: raw_head(3, len(n.encode()), 0) + n.encode(), names), items),
    min_size=1,
    max_size=5,
)
top_maps = st.builds(lambda ps: raw_head(5, len(ps), 0) + b"".join(k + v for k, v in ps), top_pairs)
bodies = st.integers(0, 9).flatmap(
    lambda i: (
        top_maps
        if i < 7
        else items
        if i == 7
        else st.binary(min_size=1, max_size=64)
        if i == 8
        else st.builds(lambda b: b"\xa2" + b, st.binary(max_size=64))
    )
)
"""Mostly maps, as a frame body should be; some other items and plain noise."""


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    body = draw(bodies)
    mutate = draw(st.sampled_from(["none", "none", "flip", "cut", "append"]))
    if mutate == "flip" and body:
        i = draw(st.integers(0, len(body) - 1))
        body = body[:i] + bytes([draw(st.integers(0, 255))]) + body[i + 1 :]
    elif mutate == "cut" and len(body) > 1:
        body = body[: draw(st.integers(1, len(body) - 1))]
    elif mutate == "append":
        body += draw(st.binary(min_size=1, max_size=3))
    return body


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile())
def test_scan_agrees_with_the_reference_and_work_stays_linear(body: bytes) -> None:
    try:
        expected: object = reference(body)
    except Refused:
        expected = Refused
    count, outcome = work(body)
    if expected is Refused:
        assert isinstance(outcome, BadMessage), (body.hex(), outcome)
    else:
        assert outcome == expected, body.hex()
        assert cbor2.loads(body) == expected
    assert count <= LINES_PER_BYTE * len(body) + 200
