"""Matrix events <-> Scalar messages, the event-id map, membership (pure code)."""

from __future__ import annotations

from typing import Any

import pytest

from bridgehost.adapters.matrix.config import RelayOptions as Relayed
from bridgehost.adapters.matrix.eventmap import Bridged, EventMap, Sent
from bridgehost.adapters.matrix.events import (
    MAX_BODY_BYTES,
    Inbound,
    inbound,
    media_url,
    outbound,
    own_join_index,
    own_membership,
    sender_name,
    truncate_utf8,
    txn_id,
)
from bridgehost.scalar.events import Event
from bridgehost.web.links import PublicLinks

HS = "https://matrix.example.org"
ME = "@bridge:example.org"


def msg(content: dict[str, Any], etype: str = "m.room.message", **extra: Any) -> dict[str, Any]:
    return {"type": etype, "sender": "@a:x", "event_id": "$e", "content": content, **extra}


def conv(
    source: dict[str, Any], *, markdown: bool = False, relay: Relayed | None = None
) -> Inbound | None:
    return inbound(source, markdown=markdown, homeserver=HS, relay=relay or Relayed())


def scalar(body: str, **kw: Any) -> Event:
    fields: dict[str, Any] = {
        "id": bytes(range(32)),
        "topic": "#c@d",
        "seq": 1,
        "sender": "alice@d",
        "time": 0,
        "body": body,
    }
    fields.update(kw)
    return Event(**fields)


# --- Matrix -> Scalar ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("msgtype", "kind"), [("m.text", "text"), ("m.emote", "action"), ("m.notice", "notice")]
)
def test_msgtypes_become_kinds(msgtype: str, kind: str) -> None:
    assert conv(msg({"msgtype": msgtype, "body": "hi"})) == Inbound("hi", kind)


def test_formatted_body_becomes_text_or_markdown() -> None:
    content = {
        "msgtype": "m.text",
        "body": "fallback",
        "format": "org.matrix.custom.html",
        "formatted_body": "<b>bold</b> <i>it</i>",
    }
    assert conv(msg(content)) == Inbound("bold it")
    assert conv(msg(content), markdown=True) == Inbound("**bold** *it*", "text", "text/markdown")
    plain = {"msgtype": "m.text", "body": "*not markdown*"}
    assert conv(msg(plain), markdown=True) == Inbound("*not markdown*")


def test_reply_keeps_target_and_drops_fallback() -> None:
    content = {
        "msgtype": "m.text",
        "body": "> <@b:x> question\n\nanswer",
        "format": "org.matrix.custom.html",
        "formatted_body": "<mx-reply><blockquote>question</blockquote></mx-reply>answer",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$q"}},
    }
    assert conv(msg(content)) == Inbound("answer", reply_to_event="$q")
    del content["format"], content["formatted_body"]
    assert conv(msg(content)) == Inbound("answer", reply_to_event="$q")


def test_edit_is_an_edit_of_the_original() -> None:
    content = {
        "msgtype": "m.text",
        "body": " * fixed",
        "m.new_content": {"msgtype": "m.text", "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"},
    }
    assert conv(msg(content)) == Inbound("fixed", "edit", target_event="$orig")
    assert conv(msg(content), relay=Relayed(edits=False)) is None


def test_redaction_is_a_delete_of_the_target() -> None:
    red = msg({"redacts": "$gone", "reason": "oops"}, etype="m.room.redaction")
    assert conv(red) == Inbound("oops", "delete", target_event="$gone")
    assert conv(red, relay=Relayed(deletes=False)) is None
    old_style = msg({}, etype="m.room.redaction", redacts="$gone")
    assert conv(old_style) == Inbound("", "delete", target_event="$gone")


def test_reaction_is_a_react_with_its_key() -> None:
    rel = {"rel_type": "m.annotation", "event_id": "$t", "key": "👍"}
    assert conv(msg({"m.relates_to": rel}, etype="m.reaction")) == Inbound(
        "👍", "react", target_event="$t"
    )
    long = {**rel, "key": "é" * 100}
    made = conv(msg({"m.relates_to": long}, etype="m.reaction"))
    assert made is not None and made.body == "é" * 32
    assert (
        conv(msg({"m.relates_to": rel}, etype="m.reaction"), relay=Relayed(reactions=False)) is None
    )
    assert conv(msg({"m.relates_to": {**rel, "key": " "}}, etype="m.reaction")) is None


