"""Scalar -> Matrix actions for every kind, mentions, and burst merging (pure)."""

from __future__ import annotations

from typing import Any

from bridgehost.adapters.matrix.config import RelayOptions as Relayed
from bridgehost.adapters.matrix.mentions import addressed, member_index, pill
from bridgehost.adapters.matrix.outgoing import Redact, Send, SetTopic, burst, merged, plan
from bridgehost.scalar.events import Event

ON = Relayed()


def ev(body: str, kind: str = "text", **kw: Any) -> Event:
    fields: dict[str, Any] = {
        "id": bytes(32),
        "topic": "#c@d",
        "seq": 1,
        "sender": "!irc-x@d",
        "time": 1000,
        "body": body,
        "kind": kind,
        "nick": "bob",
        "origin": "irc:x/#c",
    }
    fields.update(kw)
    return Event(**fields)


def test_message_with_reply() -> None:
    action = plan(ev("hi"), relay=ON, reply_event_id="$q")
    assert isinstance(action, Send) and action.event_type == "m.room.message"
    assert action.content["body"] == "<bob> hi"
    assert action.content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$q"}}
    assert action.content["m.mentions"] == {}


def test_edit_replaces_the_mapped_event() -> None:
    action = plan(ev("fixed", kind="edit"), relay=ON, target_event_id="$orig")
    assert isinstance(action, Send)
    c = action.content
    assert c["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$orig"}
    assert c["m.new_content"]["body"] == "<bob> fixed"
    assert c["m.new_content"]["msgtype"] == "m.text"
    assert c["body"] == "* <bob> fixed"
    assert c["formatted_body"] == "* <strong>bob</strong>: fixed"


def test_edit_of_an_unknown_target_is_a_new_message() -> None:
    action = plan(ev("fixed", kind="edit"), relay=ON)
    assert isinstance(action, Send)
    assert action.content["body"] == "<bob> * fixed" and "m.relates_to" not in action.content
    assert plan(ev("fixed", kind="edit"), relay=Relayed(edits=False), target_event_id="$o") is None


def test_delete_redacts_react_annotates_topic_sets() -> None:
    assert plan(ev("", kind="delete"), relay=ON, target_event_id="$t") == Redact(
        "$t", "deleted by bob"
    )
    assert plan(ev("spam", kind="delete"), relay=ON, target_event_id="$t") == Redact(
        "$t", "deleted by bob: spam"
    )
    assert plan(ev("", kind="delete"), relay=ON) is None
    assert plan(ev("", kind="delete"), relay=Relayed(deletes=False), target_event_id="$t") is None
    react = plan(ev("👍", kind="react"), relay=ON, target_event_id="$t")
    assert react == Send(
        "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$t", "key": "👍"}}
    )
    assert plan(ev("👍", kind="react"), relay=ON) is None
    assert plan(ev("new topic", kind="topic"), relay=ON) == SetTopic("new topic")
    assert plan(ev("new topic", kind="topic"), relay=Relayed(topic=False)) is None


def test_membership_notices_only_when_on() -> None:
    assert plan(ev("", kind="join"), relay=ON) is None
    on = Relayed(membership=True)
    join = plan(ev("", kind="join"), relay=on)
    assert isinstance(join, Send) and join.content["body"] == "bob joined"
    assert join.content["msgtype"] == "m.notice"
    part = plan(ev("netsplit a.b c.d", kind="part"), relay=on)
    assert isinstance(part, Send) and part.content["body"] == "bob left (netsplit a.b c.d)"


def test_unknown_kinds_do_nothing() -> None:
    assert plan(ev("online", kind="presence"), relay=ON) is None
    assert plan(ev("?", kind="future"), relay=ON) is None


def test_mention_becomes_a_pill_with_m_mentions() -> None:
    members = member_index(
        [("@bob:x", "Bob Smith"), ("@carol:x", None), ("@bridge:x", "bridge"), ("@c2:x", "Carol")],
        own="@bridge:x",
    )
    # Two members answer to "carol" (a local part and a display name): no pill for it.
    assert members == {"bob smith": "@bob:x", "bob": "@bob:x", "c2": "@c2:x"}
    assert addressed("Bob Smith: are you there?", members) == ("Bob Smith", "@bob:x")
    assert addressed("bob, hi", members) == ("bob", "@bob:x")
    assert addressed("bridge: hi", members) is None
    assert addressed("http://bob: x", members) is None
    assert addressed("hello bob: x", members) is None
    action = plan(ev("Bob Smith: <hi>"), relay=ON, mention=("Bob Smith", "@bob:x"))
    assert isinstance(action, Send)
    c = action.content
    assert c["m.mentions"] == {"user_ids": ["@bob:x"]}
    assert c["formatted_body"] == f"<strong>bob</strong>: {pill('@bob:x', 'Bob Smith')}: &lt;hi&gt;"
    assert pill("@bob:x", "<B>") == '<a href="https://matrix.to/#/@bob:x">&lt;B&gt;</a>'
    off = plan(ev("Bob Smith: hi"), relay=Relayed(mentions=False), mention=("Bob Smith", "@bob:x"))
    assert isinstance(off, Send) and off.content["m.mentions"] == {}


def test_burst_merges_consecutive_lines_of_one_speaker() -> None:
    lines = [ev(f"line {i}", time=1000 + 30 * i, seq=i + 1) for i in range(5)]
    assert burst(lines, window_ms=100, max_bytes=10000) == 5
    assert merged(lines[:5]).body == "\n".join(f"line {i}" for i in range(5))
    assert merged(lines[:1]) is lines[0]
    slow = [ev("a", time=0), ev("b", time=150)]
    assert burst(slow, window_ms=100, max_bytes=10000) == 1
    others = [ev("a"), ev("b", nick="carol"), ev("c")]
    assert burst(others, window_ms=100, max_bytes=10000) == 1
    kinds = [ev("a"), ev("b", kind="action")]
    assert burst(kinds, window_ms=100, max_bytes=10000) == 1
    reply = [ev("a"), ev("b", reply_to=bytes(32))]
    assert burst(reply, window_ms=100, max_bytes=10000) == 1
    assert burst(lines, window_ms=0, max_bytes=10000) == 1
    assert burst(lines, window_ms=100, max_bytes=13) == 2
    assert burst([], window_ms=100, max_bytes=10) == 0
