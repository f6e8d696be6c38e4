"""Who may try to log in, and how often (§9, §10): failed idents per remote address.

Addresses are counted by `address_key`: an IPv4 address as it is, an IPv6
address by its /64 (one host, or one customer line, usually owns a whole /64).
"""

from __future__ import annotations

import ipaddress

from ..runtime import Clock, TokenBucket


def address_key(remote: str) -> str:
    """The unit limits count by: an IPv4 address, an IPv6 /64, else the text itself."""
    try:
        addr = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class AddressLimiter:
    """Failed idents per remote address: a bucket each, forgotten when full again."""

    def __init__(self, burst: int, clock: Clock, refill_per_s: float = 0.5) -> None:
        self.burst, self.clock, self.rate = burst, clock, refill_per_s
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, address: str) -> TokenBucket:
        key = address_key(address)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 10000:
                self._buckets = {
                    a: b for a, b in self._buckets.items() if b.wait_ms() > 0 or b.tokens < b.burst
                }
            bucket = self._buckets[key] = TokenBucket(self.rate, max(1, self.burst), self.clock)
        return bucket
