"""Matrix events <-> Scalar messages: what each one becomes (pure, no I/O).

The adapter does the I/O (event-id map lookups, publishing, sending); these
functions decide the content, so every mapping rule is unit-tested:

- `m.text` / `m.emote` / `m.notice` <-> `text` / `action` / `notice`;
- `formatted_body` HTML -> plain text, or markdown (`ctype: text/markdown`)
  when the link has `markdown: true`; a mention pill becomes the plain name;
- a reply keeps the event it answers (`reply_to_event`), its fallback is dropped;
- an edit (`m.replace`) becomes `kind: edit` of the original (`target_event`);
- a redaction becomes `kind: delete` of the redacted event;
- a reaction (`m.reaction`) becomes `kind: react` with its key;
- `m.room.topic` becomes `kind: topic`; `m.room.member` joins and leaves
  become `join` / `part` (each switchable, see `RelayOptions`);
- `m.image` / `m.file` / `m.video` / `m.audio` / stickers become text with
  the file name and a download link: bridgehost's own signed media link when
  it has a public URL (`media_link`), else the homeserver's media URL.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from ...scalar.events import MAX_TITLE, Event
from ..state import State
from .config import RelayOptions
from .mentions import pill
from .render import (
    html_to_markdown,
    html_to_text,
    markdown_to_html,
    strip_reply_fallback,
    text_to_html,
)

MAX_KEY_BYTES = 64
"""A Scalar reaction key is at most 64 bytes (protocol §11)."""
MAX_BODY_BYTES = 15000
"""A Scalar event must fit one 16 KiB frame with its other fields."""
MAX_HTML_CHARS = 30000
"""Matrix events are at most 64 KiB; past this the plain body alone is sent."""
HTML_FORMAT = "org.matrix.custom.html"
DEFAULT_RELAY = RelayOptions()
MEDIA = frozenset({"m.image", "m.file", "m.video", "m.audio"})
KIND_OF_MSGTYPE = {"m.text": "text", "m.emote": "action", "m.notice": "notice"}
MSGTYPE_OF_KIND = {"text": "m.text", "action": "m.emote", "notice": "m.notice"}


MediaLink = Callable[[str, str, str], str | None]
"""(media server, media id, file name) -> a public link (bridgehost.web signs it)."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One Matrix event as the Scalar message it becomes."""

    body: str
    kind: str = "text"
    ctype: str | None = None
    reply_to_event: str | None = None
    """Matrix event id whose Scalar id becomes `reply_to`, when known."""
    target_event: str | None = None
    """Matrix event id whose Scalar id becomes `target` (edit, delete, react);
    the message is dropped when that event was never bridged."""
    nick: str | None = None
    """Whose membership changed (join / part), when not the sender's name."""


def localpart(user_id: str) -> str:
    """`@alice:example.org` -> `alice`."""
    return user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id


def media_url(
    homeserver: str, mxc: str, filename: str | None = None, media_link: MediaLink | None = None
) -> str | None:
    """`mxc://server/id` -> `media_link`'s link, else the homeserver's download URL
    (no token in it; homeservers with authenticated media refuse it)."""
    parts = urlsplit(mxc)
    media_id = parts.path.lstrip("/")
    if parts.scheme != "mxc" or not parts.netloc or not media_id or "/" in media_id:
        return None
    if media_link is not None:
        return media_link(parts.netloc, media_id, filename or "file")
    url = (
        f"{homeserver.rstrip('/')}/_matrix/media/v3/download/"
        f"{quote(parts.netloc, safe='')}/{quote(media_id, safe='')}"
    )
    if filename:
        url += "/" + quote(filename, safe="")
    return url


