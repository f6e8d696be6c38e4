"""Who may try to log in, and how often (§9, §10): failed idents per remote address.

Every address has an allowance of failed idents (a token bucket). A password
check that has to hash holds one token while it runs and gives it back if the
password was right; a failed ident keeps its token spent (never below zero).
So N simultaneous wrong secrets from one address cost N and at most the
allowance of them is checked at all, while right ones only wait for a token
that a running check holds: a crowd of users behind one address logging in
at once gets in, one allowance at a time. Checks that need no hash (a cached
password, a token, one joined to the same check already running) hold
nothing. Once the window has passed the right secret always gets in.

Addresses are counted by `address_key`: an IPv4 address as it is, an IPv6
address by its /64 (one host, or one customer line, usually owns a whole /64).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress

from ..runtime import Clock, TokenBucket
from .errors import RateLimited


@functools.lru_cache(maxsize=4096)
def address_key(remote: str) -> str:
    """The unit limits count by: an IPv4 address, an IPv6 /64, else the text itself.
    (Cached: `ipaddress` is slow, and one address often has many connections.)"""
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


class Attempt:
    """One login attempt from one address:

    attempt = limiter.attempt(remote, rid)  # RateLimited if the allowance is spent
    await attempt.hold()                    # before hashing (may wait, or raise)
    attempt.succeeded() / attempt.failed()  # once; failed() after succeeded() is a no-op
    """

    def __init__(self, limiter: AddressLimiter, key: str, rid: int | None) -> None:
        self.limiter, self.key, self.rid = limiter, key, rid
        self.holding = False
        self.settled = False

    async def hold(self) -> None:
        """Hold one token of the allowance while an expensive check runs."""
        if not self.holding and not self.settled:
            await self.limiter._hold(self.key, self.rid)
            self.holding = True

    def succeeded(self) -> None:
        if not self.settled:
            self.settled = True
            if self.holding:
                self.limiter._release(self.key, refund=True)

    def failed(self) -> None:
        """A failed ident costs one token, as far as there is one."""
        if not self.settled:
            self.settled = True
            if self.holding:
                self.limiter._release(self.key, refund=False)
            else:
                self.limiter.bucket(self.key).try_take()


class AddressLimiter:
    """The failed-ident allowance of every address: a bucket each, forgotten when full."""

    def __init__(self, burst: int, clock: Clock, refill_per_s: float = 0.5) -> None:
        self.burst, self.clock, self.rate = burst, clock, refill_per_s
        self._buckets: dict[str, TokenBucket] = {}
        self._held: dict[str, int] = {}
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}

    def bucket(self, address: str) -> TokenBucket:
        key = address_key(address)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 10000:
                self._buckets = {
                    a: b
                    for a, b in self._buckets.items()
                    if b.wait_ms() > 0 or b.tokens < b.burst or a in self._held
                }
            bucket = self._buckets[key] = TokenBucket(self.rate, max(1, self.burst), self.clock)
        return bucket

    def attempt(self, address: str, rid: int | None = None) -> Attempt:
        """Start a login attempt; `RateLimited` (with the ms until a token is back) when
        the allowance is spent and no check that could give one back is running."""
        key = address_key(address)
        wait = self.bucket(key).wait_ms()
        if wait and not self._held.get(key):
            raise RateLimited("too many failed idents from your address", rid=rid, retry_after=wait)
        return Attempt(self, key, rid)

    async def _hold(self, key: str, rid: int | None) -> None:
        bucket = self.bucket(key)
        while not bucket.try_take():
            if not self._held.get(key):
                raise RateLimited(
                    "too many failed idents from your address",
                    rid=rid,
                    retry_after=bucket.wait_ms(),
                )
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, []).append(waiter)
            try:
                await waiter
            finally:
                waiters = self._waiting.get(key)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiting.pop(key, None)
        self._held[key] = self._held.get(key, 0) + 1

    def _release(self, key: str, *, refund: bool) -> None:
        left = self._held.get(key, 0) - 1
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)
        if refund:
            self.bucket(key).give_back()
        for waiter in self._waiting.pop(key, []):
            if not waiter.done():
                waiter.set_result(None)
