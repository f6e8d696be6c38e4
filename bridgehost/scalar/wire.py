"""Sans-IO framing (protocol §1): bytes in -> CBOR maps out, and back.

No sockets here: the server and client feed received bytes to a
`FrameDecoder` and write the bytes `encode_frame` returns. Decoding is strict
about what the protocol forbids (floats, tags, undefined, non-text keys,
trailing bytes, invalid UTF-8, indefinite lengths) so a bad peer gets
`bad-message` and never a surprise Python type deeper in the program.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from .errors import BadFrame, BadMessage

MAX_FRAME = 16382
"""Largest body length `L` (16 KiB - 2)."""

MAX_DEPTH = 16
_SCALARS = (str, bytes, int, bool, type(None))

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


def _check(value: object, depth: int = 0) -> None:
    if isinstance(value, _SCALARS):
        return
    if depth >= MAX_DEPTH:
        raise BadMessage("nesting too deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadMessage("map keys must be text")
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
    else:
        raise BadMessage(f"CBOR type not allowed: {type(value).__name__}")


def _rid_of(body: dict[Any, Any]) -> int | None:
    rid = body.get("rid")
    if type(rid) is int and 0 <= rid < 2**32:
        return rid
    return None


def decode_body(data: bytes) -> CborMap:
    """Decode one frame body into a map of allowed CBOR types, or raise BadMessage."""
    fp = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(
            fp,
            max_depth=MAX_DEPTH + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        ).decode()
    except RecursionError as exc:
        raise BadMessage("nesting too deep") from exc
    except Exception as exc:  # cbor2 raises a variety of types on hostile input
        raise BadMessage(f"malformed CBOR: {exc}"[:200]) from exc
    if fp.tell() != len(data):
        raise BadMessage("trailing bytes after the CBOR item")
    if not isinstance(value, dict):
        raise BadMessage("body is not a CBOR map")
    rid = _rid_of(value)
    try:
        _check(value)
    except BadMessage as exc:
        raise exc.with_rid(rid) from None
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
