"""Sans-IO framing (protocol §1): bytes in -> CBOR maps out, and back.

No sockets here: the server and client feed received bytes to a
`FrameDecoder` and write the bytes `encode_frame` returns. Untrusted bytes
never reach the CBOR decoder unchecked: `scan` walks a body once, in linear
time, and refuses what the protocol forbids (tags, floats and other simple
values, indefinite lengths, duplicate or non-text keys, invalid UTF-8,
integers beyond 64 bits, nesting deeper than 16, more items than bytes)
before any value is built (§10), so a bad peer gets `bad-message` and never
a surprise Python type, an expanded value graph or a stalled event loop.
"""

from __future__ import annotations

import functools
from typing import Any

import cbor2

from .errors import BadFrame, BadMessage

MAX_FRAME = 16382
"""Largest body length `L` (16 KiB - 2)."""

MAX_DEPTH = 16
"""Containers nested in one body, the body's own map included."""

CborMap = dict[str, Any]


def encode_frame(body: CborMap) -> bytes:
    """Length-prefix one CBOR map. Raises BadFrame if it does not fit a frame."""
    data = cbor2.dumps(body)
    return frame(data)


def frame(data: bytes) -> bytes:
    if not 1 <= len(data) <= MAX_FRAME:
        raise BadFrame(f"body of {len(data)} bytes does not fit one frame")
    return len(data).to_bytes(2, "little") + data


def canonical(value: object) -> bytes:
    """Core-deterministic CBOR (RFC 8949 §4.2.1): what event ids are computed over."""
    return cbor2.dumps(value, canonical=True)


def head(major: int, n: int) -> bytes:
    """The CBOR initial byte(s) for a definite-length item of `major` type."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    return bytes((mt | 26,)) + n.to_bytes(4, "big")


def map_items(encoded_map: bytes) -> tuple[int, bytes]:
    """Split an encoded definite map into (item count, the encoded pairs).

    Lets the server splice extra pairs (`t`, `rid`) in front of an event
    that was encoded once, instead of re-encoding it per delivery.
    """
    first = encoded_map[0]
    if first >> 5 != 5:
        raise ValueError("not a CBOR map")
    info = first & 0x1F
    if info < 24:
        return info, encoded_map[1:]
    width = {24: 1, 25: 2, 26: 4}[info]
    return int.from_bytes(encoded_map[1 : 1 + width], "big"), encoded_map[1 + width :]


def map_with_raw_array(fixed: CborMap, key: str, items: list[bytes]) -> bytes:
    """Encode `fixed` plus `key: [items...]` where items are already-encoded CBOR.

    Used to pack pre-encoded events into one `history` frame without
    decoding and re-encoding them.
    """
    parts = [head(5, len(fixed) + 1)]
    for k, v in fixed.items():
        parts.append(cbor2.dumps(k))
        parts.append(cbor2.dumps(v))
    parts.append(cbor2.dumps(key))
    parts.append(head(4, len(items)))
    parts.extend(items)
    return b"".join(parts)


INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Every integer in input fits a signed 64-bit integer (§10): what SQLite stores."""

_TAG, _INDEFINITE, _SIMPLE = 0xFF, 0xFE, 0xFD


RID_LARGEST = 2**32 - 1
"""The largest `rid` a request may carry (§2): replies are sized for it."""


def lone_history_size(topic: str, event: bytes) -> int:
    """Bytes of the body of a `history` frame that carries this one encoded event and
    the largest `rid`: with the echo, what §10 decides `too-large` against, so that
    every event a server accepts fits a `catchup` reply on its own."""
    return _history_without_events(topic) + len(event)


@functools.lru_cache(maxsize=4096)
def _history_without_events(topic: str) -> int:
    """A lone-event `history` frame's size but for the event (an array of one item has
    the same one-byte head as an empty one). Cached: it is asked for every `msg`."""
    fixed = {"t": "history", "rid": RID_LARGEST, "topic": topic, "status": "ok", "more": True}
    return len(map_with_raw_array(fixed, "events", []))


def _head_widths() -> bytes:
    """Per initial byte: how many argument bytes follow (0..8), or why it is refused."""
    table = bytearray(256)
    for b in range(256):
        major, info = b >> 5, b & 31
        if major == 6:
            table[b] = _TAG
        elif info >= 28:
            table[b] = _INDEFINITE  # 31 is indefinite/break, 28-30 are reserved
        elif major == 7:
            table[b] = 0 if info in (20, 21, 22) else _SIMPLE  # false, true, null
        elif info >= 24:
            table[b] = 1 << (info - 24)
    return bytes(table)


_WIDTH = _head_widths()
_REFUSED = {
    _TAG: "CBOR tags are not allowed",
    _INDEFINITE: "indefinite lengths are not allowed",
    _SIMPLE: "floats and simple values other than true, false and null are not allowed",
}


