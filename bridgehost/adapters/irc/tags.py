"""IRCv3 message tags (pure): what the `irc` library parsed, and values for the wire."""

from __future__ import annotations

from typing import Any

Tags = dict[str, str | None]
"""IRCv3 message tags of a line (`msgid`, `+draft/reply`, ...)."""


def tag_value(value: str) -> str:
    """A tag value escaped for the wire (IRCv3 message-tags): never a space, `;`,
    CR or LF in it, so a value cannot end the tags or the line."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\:")
        .replace(" ", "\\s")
        .replace("\r", "\\r")
        .replace("\n", "\\n")
    )


def parse_tags(raw: Any) -> Tags:
    """The `irc` library's tag list (`[{"key": ..., "value": ...}]`) as a dict."""
    out: Tags = {}
    for item in raw or ():
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            value = item.get("value")
            out[item["key"]] = value if isinstance(value, str) else None
    return out
