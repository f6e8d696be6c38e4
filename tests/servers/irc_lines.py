"""IRC lines as tests see them: parsing (with IRCv3 tags), the SASL PLAIN
payload, and the errors the test clients raise."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Final SASL numerics: 902 nick locked, 903 success, 904 fail, 905 too long,
#: 906 aborted, 907 already authenticated.
SASL_FINAL = frozenset({"902", "903", "904", "905", "906", "907"})


class SaslError(RuntimeError):
    """SASL authentication did not end with 903."""

    def __init__(self, message: str, line: IRCLine | None) -> None:
        super().__init__(message)
        self.line = line


class IRCConnectionClosed(ConnectionError):
    """The server closed the connection before the awaited line arrived."""


# --------------------------------------------------------------------------
# IRC line parsing
# --------------------------------------------------------------------------

_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


def _unescape_tag(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append(_TAG_UNESCAPES.get(nxt, nxt))
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True)
class IRCLine:
    """One received IRC line, parsed (IRCv3 message tags included)."""

    raw: str
    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def parse(cls, raw: str) -> IRCLine:
        rest = raw.rstrip("\r\n")
        tags: dict[str, str] = {}
        source: str | None = None
        if rest.startswith("@"):
            tag_part, _, rest = rest[1:].partition(" ")
            for item in tag_part.split(";"):
                if item:
                    key, _, value = item.partition("=")
                    tags[key] = _unescape_tag(value)
            rest = rest.lstrip(" ")
        if rest.startswith(":"):
            source, _, rest = rest[1:].partition(" ")
            rest = rest.lstrip(" ")
        params: list[str] = []
        while rest:
            if rest.startswith(":"):
                params.append(rest[1:])
                break
            word, _, rest = rest.partition(" ")
            params.append(word)
            rest = rest.lstrip(" ")
        command = params.pop(0).upper() if params else ""
        return cls(
            raw=raw.rstrip("\r\n"), command=command, params=tuple(params), source=source, tags=tags
        )

    @property
    def nick(self) -> str | None:
        """Nick (or server name) part of the source."""
        if self.source is None:
            return None
        return self.source.split("!", 1)[0]

    @property
    def trailing(self) -> str:
        """Last parameter, or "" when there is none."""
        return self.params[-1] if self.params else ""

    def __str__(self) -> str:
        return self.raw


def _check_line(line: str) -> None:
    if any(ch in line for ch in "\r\n\0"):
        raise ValueError(f"IRC line must not contain CR, LF or NUL: {line!r}")


def _sasl_plain_payload(account: str, password: str) -> list[str]:
    """AUTHENTICATE arguments for PLAIN, split into 400-byte chunks."""
    blob = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode("ascii")
    chunks = [blob[i : i + 400] for i in range(0, len(blob), 400)]
    if not chunks or len(chunks[-1]) == 400:
        chunks.append("+")
    return chunks


# --------------------------------------------------------------------------