def truncate_utf8(text: str, limit: int = MAX_BODY_BYTES) -> str:
    """Cut `text` to at most `limit` UTF-8 bytes at a character boundary, marked with `…`."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "…"


def _text(s: Any) -> str:
    return s if isinstance(s, str) else ""


def _message_text(content: Mapping[str, Any], markdown: bool) -> tuple[str, str | None]:
    """Body and ctype of an `m.room.message` content, reply fallback removed."""
    body = strip_reply_fallback(_text(content.get("body")))
    formatted = _text(content.get("formatted_body"))
    if content.get("format") == HTML_FORMAT and formatted:
        if markdown:
            return html_to_markdown(formatted), "text/markdown"
        return html_to_text(formatted), None
    return body, None


def _media_text(content: Mapping[str, Any], homeserver: str, media_link: MediaLink | None) -> str:
    body = _text(content.get("body"))
    filename = _text(content.get("filename")) or body or "file"
    caption = body if body and body != filename else ""
    url = media_url(homeserver, _text(content.get("url")), filename, media_link)
    if url is None:
        where = "(encrypted file, not bridged)" if "file" in content else "(no download URL)"
        text = f"{filename} {where}"
    else:
        text = f"{filename} {url}"
    return f"{caption}: {text}" if caption else text


def _content_to_inbound(
    content: Mapping[str, Any],
    *,
    markdown: bool,
    homeserver: str,
    sticker: bool = False,
    media_link: MediaLink | None = None,
) -> Inbound | None:
    msgtype = "m.image" if sticker else _text(content.get("msgtype"))
    if msgtype in MEDIA:
        return Inbound(_media_text(content, homeserver, media_link))
    if msgtype == "m.location":
        geo = _text(content.get("geo_uri"))
        body = _text(content.get("body"))
        return Inbound(f"{body} {geo}".strip()) if body or geo else None
    body, ctype = _message_text(content, markdown)
    if not body.strip():
        return None
    return Inbound(body, KIND_OF_MSGTYPE.get(msgtype, "text"), ctype)


def inbound(
    source: Mapping[str, Any],
    *,
    markdown: bool,
    homeserver: str,
    relay: RelayOptions = DEFAULT_RELAY,
    media_link: MediaLink | None = None,
) -> Inbound | None:
    """What a Matrix timeline event becomes in Scalar, or None if nothing."""
    etype = source.get("type")
    content = source.get("content")
    if not isinstance(content, Mapping):
        return None
    if etype == "m.room.redaction":
        target = content.get("redacts") or source.get("redacts")
        if not relay.deletes or not isinstance(target, str):
            return None
        return Inbound(_text(content.get("reason")), "delete", target_event=target)
    if etype == "m.reaction":
        return _reaction(content) if relay.reactions else None
    if etype == "m.room.topic":
        if not relay.topic or source.get("state_key") != "":
            return None
        return Inbound(truncate_utf8(_text(content.get("topic")), MAX_TITLE), "topic")
    if etype == "m.room.member":
        return _membership(source, content) if relay.membership else None
    if etype not in ("m.room.message", "m.sticker"):
        return None
    relates = content.get("m.relates_to")
    relates = relates if isinstance(relates, Mapping) else {}
    if relates.get("rel_type") == "m.replace":
        new = content.get("m.new_content")
        new = new if isinstance(new, Mapping) else content
        made = _content_to_inbound(
            new, markdown=markdown, homeserver=homeserver, media_link=media_link
        )
        original = relates.get("event_id")
        if made is None or not relay.edits or not isinstance(original, str):
            return None
        return Inbound(truncate_utf8(made.body), "edit", made.ctype, target_event=original)
    made = _content_to_inbound(
        content,
        markdown=markdown,
        homeserver=homeserver,
        sticker=etype == "m.sticker",
        media_link=media_link,
    )
    if made is None:
        return None
    reply = relates.get("m.in_reply_to") if relay.replies else None
    target = reply.get("event_id") if isinstance(reply, Mapping) else None
    return Inbound(
        truncate_utf8(made.body),
        made.kind,
        made.ctype,
        target if isinstance(target, str) else None,
    )


def _reaction(content: Mapping[str, Any]) -> Inbound | None:
    relates = content.get("m.relates_to")
    if not isinstance(relates, Mapping) or relates.get("rel_type") != "m.annotation":
        return None
    target, key = relates.get("event_id"), relates.get("key")
    if not isinstance(target, str) or not isinstance(key, str) or not key.strip():
        return None
    data = key.encode()
    if len(data) > MAX_KEY_BYTES:
        key = data[:MAX_KEY_BYTES].decode(errors="ignore")
    return Inbound(key, "react", target_event=target)


def _membership(source: Mapping[str, Any], content: Mapping[str, Any]) -> Inbound | None:
    """A join or a leave (kick, ban) of someone; profile changes are not membership."""
    user = source.get("state_key")
    if not isinstance(user, str):
        return None
    unsigned = source.get("unsigned")
    prev = unsigned.get("prev_content") if isinstance(unsigned, Mapping) else None
    prev = prev if isinstance(prev, Mapping) else {}
    now, before = content.get("membership"), prev.get("membership")
    if now == "join" and before != "join":
        name = _text(content.get("displayname")) or localpart(user)
        return Inbound("", "join", nick=name)
    if now in ("leave", "ban") and before == "join":
        name = _text(prev.get("displayname")) or localpart(user)
        reason = _text(content.get("reason"))
        sender = source.get("sender")
        if sender != user:
            by = "banned" if now == "ban" else "kicked"
            reason = f"{by} by {sender}" + (f": {reason}" if reason else "")
        return Inbound(reason, "part", nick=name)
    return None


def sender_name(event: Event) -> str:
    """The name a Scalar event is shown under in Matrix."""
    if event.nick:
        return event.nick
    name = event.sender.lstrip("!#")
    return name.split("@", 1)[0] or event.sender


def outbound(
    event: Event,
    *,
    reply_event_id: str | None = None,
    mention: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The `m.room.message` content a Scalar event becomes in Matrix.

    `mention` is (name as written, user ID) of the room member the body
    starts by addressing: that name becomes a pill and the user is listed in
    `m.mentions`, which is always present, so nobody else is pinged by a name
    that merely appears in the text.
    """
    nick = sender_name(event)
    text = event.body
    rendered = markdown_to_html(text) if event.ctype == "text/markdown" else text_to_html(text)
    mentions: dict[str, Any] = {}
    if mention is not None:
        name, user_id = mention
        escaped = html.escape(name, quote=False)
        at = rendered.find(escaped)
        if at >= 0 and not rendered[:at].strip():
            rendered = rendered[:at] + pill(user_id, name) + rendered[at + len(escaped) :]
            mentions["user_ids"] = [user_id]
    who = html.escape(nick, quote=False)
    if event.kind == "action":
        body, formatted = f"{nick} {text}", f"{who} {rendered}"
    else:
        body, formatted = f"<{nick}> {text}", f"<strong>{who}</strong>: {rendered}"
    content: dict[str, Any] = {
        "msgtype": MSGTYPE_OF_KIND.get(event.kind, "m.text"),
        "body": body,
        "m.mentions": mentions,
    }
    if len(formatted) <= MAX_HTML_CHARS:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = formatted
    if reply_event_id is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_event_id}}
    return content


