"""Matrix events <-> Scalar messages: what each one becomes (pure, no I/O).

The adapter does the I/O (event-id map lookups, publishing, sending); these
functions decide the content, so every mapping rule is unit-tested:

- `m.text` / `m.emote` / `m.notice` <-> `text` / `action` / `notice`;
- `formatted_body` HTML -> plain text, or markdown (`ctype: text/markdown`)
  when the link has `markdown: true`;
- a reply keeps the event it answers (`reply_to_event`), its fallback is dropped;
- an edit (`m.replace`) becomes a new message marked `(edit)` that replies to
  the original;
- a redaction becomes the notice `deleted a message` replying to the
  redacted message (only if that one was bridged), or nothing with
  `redactions: ignore`;
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

from ...scalar.events import Event
from ..state import State
from .render import (
    html_to_markdown,
    html_to_text,
    markdown_to_html,
    strip_reply_fallback,
    text_to_html,
)

EDIT_MARK = "(edit) "
DELETED = "deleted a message"
MAX_BODY_BYTES = 15000
"""A Scalar event must fit one 16 KiB frame with its other fields."""
MAX_HTML_CHARS = 30000
"""Matrix events are at most 64 KiB; past this the plain body alone is sent."""
HTML_FORMAT = "org.matrix.custom.html"
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
    needs_target: bool = False
    """Drop the message when `reply_to_event` was never bridged (redactions)."""


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
    redactions: str = "notice",
    media_link: MediaLink | None = None,
) -> Inbound | None:
    """What a Matrix timeline event becomes in Scalar, or None if nothing."""
    etype = source.get("type")
    content = source.get("content")
    if not isinstance(content, Mapping):
        return None
    if etype == "m.room.redaction":
        target = content.get("redacts") or source.get("redacts")
        if redactions == "ignore" or not isinstance(target, str):
            return None
        return Inbound(DELETED, "notice", None, target, needs_target=True)
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
        if made is None:
            return None
        return Inbound(
            truncate_utf8(EDIT_MARK + made.body),
            made.kind,
            made.ctype,
            original if isinstance(original, str) else None,
        )
    made = _content_to_inbound(
        content,
        markdown=markdown,
        homeserver=homeserver,
        sticker=etype == "m.sticker",
        media_link=media_link,
    )
    if made is None:
        return None
    reply = relates.get("m.in_reply_to")
    target = reply.get("event_id") if isinstance(reply, Mapping) else None
    return Inbound(
        truncate_utf8(made.body),
        made.kind,
        made.ctype,
        target if isinstance(target, str) else None,
    )


def sender_name(event: Event) -> str:
    """The name a Scalar event is shown under in Matrix."""
    if event.nick:
        return event.nick
    name = event.sender.lstrip("!#")
    return name.split("@", 1)[0] or event.sender


def outbound(event: Event, *, reply_event_id: str | None = None) -> dict[str, Any]:
    """The `m.room.message` content a Scalar event becomes in Matrix."""
    nick = sender_name(event)
    text = event.body
    rendered = markdown_to_html(text) if event.ctype == "text/markdown" else text_to_html(text)
    who = html.escape(nick, quote=False)
    if event.kind == "action":
        body, formatted = f"{nick} {text}", f"{who} {rendered}"
    else:
        body, formatted = f"<{nick}> {text}", f"<strong>{who}</strong>: {rendered}"
    content: dict[str, Any] = {
        "msgtype": MSGTYPE_OF_KIND.get(event.kind, "m.text"),
        "body": body,
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
