"""Events (protocol §4): what subscribers receive, and how their ids are made.

`EncodedEvent` is the server's form: the event's CBOR is computed once and the
same bytes are stored, fanned out and echoed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cbor2

from .fields import Fields, omit_none
from .wire import CborMap, canonical, head, map_items

KINDS = frozenset(
    {"text", "action", "notice", "presence", "edit", "delete", "react", "join", "part", "topic"}
)
"""Every `kind` of §4 and §11; anything else in a `msg` is `bad-message`."""
TARGETED = frozenset({"edit", "delete", "react"})
"""Kinds that act on an earlier event named by `target` (§11): it is required for them
and meaningless for every other kind."""
MEMBERSHIP = frozenset({"join", "part"})
"""Kinds only reserved IDs publish, always with the remote person's `nick` (§11)."""
OPTIONAL_BODY = frozenset({"delete", "join", "part"})
"""Kinds whose `body` is an optional reason: absent in a `msg` means empty."""
EDITABLE = frozenset({"text", "action", "notice"})
"""Kinds whose body is someone's words, and so can be edited."""
MAX_TITLE = 1024
"""Largest channel title (`topic` body) in UTF-8 bytes: it must fit `meta` and a
`topics` page beside other items."""
MAX_REACTION = 64
"""Largest `react` body (the reaction key) in UTF-8 bytes."""
CTYPES = frozenset({"text/plain", "text/markdown"})


@dataclass(frozen=True, slots=True)
class Event:
    """What subscribers get: in `event` frames and in `history` replies."""

    id: bytes
    topic: str
    seq: int
    sender: str
    time: int
    body: str
    kind: str = "text"
    nick: str | None = None
    reply_to: bytes | None = None
    ctype: str | None = None
    origin: str | None = None
    target: bytes | None = None
    """The `id` of the earlier event an edit, delete or react is about (§11)."""

    @staticmethod
    def core_map(
        *,
        topic: str,
        seq: int,
        sender: str,
        time: int,
        body: str,
        kind: str = "text",
        nick: str | None = None,
        reply_to: bytes | None = None,
        ctype: str | None = None,
        origin: str | None = None,
        target: bytes | None = None,
    ) -> CborMap:
        """The map an id is computed over: absent optionals omitted, never null."""
        return omit_none(
            {
                "topic": topic,
                "seq": seq,
                "from": sender,
                "time": time,
                "kind": kind,
                "body": body,
                "nick": nick,
                "reply_to": reply_to,
                "ctype": None if ctype == "text/plain" else ctype,
                "origin": origin,
                "target": target,
            }
        )

    def to_map(self) -> CborMap:
        m = Event.core_map(
            topic=self.topic,
            seq=self.seq,
            sender=self.sender,
            time=self.time,
            body=self.body,
            kind=self.kind,
            nick=self.nick,
            reply_to=self.reply_to,
            ctype=self.ctype,
            origin=self.origin,
            target=self.target,
        )
        m["id"] = self.id
        return m

    def expected_id(self) -> bytes:
        m = self.to_map()
        del m["id"]
        return compute_id(m)

    @property
    def content_type(self) -> str:
        return self.ctype or "text/plain"

    @classmethod
    def from_map(cls, m: CborMap) -> Event:
        f = Fields(m)
        ident = f._get("id", lambda v: isinstance(v, bytes) and len(v) == 32, "32 bytes", True)
        kind = f.text("kind") or "text"
        return cls(
            id=ident,
            topic=f.text("topic", True),
            seq=f.uint("seq", True),
            sender=f.text("from", True),
            time=f.integer("time", True),
            body=f.text("body", True),
            kind=kind,
            nick=f.text("nick"),
            reply_to=f.id32("reply_to"),
            ctype=f.text("ctype"),
            origin=f.text("origin"),
            target=f.id32("target"),
        )


def compute_id(core: CborMap) -> bytes:
    return hashlib.sha256(canonical(core)).digest()


_T_EVENT = cbor2.dumps("t") + cbor2.dumps("event")
_RID_KEY = cbor2.dumps("rid")
_ID_KEY = cbor2.dumps("id")


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event's CBOR, computed once: what is stored, fanned out and echoed.

    `pairs` are the encoded key/value pairs of the event map (id first, which
    is also the canonical position), so a frame is a map header plus `t`
    (and `rid`) plus these bytes, with no re-encoding per subscriber.
    """

    id: bytes
    count: int
    pairs: bytes

    @classmethod
    def build(cls, core: CborMap) -> EncodedEvent:
        core_bytes = canonical(core)
        eid = hashlib.sha256(core_bytes).digest()
        n, pairs = map_items(core_bytes)
        return cls(eid, n + 1, _ID_KEY + cbor2.dumps(eid) + pairs)

    @classmethod
    def from_stored(cls, data: bytes) -> EncodedEvent:
        """The form `stored` returned, read back from history."""
        count, pairs = map_items(data)
        if not pairs.startswith(_ID_KEY + b"\x58\x20"):
            raise ValueError("a stored event starts with its 32-byte id")
        return cls(pairs[5:37], count, pairs)

    @property
    def stored(self) -> bytes:
        """The event map alone, as kept in history (canonical CBOR)."""
        return head(5, self.count) + self.pairs

    def frame_body(self, rid: int | None = None) -> bytes:
        if rid is None:
            return head(5, self.count + 1) + _T_EVENT + self.pairs
        return head(5, self.count + 2) + _T_EVENT + _RID_KEY + cbor2.dumps(rid) + self.pairs