def txn_id(event: Event) -> str:
    """The transaction id of a Scalar event's send: the same on every retry."""
    return "bh" + event.id.hex()


def _own_member(source: Mapping[str, Any], user_id: str) -> Mapping[str, Any] | None:
    if source.get("type") != "m.room.member" or source.get("state_key") != user_id:
        return None
    content = source.get("content")
    return content if isinstance(content, Mapping) else None


def own_join_index(sources: list[Mapping[str, Any]], user_id: str) -> int | None:
    """Index of the last event where `user_id` joined (not a profile change), if any.

    In a room joined since the last sync, Synapse sends history from before
    the join; everything up to this index is that history.
    """
    found = None
    for i, source in enumerate(sources):
        content = _own_member(source, user_id)
        if content is None or content.get("membership") != "join":
            continue
        unsigned = source.get("unsigned")
        prev = unsigned.get("prev_content") if isinstance(unsigned, Mapping) else None
        if not isinstance(prev, Mapping) or prev.get("membership") != "join":
            found = i
    return found


@dataclass(frozen=True, slots=True)
class Membership:
    """The last change of our own membership seen in a room."""

    membership: str
    sender: str
    reason: str | None = None

    def describe(self, user_id: str) -> tuple[State, str]:
        """(link state, error text) for a room we are no longer in."""
        by = "" if self.sender == user_id else f" by {self.sender}"
        why = f": {self.reason}" if self.reason else ""
        if self.membership == "ban":
            return "removed", f"banned from the room{by}{why}"
        if self.sender != user_id:
            return "removed", f"kicked from the room{by}{why}"
        return "removed", "left the room"


def own_membership(sources: list[Mapping[str, Any]], user_id: str) -> Membership | None:
    """The last membership event about `user_id` among `sources`, if any."""
    last = None
    for source in sources:
        content = _own_member(source, user_id)
        if content is None:
            continue
        reason = content.get("reason")
        last = Membership(
            _text(content.get("membership")),
            _text(source.get("sender")),
            reason if isinstance(reason, str) and reason else None,
        )
    return last
