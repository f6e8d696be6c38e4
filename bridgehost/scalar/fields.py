"""Typed field access over a decoded CBOR map, failing with the map's `rid`.

Shared by every message and event parser, so that §9's rule holds
everywhere: a known field of the wrong type, or a missing required one, is
`bad-message` carrying the request's `rid`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import ids
from .errors import BadMessage, ScalarError
from .wire import CborMap

MAX_LIMIT = 1000
RID_MAX = 2**32


class Fields:
    """Reads typed fields out of one map, failing with the map's rid."""

    def __init__(self, m: CborMap) -> None:
        self.m = m
        rid = m.get("rid")
        if "rid" in m and not (type(rid) is int and 0 <= rid < RID_MAX):
            raise BadMessage("rid must be an unsigned integer below 2^32")
        self.rid: int | None = rid

    def nested(self, m: CborMap) -> Fields:
        """Typed getters over a map inside this one, failing with this map's rid."""
        inner = Fields({})
        inner.m, inner.rid = m, self.rid
        return inner

    def fail(self, text: str) -> BadMessage:
        return BadMessage(text, rid=self.rid)

    def _get(self, key: str, check: Callable[[Any], bool], what: str, required: bool) -> Any:
        if key not in self.m:
            if required:
                raise self.fail(f"missing field {key!r}")
            return None
        value = self.m[key]
        if not check(value):
            raise self.fail(f"field {key!r} must be {what}")
        return value

    def text(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: isinstance(v, str), "text", required)

    def integer(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: type(v) is int, "an integer", required)

    def uint(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: type(v) is int and v >= 0, "an unsigned integer", required)

    def id32(self, key: str) -> Any:
        return self._get(key, lambda v: isinstance(v, bytes) and len(v) == 32, "32 bytes", False)

    def map(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: isinstance(v, dict), "a map", required)

    def boolean(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: isinstance(v, bool), "a boolean", required)

    def array(self, key: str, required: bool = False) -> Any:
        return self._get(key, lambda v: isinstance(v, list), "an array", required)

    def limit(self, default: int) -> int:
        value = self.integer("limit")
        if value is None:
            return default
        if value <= 0:
            raise self.fail("limit must be at least 1")
        return int(min(value, MAX_LIMIT))

    def topic(self, key: str, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return ids.normalise(value)
        except ScalarError as exc:
            raise exc.with_rid(self.rid) from None


def omit_none(m: dict[str, Any]) -> CborMap:
    return {k: v for k, v in m.items() if v is not None}
