"""Directory names for topics and links: a reversible escape of whatever a
file name cannot (or should not) hold.

Valid Scalar topics (`#lobby@example.com`, `alice@example.com`) only use
characters that are safe in file names, so they map to themselves; the
escape matters for link targets a user chooses. `%XX` (per UTF-8 byte)
stands for each character outside the safe set, for `%` itself and for a
leading `.`, so no name is hidden, `.`/`..`, or contains `/`. Only the
canonical escape is accepted back, which makes the mapping a bijection.
"""

from __future__ import annotations

import string

from ...scalar import ids
from ...scalar.errors import BadTopic

MAX_NAME_BYTES = 255
ROOT_FILES = frozenset({"in", "out"})
"""Names at the root that belong to the adapter (the command FIFO and its log)."""

_SAFE = frozenset(string.ascii_letters + string.digits + "#!@._+,=~-")
_HEX = frozenset(string.hexdigits)


def _keep(ch: str, first: bool) -> bool:
    if ch in _SAFE:
        return not (first and ch == ".")
    return not ch.isascii() and ch.isprintable()


def escape_name(name: str) -> str:
    """`name` as one file-name component; raises ValueError if empty or too long."""
    if not name:
        raise ValueError("a directory name cannot be empty")
    out = []
    for i, ch in enumerate(name):
        if _keep(ch, i == 0):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    escaped = "".join(out)
    if len(escaped.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ValueError(f"directory name for {name[:40]!r}... is longer than 255 bytes")
    return escaped


def unescape_name(escaped: str) -> str:
    """The name `escape_name` turned into `escaped`; ValueError for anything else."""
    raw = bytearray()
    i = 0
    while i < len(escaped):
        ch = escaped[i]
        if ch == "%":
            code = escaped[i + 1 : i + 3]
            if len(code) != 2 or not set(code) <= _HEX:
                raise ValueError(f"bad escape at {i} in {escaped!r}")
            raw.append(int(code, 16))
            i += 3
        else:
            raw.extend(ch.encode("utf-8", "surrogatepass"))
            i += 1
    try:
        name = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise ValueError(f"escape of invalid UTF-8 in {escaped!r}") from exc
    if not name or escape_name(name) != escaped:
        raise ValueError(f"not a canonical escaped name: {escaped!r}")
    return name


def peer_of(dirname: str, domain: str) -> str | None:
    """The user or reserved ID a direct-message directory is named after, or None."""
    try:
        parsed = ids.parse(unescape_name(dirname))
    except (ValueError, BadTopic):
        return None
    if parsed.is_channel or parsed.domain != domain or str(parsed) != dirname:
        return None
    return str(parsed)
