"""Property tests of the sans-IO core: round-trips, and hostile input only ever
yields messages or the protocol's own errors."""

import contextlib
from typing import Any

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from bridgehost.scalar import events as ev
from bridgehost.scalar import messages as m
from bridgehost.scalar.errors import BadFrame, BadMessage, ScalarError
from bridgehost.scalar.wire import MAX_FRAME, FrameDecoder, encode_frame

name = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=20)
domain = st.sampled_from(["example.com", "localhost", "a-b.c"])
topic = st.builds(lambda s, n, d: f"{s}{n}@{d}", st.sampled_from(["", "#", "!"]), name, domain)
rid = st.none() | st.integers(0, 2**32 - 1)
text = st.text(max_size=200)
opt_text = st.none() | st.text(min_size=1, max_size=64)
id32 = st.binary(min_size=32, max_size=32)
uint = st.integers(0, 2**63 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)  # every integer on the wire (§10)

event = st.builds(
    ev.Event,
    id=id32,
    topic=topic,
    seq=uint,
    sender=topic,
    time=st.integers(-(2**40), 2**45),
    body=text,
    kind=st.sampled_from(sorted(ev.KINDS)),
    nick=opt_text,
    reply_to=st.none() | id32,
    ctype=st.none() | st.just("text/markdown"),
    origin=opt_text,
    target=st.none() | id32,
)


def _valid_msg(*, kind: str, body: str, nick: str | None, target: bytes, **rest: Any) -> m.Msg:
    """A Msg that §11 allows: target only where the kind needs one, and so on."""
    if kind == "react":
        body = body.encode()[:64].decode(errors="ignore") or "+1"
    if kind in ev.MEMBERSHIP:
        nick = nick or "someone"
    return m.Msg(
        kind=kind, body=body, nick=nick, target=target if kind in ev.TARGETED else None, **rest
    )


requests = st.one_of(
    st.builds(
        m.Ident,
        v=st.just(1),
        id=st.none() | topic,
        method=st.none(),
        secret=st.none(),
        client=opt_text,
        rid=rid,
    ),
    st.builds(m.Sub, topic=topic, rid=rid),
    st.builds(m.Unsub, topic=topic | st.just("*"), rid=rid),
    st.builds(
        _valid_msg,
        topic=topic,
        body=text,
        kind=st.sampled_from(sorted(ev.KINDS)),
        reply_to=st.none() | id32,
        ctype=st.none() | st.sampled_from(sorted(ev.CTYPES)),
        nick=opt_text,
        origin=opt_text,
        target=id32,
        nonce=st.none() | st.text(min_size=1, max_size=16),
        rid=rid,
    ),
    st.builds(
        m.Topics, offset=uint, limit=st.integers(1, 1000), prefix=st.none() | st.just("#a"), rid=rid
    ),
    st.builds(m.Catchup, topic=topic, after=st.none() | uint, limit=st.integers(1, 1000), rid=rid),
    st.builds(m.Catchup, topic=topic, since=st.integers(-(2**40), 2**45), rid=rid),
    st.builds(m.Ping, time=st.none() | int64, rid=rid),
    st.builds(m.Pong, time=st.none() | int64, rid=rid),
    st.builds(m.Bye, reason=opt_text, rid=rid),
)

replies = st.one_of(
    st.builds(
        m.Welcome,
        id=topic,
        server=text,
        limits=st.builds(m.Limits, uint, uint, uint, uint),
        rid=rid,
    ),
    st.builds(
        m.Meta,
        topic=topic,
        seq=uint,
        subscribers=uint,
        history=st.booleans(),
        title=opt_text,
        rid=rid,
    ),
    st.builds(m.Ok, rid=rid),
    st.builds(
        m.TopicList,
        total=uint,
        offset=uint,
        rid=rid,
        items=st.lists(
            st.builds(m.TopicInfo, topic=topic, subscribers=uint, title=opt_text), max_size=5
        ).map(tuple),
    ),
    st.builds(
        m.History,
        topic=topic,
        status=st.sampled_from(["ok", "unavailable"]),
        events=st.lists(event, max_size=3).map(tuple),
        more=st.booleans(),
        rid=rid,
    ),
    st.builds(m.EventFrame, event=event, rid=rid),
    st.builds(
        m.Error,
        code=st.sampled_from(["bad-message", "rate-limited"]),
        text=text,
        retry_after=st.none() | uint,
        rid=rid,
    ),
)


def _roundtrip(msg: m.Message) -> m.Message | None:
    try:
        data = encode_frame(msg.to_map())
    except BadFrame:
        return None  # too big for one frame: the encoder refuses it, as it must
    [decoded] = FrameDecoder().feed(data)
    assert isinstance(decoded, dict)
    return decoded  # type: ignore[return-value]