def scan(data: bytes) -> int:
    """Check one frame body against §1 and §10 without building any value from it.

    One pass over the bytes, constant work per data item and at most one item per
    byte, so rejecting (or accepting) costs time linear in the body's length. What
    passes is a definite-length map of text keys, no two alike, holding only
    integers that fit 64 bits, text (valid UTF-8), bytes, booleans, null, arrays and
    maps, nested at most MAX_DEPTH deep: safe to hand to a general-purpose decoder.
    Returns the number of data items.
    """
    end = len(data)
    if not end or data[0] >> 5 != 5:
        raise BadMessage("body is not a CBOR map")
    widths, from_bytes = _WIDTH, int.from_bytes
    pos = items = depth = 0
    left = 1
    """Items still to read in the innermost open container."""
    keys: set[bytes] | None = None
    """Keys seen so far in the innermost open map; None in an array."""
    stack: list[tuple[int, set[bytes] | None]] = []
    while True:
        while not left:
            if not depth:
                if pos != end:
                    raise BadMessage("trailing bytes after the CBOR item")
                return items
            depth -= 1
            left, keys = stack.pop()
        if pos >= end:
            raise BadMessage("truncated CBOR")
        b = data[pos]
        w = widths[b]
        if w:
            if w > 8:
                raise BadMessage(_REFUSED[w])
            pos += 1 + w
            if pos > end:
                raise BadMessage("truncated CBOR")
            arg = from_bytes(data[pos - w : pos], "big")
        else:
            pos += 1
            arg = b & 31
        major = b >> 5
        items += 1
        left -= 1
        is_key = keys is not None and left & 1
        if major == 3:
            stop = pos + arg
            if stop > end:
                raise BadMessage("truncated CBOR")
            text = data[pos:stop]
            pos = stop
            if is_key:
                assert keys is not None
                if text in keys:
                    raise BadMessage("duplicate map key")
                keys.add(text)
            if not text.isascii():
                try:
                    text.decode()
                except UnicodeDecodeError:
                    raise BadMessage("invalid UTF-8 in a text string") from None
        elif is_key:
            raise BadMessage("map keys must be text")
        elif major == 2:
            pos += arg
            if pos > end:
                raise BadMessage("truncated CBOR")
        elif major <= 1:
            if arg > INT_MAX:
                raise BadMessage("integer does not fit in 64 bits")
        elif major != 7:  # array or map
            count = arg * 2 if major == 5 else arg
            if count > end - pos:
                raise BadMessage("more data items than the frame has bytes")
            if depth == MAX_DEPTH:
                raise BadMessage(f"nesting deeper than {MAX_DEPTH}")
            depth += 1
            stack.append((left, keys))
            left = count
            keys = set() if major == 5 else None


def _skip_head(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(major, argument, position after the head) of any definite CBOR head, or None."""
    if pos >= len(data):
        return None
    b = data[pos]
    info = b & 31
    if info < 24:
        return b >> 5, info, pos + 1
    if info > 27:
        return None
    w = 1 << (info - 24)
    if pos + 1 + w > len(data):
        return None
    return b >> 5, int.from_bytes(data[pos + 1 : pos + 1 + w], "big"), pos + 1 + w


def _skip_item(data: bytes, pos: int) -> int | None:
    """Position after one well-formed definite item of any type (tags, floats too), or None.

    Linear: every head read consumes at least one byte.
    """
    pending = 1
    while pending:
        read = _skip_head(data, pos)
        if read is None:
            return None
        major, arg, pos = read
        pending -= 1
        if major in (2, 3):
            pos += arg
            if pos > len(data):
                return None
        elif major == 4:
            pending += arg
        elif major == 5:
            pending += 2 * arg
        elif major == 6:
            pending += 1
    return pos


def rid_of(data: bytes) -> int | None:
    """The top-level `rid` of a body the scan refused, when it is there and in range (§9).

    Skims the top-level map without building anything, tolerating what `scan`
    refuses deeper inside, so a float in `time` still gets its error with the rid.
    """
    read = _skip_head(data, 0)
    if read is None or read[0] != 5:
        return None
    _, pairs, pos = read
    found: list[int | None] = []
    for _ in range(min(pairs, len(data))):
        key = _skip_head(data, pos)
        if key is None or key[0] != 3:
            break
        _, length, pos = key
        name = data[pos : pos + length]
        pos += length
        if name == b"rid":
            value = _skip_head(data, pos)
            found.append(value[1] if value and value[0] == 0 and value[1] < 2**32 else None)
        after = _skip_item(data, pos)
        if after is None:
            break
        pos = after
    return found[0] if len(found) == 1 else None


def decode_body(data: bytes) -> CborMap:
    """Decode one frame body into a map of allowed CBOR types, or raise BadMessage.

    The bytes are scanned first (`scan`), so the decoder only ever sees input
    that cannot make it expand: no tags, no shared values, bounded nesting.
    """
    try:
        scan(data)
    except BadMessage as exc:
        raise exc.with_rid(rid_of(data)) from None
    try:
        value = cbor2.loads(data)
    except Exception as exc:  # the scan should have caught anything cbor2 refuses
        raise BadMessage(f"malformed CBOR: {exc}"[:200], rid=rid_of(data)) from exc
    if not isinstance(value, dict):
        raise BadMessage("body is not a CBOR map")
    return value


class FrameDecoder:
    """Incremental decoder for one direction of one connection.

    `feed()` returns, per complete frame, either the decoded map or the
    BadMessage to answer it with. A bad header ends the list with a BadFrame:
    the stream cannot be resynchronised, so the caller must close, and the
    decoder refuses further input.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self.failed = False

    def feed(self, data: bytes) -> list[CborMap | BadMessage | BadFrame]:
        if self.failed:
            raise BadFrame("decoder already failed")
        buf = self._buf
        buf += data
        out: list[CborMap | BadMessage | BadFrame] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            size = buf[pos] | (buf[pos + 1] << 8)
            if size == 0 or size > self._max:
                self.failed = True
                buf.clear()
                out.append(BadFrame(f"frame length {size} outside 1..{self._max}"))
                return out
            if end - pos - 2 < size:
                break
            body = bytes(buf[pos + 2 : pos + 2 + size])
            pos += 2 + size
            try:
                out.append(decode_body(body))
            except BadMessage as exc:
                out.append(exc)
        del buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)
