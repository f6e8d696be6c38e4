"""What the Matrix side does for a Scalar event (pure): send, redact or set the topic.

| Scalar | Matrix |
|---|---|
| text / action / notice | `m.room.message` (`m.in_reply_to` for a reply) |
| edit | `m.room.message` with `m.new_content` and `m.replace` of the mapped event |
| delete | a redaction of the mapped event |
| react | `m.reaction` (`m.annotation` with the key) on the mapped event |
| topic | the `m.room.topic` state event |
| join / part | an `m.notice` `bob joined` / `bob left (reason)` (off by default) |

An edit, deletion or reaction whose target never reached this room has no
Matrix event to point at: an edit is then sent as a new message `* text`,
the other two are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ...scalar.events import Event
from .config import RelayOptions
from .events import outbound, sender_name


@dataclass(frozen=True, slots=True)
class Send:
    event_type: str
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Redact:
    event_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SetTopic:
    topic: str


Action = Send | Redact | SetTopic


def plan(
    event: Event,
    *,
    relay: RelayOptions,
    reply_event_id: str | None = None,
    target_event_id: str | None = None,
    mention: tuple[str, str] | None = None,
) -> Action | None:
    """The Matrix action for `event`, or None when this room shows nothing for it.

    `target_event_id` is the Matrix event an edit, deletion or reaction
    points at (None when unknown, or when it cannot be replaced in place).
    """
    kind = event.kind
    if kind in ("text", "action", "notice"):
        return Send("m.room.message", _message(event, reply_event_id, mention, relay))
    if kind == "edit":
        if not relay.edits:
            return None
        as_text = replace(event, kind="text")
        if target_event_id is None:
            return Send("m.room.message", outbound(replace(as_text, body=f"* {event.body}")))
        new = _message(as_text, None, mention, relay)
        content = {
            **new,
            "body": f"* {new['body']}",
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": target_event_id},
        }
        if "formatted_body" in new:
            content["formatted_body"] = f"* {new['formatted_body']}"
        return Send("m.room.message", content)
    if kind == "delete":
        if not relay.deletes or target_event_id is None:
            return None
        reason = f"deleted by {sender_name(event)}" + (f": {event.body}" if event.body else "")
        return Redact(target_event_id, reason)
    if kind == "react":
        if not relay.reactions or target_event_id is None or not event.body.strip():
            return None
        relates = {"rel_type": "m.annotation", "event_id": target_event_id, "key": event.body}
        return Send("m.reaction", {"m.relates_to": relates})
    if kind == "topic":
        return SetTopic(event.body) if relay.topic else None
    if kind in ("join", "part"):
        if not relay.membership:
            return None
        who = sender_name(event)
        text = f"{who} joined" if kind == "join" else f"{who} left"
        if kind == "part" and event.body:
            text += f" ({event.body})"
        return Send("m.room.message", {"msgtype": "m.notice", "body": text, "m.mentions": {}})
    return None


def _message(
    event: Event,
    reply_event_id: str | None,
    mention: tuple[str, str] | None,
    relay: RelayOptions,
) -> dict[str, Any]:
    return outbound(
        event,
        reply_event_id=reply_event_id if relay.replies else None,
        mention=mention if relay.mentions else None,
    )


MERGE_KINDS = frozenset({"text", "notice"})
LINE_NETWORKS = ("irc:",)
"""Origins whose people send lines, so that a paste arrives as a burst of them."""


def mergeable(first: Event, other: Event, window_ms: int) -> bool:
    """Whether `other` may join `first`'s Matrix message (a burst of one IRC speaker)."""
    return (
        other.kind == first.kind
        and first.kind in MERGE_KINDS
        and (first.origin or "").startswith(LINE_NETWORKS)
        and other.origin == first.origin
        and other.sender == first.sender
        and other.nick == first.nick
        and other.ctype == first.ctype
        and other.reply_to is None
        and first.reply_to is None
        and 0 <= other.time - first.time <= window_ms
    )


def burst(events: Sequence[Event], *, window_ms: int, max_bytes: int) -> int:
    """How many of the queued `events` (from the head) go out as one Matrix message.

    Consecutive lines of one speaker, each within `window_ms` of the one
    before, up to `max_bytes` of body: what a person pastes into IRC shows
    as one message in Matrix instead of dozens.
    """
    if not events or window_ms <= 0:
        return min(len(events), 1)
    count, size = 1, len(events[0].body.encode())
    while count < len(events):
        prev, nxt = events[count - 1], events[count]
        size += len(nxt.body.encode()) + 1
        if size > max_bytes or not mergeable(prev, nxt, window_ms):
            break
        count += 1
    return count


def merged(events: Sequence[Event]) -> Event:
    """One event carrying the lines of a burst (the first one's id, the last one's time)."""
    if len(events) == 1:
        return events[0]
    body = "\n".join(e.body for e in events)
    return replace(events[0], body=body, time=events[-1].time)