@given(requests)
def test_requests_roundtrip(msg: m.Message) -> None:
    decoded = _roundtrip(msg)
    if decoded is not None:
        assert m.parse_request(decoded) == msg  # type: ignore[arg-type]


@given(replies)
def test_replies_roundtrip(msg: m.Message) -> None:
    decoded = _roundtrip(msg)
    if decoded is not None:
        assert m.parse_reply(decoded) == msg  # type: ignore[arg-type]


def _only_protocol_outcomes(data: bytes, chunk: int) -> None:
    dec = FrameDecoder()
    for i in range(0, len(data), chunk):
        if dec.failed:
            break
        for item in dec.feed(data[i : i + chunk]):
            if isinstance(item, ScalarError):
                assert isinstance(item, BadMessage | BadFrame)
                continue
            assert isinstance(item, dict)
            for parse in (m.parse_request, m.parse_reply):
                with contextlib.suppress(ScalarError):
                    parse(item)


@settings(max_examples=500, deadline=1000)
@given(st.binary(max_size=4000), st.integers(1, 64))
def test_arbitrary_bytes_never_escape_the_error_tree(data: bytes, chunk: int) -> None:
    _only_protocol_outcomes(data, chunk)


keys = st.sampled_from(
    [
        "t",
        "rid",
        "topic",
        "body",
        "kind",
        "v",
        "id",
        "auth",
        "limit",
        "after",
        "before",
        "since",
        "offset",
        "prefix",
        "reply_to",
        "nick",
        "origin",
        "ctype",
        "time",
        "events",
        "items",
        "seq",
        "from",
        "code",
        "limits",
        "subscribers",
        "status",
        "more",
        "total",
        "frame",
        "rate",
        "burst",
        "subs",
        "method",
        "secret",
        "history",
        "title",
        "text",
        "retry_after",
        "reason",
        "server",
    ]
) | st.text(max_size=8)
cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.text(max_size=20)
    | st.binary(min_size=0, max_size=40)
    | st.binary(min_size=32, max_size=32),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=6),
    max_leaves=24,
)
types = st.sampled_from(
    [
        "ident",
        "sub",
        "unsub",
        "msg",
        "topics",
        "catchup",
        "ping",
        "pong",
        "bye",
        "meta",
        "ok",
        "history",
        "event",
        "error",
        "x",
    ]
)


@settings(max_examples=600, deadline=1000)
@given(types, st.dictionaries(keys, cbor_values, max_size=8))
def test_well_framed_hostile_maps_only_raise_protocol_errors(t: str, body: dict[str, Any]) -> None:
    body = {"t": t, **body} if "t" not in body else body
    raw = cbor2.dumps(body)
    if len(raw) <= MAX_FRAME:
        _only_protocol_outcomes(len(raw).to_bytes(2, "little") + raw, 4096)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


_EVENT = ev.Event(
    id=b"\x01" * 32,
    topic="#a@x",
    seq=1,
    sender="!b@x",
    time=1,
    body="b",
    nick="n",
    reply_to=b"\x02" * 32,
    ctype="text/markdown",
    origin="o",
)
TEMPLATES = [
    msg.to_map()
    for msg in [
        m.Welcome(id="a@x", server="s", limits=m.Limits(16382, 5, 20, 500), rid=1),
        m.Meta(topic="#a@x", seq=3, subscribers=2, history=True, title="T", rid=2),
        m.TopicList(total=1, offset=0, items=(m.TopicInfo("#a@x", 2, "t"),), rid=4),
        m.History(topic="#a@x", status="ok", events=(_EVENT,), more=False, rid=5),
        m.EventFrame(event=_EVENT, rid=6),
        m.Error(code="rate-limited", text="slow", retry_after=30, rid=7),
        m.Ident(v=1, id="a@x", method="password", secret="s", client="c", rid=8),
        m.Msg(
            "#a@x",
            "b",
            kind="action",
            reply_to=b"\x03" * 32,
            ctype="text/markdown",
            nick="n",
            origin="o",
            rid=9,
        ),
        m.Catchup("#a@x", before=5, limit=10, rid=10),
        m.Topics(offset=1, limit=2, prefix="#a", rid=11),
    ]
]


@settings(max_examples=1500, deadline=1000)
@given(st.data())
def test_any_field_of_any_message_replaced_by_garbage(data: st.DataObject) -> None:
    template = data.draw(st.sampled_from(TEMPLATES))
    path = data.draw(st.sampled_from(_paths(template)))
    mutated = _replace(template, path, data.draw(cbor_values))
    raw = cbor2.dumps(mutated)
    _only_protocol_outcomes(len(raw).to_bytes(2, "little") + raw, 4096)