def test_topic_and_membership() -> None:
    topic = msg({"topic": "new topic"}, etype="m.room.topic", state_key="")
    assert conv(topic) == Inbound("new topic", "topic")
    huge = msg({"topic": "t" * 5000}, etype="m.room.topic", state_key="")
    made = conv(huge)
    assert made is not None and len(made.body.encode()) <= 1024  # a channel title's limit
    assert conv(topic, relay=Relayed(topic=False)) is None
    on = Relayed(membership=True)
    join = member("@bob:x", "join", content={"displayname": "Bob"})
    assert conv(join) is None  # off by default
    assert conv(join, relay=on) == Inbound("", "join", nick="Bob")
    rename = member(
        "@bob:x",
        "join",
        content={"displayname": "Robert"},
        unsigned={"prev_content": {"membership": "join", "displayname": "Bob"}},
    )
    assert conv(rename, relay=on) is None
    was = {"prev_content": {"membership": "join", "displayname": "Bob"}}
    leave = member("@bob:x", "leave", unsigned=was)
    assert conv(leave, relay=on) == Inbound("", "part", nick="Bob")
    kick = member("@bob:x", "leave", "@mod:x", content={"reason": "spam"}, unsigned=was)
    assert conv(kick, relay=on) == Inbound("kicked by @mod:x: spam", "part", nick="Bob")
    ban = member("@bob:x", "ban", "@mod:x", unsigned=was)
    assert conv(ban, relay=on) == Inbound("banned by @mod:x", "part", nick="Bob")


@pytest.mark.parametrize("msgtype", ["m.image", "m.file", "m.video", "m.audio"])
def test_media_becomes_name_and_download_url(msgtype: str) -> None:
    content = {"msgtype": msgtype, "body": "cat pic.png", "url": "mxc://example.org/AbC123"}
    made = conv(msg(content))
    assert made == Inbound(
        f"cat pic.png {HS}/_matrix/media/v3/download/example.org/AbC123/cat%20pic.png"
    )


def test_media_gets_bridgehost_signed_link_when_it_has_a_public_url() -> None:
    public = PublicLinks("https://chat.example.com/", b"k" * 32)
    content = {"msgtype": "m.image", "body": "cat pic.png", "url": "mxc://example.org/AbC123"}
    made = inbound(msg(content), markdown=False, homeserver=HS, media_link=public.media)
    assert made is not None
    name, url = made.body.rsplit(" ", 1)
    path = "/media/example.org/AbC123/cat%20pic.png"
    assert (name, url) == ("cat pic.png", f"https://chat.example.com{path}?sig={public.sign(path)}")
    sticker = inbound(
        msg({"body": "", "url": "mxc://s/x"}, etype="m.sticker"),
        markdown=False,
        homeserver=HS,
        media_link=public.media,
    )
    assert sticker is not None
    assert sticker.body.startswith("file https://chat.example.com/media/s/x/file?sig=")


def test_media_with_caption_and_encrypted_media() -> None:
    captioned = {
        "msgtype": "m.file",
        "body": "the report",
        "filename": "r.pdf",
        "url": "mxc://s/id",
    }
    made = conv(msg(captioned))
    assert made is not None
    assert made.body == f"the report: r.pdf {HS}/_matrix/media/v3/download/s/id/r.pdf"
    encrypted = {"msgtype": "m.image", "body": "x.png", "file": {"url": "mxc://s/id"}}
    made = conv(msg(encrypted))
    assert made is not None and made.body == "x.png (encrypted file, not bridged)"


def test_sticker_is_relayed_like_an_image() -> None:
    made = conv(msg({"body": "wave", "url": "mxc://s/st"}, etype="m.sticker"))
    assert made is not None and made.body.startswith("wave https://")


def test_other_events_become_nothing() -> None:
    assert conv(msg({"membership": "join"}, etype="m.room.member")) is None
    assert conv(msg({"name": "x"}, etype="m.room.name", state_key="")) is None
    assert conv(msg({"msgtype": "m.text", "body": "   "})) is None
    assert conv(msg("not a map")) is None  # type: ignore[arg-type]
    assert conv(msg({"algorithm": "x"}, etype="m.room.encrypted")) is None


def test_unknown_msgtype_falls_back_to_body() -> None:
    assert conv(msg({"msgtype": "org.example.custom", "body": "fallback"})) == Inbound("fallback")


def test_long_bodies_are_cut_to_fit_a_frame() -> None:
    made = conv(msg({"msgtype": "m.text", "body": "é" * 20000}))
    assert made is not None
    assert len(made.body.encode()) <= MAX_BODY_BYTES
    assert made.body.endswith("…")
    assert truncate_utf8("short") == "short"
    assert truncate_utf8("€€€€", 8) == "€…"


def test_media_url_rejects_what_is_not_mxc() -> None:
    assert media_url(HS, "https://x/y") is None
    assert media_url(HS, "mxc://server") is None
    assert media_url(HS, "mxc://server/a/b") is None
    assert media_url(HS + "/", "mxc://s/i") == f"{HS}/_matrix/media/v3/download/s/i"


# --- Scalar -> Matrix ----------------------------------------------------------------


