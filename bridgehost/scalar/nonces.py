"""What a server remembers of recent publishes, for idempotent `msg` (§10).

A (sender, nonce) maps to what the first `msg` with that nonce became, for at
least `ttl` seconds: a repeated `msg` is answered with the original event and
not published again. Memory is bounded where it is allocated: at most
`per_sender` entries per sender and `total` overall, and at most `max_weight`
bytes of held values (a value's weight is what the caller says it costs); past
any bound the oldest entries go first. Sans-IO: time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

TTL = 15 * 60.0
"""Seconds an entry is kept: §10 asks for at least 10 minutes."""


@dataclass(slots=True)
class _Entry(Generic[V]):
    expires: float
    value: V
    weight: int


class NonceMap(Generic[V]):
    def __init__(
        self,
        *,
        ttl: float = TTL,
        per_sender: int = 2000,
        total: int = 100_000,
        max_weight: int = 32 << 20,
    ) -> None:
        self.ttl = ttl
        self.per_sender = per_sender
        self.total = total
        self.max_weight = max_weight
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()
        """Every key, oldest first (entries are added in time order)."""
        self._by_sender: dict[str, OrderedDict[str, _Entry[V]]] = {}
        self.weight = 0
        self.evicted = 0
        """Entries dropped before their time because a bound was reached."""

    def __len__(self) -> int:
        return len(self._order)

    def get(self, sender: str, nonce: str, now: float) -> V | None:
        entries = self._by_sender.get(sender)
        entry = None if entries is None else entries.get(nonce)
        if entry is None:
            return None
        if entry.expires <= now:
            self.discard(sender, nonce)
            return None
        return entry.value

    def put(self, sender: str, nonce: str, value: V, now: float, weight: int = 0) -> None:
        """Remember a publish (replacing an entry of the same key)."""
        self.discard(sender, nonce)
        self._expire(now)
        entries = self._by_sender.setdefault(sender, OrderedDict())
        entries[nonce] = _Entry(now + self.ttl, value, weight)
        self._order[(sender, nonce)] = None
        self.weight += weight
        while len(entries) > self.per_sender:
            self._evict(sender, next(iter(entries)))
        while len(self._order) > self.total or (self.weight > self.max_weight and self._order):
            self._evict(*next(iter(self._order)))

    def set_weight(self, sender: str, nonce: str, value: V, weight: int) -> None:
        """Replace the value held for a key (e.g. drop its bytes once they are on disk)."""
        entries = self._by_sender.get(sender)
        entry = None if entries is None else entries.get(nonce)
        if entry is not None:
            self.weight += weight - entry.weight
            entry.value, entry.weight = value, weight

    def discard(self, sender: str, nonce: str) -> None:
        entries = self._by_sender.get(sender)
        if entries is None:
            return
        entry = entries.pop(nonce, None)
        if entry is None:
            return
        self.weight -= entry.weight
        del self._order[(sender, nonce)]
        if not entries:
            del self._by_sender[sender]

    def _evict(self, sender: str, nonce: str) -> None:
        self.evicted += 1
        self.discard(sender, nonce)

    def _expire(self, now: float) -> None:
        while self._order:
            sender, nonce = next(iter(self._order))
            if self._by_sender[sender][nonce].expires > now:
                return
            self.discard(sender, nonce)
