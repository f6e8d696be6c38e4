"""Topic / ID syntax (protocol §3): parse, validate, normalise to lowercase."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .errors import BadTopic

MAX_ID_BYTES = 255
_NAME = re.compile(r"[a-z0-9._-]{1,64}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class Kind(enum.Enum):
    USER = "user"
    CHANNEL = "channel"
    RESERVED = "reserved"


_SIGILS = {"#": Kind.CHANNEL, "!": Kind.RESERVED}


@dataclass(frozen=True, slots=True)
class Ident:
    """A parsed, lowercased identifier such as `#python@example.com`."""

    kind: Kind
    name: str
    domain: str

    def __str__(self) -> str:
        sigil = {Kind.CHANNEL: "#", Kind.RESERVED: "!", Kind.USER: ""}[self.kind]
        return f"{sigil}{self.name}@{self.domain}"

    @property
    def is_channel(self) -> bool:
        return self.kind is Kind.CHANNEL


def valid_domain(domain: str) -> bool:
    if not domain or len(domain) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in domain.split("."))


def parse(text: str) -> Ident:
    """Parse an identifier; raise BadTopic (without rid) when malformed."""
    if not isinstance(text, str) or not text.isascii():
        raise BadTopic(f"identifier must be ASCII text: {text!r}"[:200])
    if len(text) > MAX_ID_BYTES:
        raise BadTopic("identifier longer than 255 bytes")
    low = text.lower()
    kind = _SIGILS.get(low[:1], Kind.USER)
    rest = low[1:] if kind is not Kind.USER else low
    name, at, domain = rest.partition("@")
    if not at or not _NAME.fullmatch(name) or not valid_domain(domain):
        raise BadTopic(f"malformed identifier {text!r}")
    return Ident(kind, name, domain)


def normalise(text: str) -> str:
    return str(parse(text))