def test_outbound_text_action_notice() -> None:
    c = outbound(scalar("hi <b>"))
    assert c == {
        "msgtype": "m.text",
        "body": "<alice> hi <b>",
        "format": "org.matrix.custom.html",
        "formatted_body": "<strong>alice</strong>: hi &lt;b&gt;",
        "m.mentions": {},
    }
    assert outbound(scalar("waves", kind="action"))["body"] == "alice waves"
    assert outbound(scalar("waves", kind="action"))["msgtype"] == "m.emote"
    assert outbound(scalar("auto", kind="notice"))["msgtype"] == "m.notice"


def test_outbound_markdown_and_nick() -> None:
    c = outbound(scalar("**x** <script>", ctype="text/markdown", nick="<Bob>"))
    assert c["body"] == "<<Bob>> **x** <script>"
    assert c["formatted_body"] == "<strong>&lt;Bob&gt;</strong>: <strong>x</strong> &lt;script&gt;"


def test_outbound_reply() -> None:
    c = outbound(scalar("yes"), reply_event_id="$q")
    assert c["m.relates_to"] == {"m.in_reply_to": {"event_id": "$q"}}


def test_sender_name_and_txn_id() -> None:
    assert sender_name(scalar("x")) == "alice"
    assert sender_name(scalar("x", sender="!irc-net@d", nick="bob")) == "bob"
    assert sender_name(scalar("x", sender="!ping@d")) == "ping"
    assert txn_id(scalar("x")) == txn_id(scalar("other body"))
    assert txn_id(scalar("x", id=bytes(32))) != txn_id(scalar("x"))


# --- membership ----------------------------------------------------------------------


def member(user: str, membership: str, sender: str | None = None, **kw: Any) -> dict[str, Any]:
    content = {"membership": membership, **kw.pop("content", {})}
    return {
        "type": "m.room.member",
        "state_key": user,
        "sender": sender or user,
        "content": content,
        **kw,
    }


def test_own_join_index_skips_profile_changes() -> None:
    events = [
        msg({"msgtype": "m.text", "body": "history"}),
        member(ME, "join"),
        msg({"msgtype": "m.text", "body": "live"}),
        member(ME, "join", unsigned={"prev_content": {"membership": "join"}}),
        member("@other:x", "join"),
    ]
    assert own_join_index(events, ME) == 1
    assert own_join_index(events[2:], ME) is None


def test_own_membership_kick_ban_leave() -> None:
    kick = own_membership([member(ME, "leave", "@mod:x", content={"reason": "spam"})], ME)
    assert kick is not None and kick.describe(ME) == (
        "removed",
        "kicked from the room by @mod:x: spam",
    )
    ban = own_membership([member(ME, "ban", "@mod:x")], ME)
    assert ban is not None and ban.describe(ME) == ("removed", "banned from the room by @mod:x")
    left = own_membership([member(ME, "leave")], ME)
    assert left is not None and left.describe(ME)[0] == "removed"
    assert own_membership([member("@x:y", "ban")], ME) is None


# --- event-id map --------------------------------------------------------------------


class DictKV:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set(self, key: str, value: bytes) -> None:
        self.data[key] = value

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def items(self, prefix: str = "") -> list[tuple[str, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))


async def test_event_map_both_ways_and_persisted() -> None:
    kv = DictKV()
    m = EventMap(kv)
    sid = bytes([7]) * 32
    m.remember("!r:x", "$e1", sid, nick="Bob", sender="@bob:x")
    m.remember("!r:x", "$merged", bytes([8]) * 32, merged=True)
    assert await m.scalar_id("$e1") == sid
    assert await m.bridged("$e1") == Bridged(sid, "Bob", "@bob:x")
    assert await m.event_id("!r:x", sid) == "$e1"
    assert await m.event_id("!other:x", sid) is None
    assert await m.sent("!r:x", bytes([8]) * 32) == Sent("$merged", merged=True)
    assert kv.data == {}  # written behind, not on the relay path
    await m.save()
    fresh = EventMap(kv)
    await fresh.load()
    assert await fresh.bridged("$e1") == Bridged(sid, "Bob", "@bob:x")
    assert await fresh.event_id("!r:x", sid) == "$e1"


async def test_event_map_forgets_the_oldest_beyond_capacity() -> None:
    kv = DictKV()
    m = EventMap(kv, capacity=1000)
    ids = [bytes([i % 256, i // 256]) * 16 for i in range(2000)]
    for i, sid in enumerate(ids):
        m.remember("!r:x", f"$e{i}", sid)
    await m.save()
    assert await m.scalar_id("$e0") is None
    assert await m.scalar_id("$e1999") == ids[1999]
    assert len(m.map) <= 1000


async def test_event_map_reads_entries_of_the_per_key_format() -> None:
    kv = DictKV()
    sid = bytes([9]) * 32
    kv.data["m2s:$old"] = sid
    kv.data[f"s2m:{sid.hex()}:!r:x"] = b"$old"
    m = EventMap(kv)
    await m.load()
    assert await m.scalar_id("$old") == sid
    assert await m.event_id("!r:x", sid) == "$old"
