"""Credentials: argon2id-hashed user passwords, tokens for reserved IDs and users.

Tokens are 256-bit random strings, so a fast SHA-256 hash is enough for
them; passwords are human-chosen and get argon2id (passwords.py), checked
off the event loop by a bounded `PasswordChecker`. Verification never says
which part was wrong (§9: unknown user, wrong secret and wrong method all
look alike) and costs the same for an unknown user.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..runtime import SYSTEM_CLOCK, Clock
from . import ids
from .errors import AuthFailed
from .ids import Kind
from .logins import Attempt
from .passwords import dummy_hash, hash_password, verify_password
from .store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

TOKEN_PREFIX = "bht_"


NICE = 10
"""Niceness of password threads (Linux schedules each thread on its own)."""


def _yield_cpu() -> None:
    """Password threads run at a lower priority than the event loop's thread (Linux
    schedules threads on their own), so a crowd logging in never slows the pings and
    messages of everyone else on a busy machine."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class PasswordChecker:
    """Checks passwords off the event loop, at most `workers` at a time (argon2id takes
    19 MiB and tens of ms each).

    As Dovecot's auth cache does, a verified password is remembered for `ttl`
    seconds, so a crowd of clients reconnecting after a restart costs one hash
    per user, not one per connection; checks of the same credentials that overlap
    share one hash. Entries are keyed by an HMAC (with a key that lives only in
    this process) of the ID, the stored hash and the password: a changed password
    misses the cache, and the cache holds no password.
    """

    def __init__(
        self,
        *,
        workers: int = min(2, os.cpu_count() or 1),
        ttl: float = 300.0,
        size: int = 10000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.workers = max(1, workers)
        self.ttl, self.size, self.clock = ttl, size, clock
        self._pool: ThreadPoolExecutor | None = None
        self._key = secrets.token_bytes(32)
        self._inflight: dict[bytes, asyncio.Future[tuple[bool, bool]]] = {}
        self._verified: OrderedDict[bytes, float] = OrderedDict()
        self.hashes = 0
        """Password hashes computed (checks that neither the cache nor a check in
        flight could answer)."""

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.workers, thread_name_prefix="password", initializer=_yield_cpu
            )
        return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run password work in the bounded pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)

    async def check(
        self, ident: str, secret: str, stored: str, attempt: Attempt | None = None
    ) -> tuple[bool, bool]:
        """(password right, stored hash due for an upgrade); see `verify_password`.
        Only a check that has to hash holds a token of `attempt`'s allowance."""
        message = b"\0".join((ident.encode(), stored.encode(), secret.encode()))
        key = hmac.new(self._key, message, hashlib.sha256).digest()
        if self._cached(key):
            return True, False
        future = self._inflight.get(key)
        if future is None and attempt is not None:
            await attempt.hold()  # may wait for a running check of the same address
            if self._cached(key):
                return True, False
            future = self._inflight.get(key)
        if future is None:
            self.hashes += 1
            future = asyncio.ensure_future(self.run(verify_password, secret, stored))
            self._inflight[key] = future
            future.add_done_callback(lambda f: self._settle(key, f))
            return await asyncio.shield(future)
        ok, _ = await asyncio.shield(future)
        return ok, False  # whoever started the check upgrades the hash

    def _cached(self, key: bytes) -> bool:
        expires = self._verified.get(key)
        if expires is None:
            return False
        if expires > self.clock.monotonic():
            self._verified.move_to_end(key)
            return True
        del self._verified[key]
        return False

    def _settle(self, key: bytes, future: asyncio.Future[tuple[bool, bool]]) -> None:
        self._inflight.pop(key, None)
        if future.cancelled() or future.exception() is not None or not future.result()[0]:
            return
        self._verified[key] = self.clock.monotonic() + self.ttl
        while len(self._verified) > self.size:
            self._verified.popitem(last=False)

    def forget(self) -> None:
        """Drop every remembered verification (e.g. after passwords changed)."""
        self._verified.clear()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def verify_token(token: str, stored: str) -> bool:
    return hmac.compare_digest(hash_token(token).encode(), stored.encode())


USER_TOKENS = "user-tokens"
"""Store namespace of user tokens: sha256 hex of the token -> JSON {user, label, created}."""
MAX_LABEL = 200


@dataclass(frozen=True, slots=True)
class UserToken:
    """One issued user token as `token list` shows it (never the token itself)."""

    id: str
    """The first 12 hex digits of the token's hash: what `token revoke` takes."""
    user: str
    label: str
    created: int
    """ms since the epoch."""
    last_used: int | None = None
    """ms since the epoch of the last login with it (to the minute), if any."""


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Checks ident credentials against the store and in-memory tokens.

    In-memory tokens are how in-process adapters and bots log in over a local
    connection without ever writing a secret to disk.
    """

    def __init__(
        self, store: Store, domain: str, *, passwords: PasswordChecker | None = None
    ) -> None:
        self.store = store
        self.domain = domain
        self.passwords = passwords or PasswordChecker()
        self._ephemeral: dict[str, str] = {}

    def close(self) -> None:
        self.passwords.close()

    def issue_ephemeral(self, ident: str) -> str:
        token = new_token()
        self._ephemeral[ids.normalise(ident)] = hash_token(token)
        return token

    async def add_user(self, name: str, password: str, now_ms: int) -> str:
        ident = ids.parse(name if "@" in name else f"{name}@{self.domain}")
        if ident.kind is not Kind.USER:
            raise ValueError(f"{name!r} is not a user ID (no '#' or '!' allowed)")
        if ident.name.startswith("guest-"):
            raise ValueError("user names starting with 'guest-' are reserved for guests")
        if ident.domain != self.domain:
            raise ValueError(f"user must be of this server's domain {self.domain!r}")
        if not password:
            raise ValueError("empty password")
        hashed = await self.passwords.run(hash_password, password)
        await self.store.set_credential(str(ident), "password", hashed, now_ms)
        return str(ident)

    async def create_token(self, reserved: str, now_ms: int) -> tuple[str, str]:
        ident = ids.parse(reserved)
        if ident.kind is not Kind.RESERVED:
            raise ValueError(f"{reserved!r} is not a reserved ID (it must start with '!')")
        if ident.domain != self.domain:
            raise ValueError(f"ID must be of this server's domain {self.domain!r}")
        token = new_token()
        await self.store.set_credential(str(ident), "token", hash_token(token), now_ms)
        return str(ident), token

    async def issue_user_token(self, user: str, label: str, now_ms: int | None = None) -> str:
        """A revocable token that logs `user` in (`ident` with method `token`), e.g. for a
        browser that stays logged in across reloads. Only its hash is stored."""
        ident = ids.parse(user)
        if ident.kind is not Kind.USER or ident.domain != self.domain:
            raise ValueError(f"{user!r} is not a user of this server")
        token = new_token()
        record = {
            "user": str(ident),
            "label": label[:MAX_LABEL],
            "created": now_ms if now_ms is not None else int(time.time() * 1000),
        }
        await self.store.kv_set(USER_TOKENS, _token_key(token), json.dumps(record).encode())
        return token

    async def user_tokens(self, user: str | None = None) -> list[UserToken]:
        """Issued user tokens, oldest first (all users', or one user's)."""
        found = []
        for key, value in await self.store.kv_items(USER_TOKENS):
            record = json.loads(value)
            if user is None or record["user"] == ids.normalise(user):
                found.append(
                    UserToken(
                        key[:12],
                        record["user"],
                        record["label"],
                        record["created"],
                        record.get("last_used"),
                    )
                )
        return sorted(found, key=lambda t: (t.created, t.id))

    async def revoke_user_token(self, token_id: str) -> UserToken | None:
        """Revoke by id (or by the token itself); the next `ident` with it fails."""
        key = _token_key(token_id) if token_id.startswith(TOKEN_PREFIX) else token_id.lower()
        if len(key) < 12 or any(c not in "0123456789abcdef" for c in key):
            return None
        matches = await self.store.kv_items(USER_TOKENS, key)
        if len(matches) != 1:
            return None
        full, value = matches[0]
        record = json.loads(value)
        await self.store.kv_delete(USER_TOKENS, full)
        return UserToken(full[:12], record["user"], record["label"], record["created"])

    async def knows(self, ident: str) -> bool:
        """Whether `ident` (normalised) has credentials here: a user or a reserved ID."""
        return ident in self._ephemeral or await self.store.credential(ident) is not None

    async def verify(
        self,
        ident: str,
        method: str | None,
        secret: str | None,
        attempt: Attempt | None = None,
    ) -> None:
        """Raise AuthFailed unless `secret` proves `ident` (already normalised). A password
        check that has to hash holds a token of `attempt` (logins.py) while it runs."""
        if method is None or secret is None:
            raise AuthFailed("authentication failed")
        if method == "token":
            stored_ephemeral = self._ephemeral.get(ident)
            if stored_ephemeral is not None and verify_token(secret, stored_ephemeral):
                return
            row = await self.store.credential(ident)
            if row is not None and row[0] == "token" and verify_token(secret, row[1]):
                return
            key = _token_key(secret)
            issued = await self.store.kv_get(USER_TOKENS, key)
            if issued is not None and json.loads(issued)["user"] == ident:
                await self._used(key, json.loads(issued))
                return
            raise AuthFailed("authentication failed")
        if method == "password":
            row = await self.store.credential(ident)
            if row is None or row[0] != "password":
                dummy = await self.passwords.run(dummy_hash)  # made once, off the loop
                await self.passwords.check(ident, secret, dummy, attempt)  # the same cost
                raise AuthFailed("authentication failed")
            ok, upgrade = await self.passwords.check(ident, secret, row[1], attempt)
            if not ok:
                raise AuthFailed("authentication failed")
            if upgrade:
                await self._upgrade(ident, secret)
            return
        raise AuthFailed("authentication failed")

    async def _used(self, key: str, record: dict[str, Any]) -> None:
        """Note when a user token was last used (at most once a minute per token)."""
        now = int(time.time() * 1000)
        if now - int(record.get("last_used") or 0) < 60_000:
            return
        record["last_used"] = now
        try:
            await self.store.kv_set(USER_TOKENS, key, json.dumps(record).encode())
        except Exception as exc:
            log.warning("could not note the use of a user token: %s", exc)

    async def _upgrade(self, ident: str, password: str) -> None:
        """Replace an older hash (scrypt, weaker argon2 parameters) now that we have the
        password; a failure here costs nothing but the upgrade."""
        try:
            hashed = await self.passwords.run(hash_password, password)
            await self.store.set_credential(ident, "password", hashed, int(time.time() * 1000))
        except Exception as exc:
            log.warning("could not upgrade the password hash of %s: %s", ident, exc)
        else:
            log.info("password hash of %s upgraded to argon2id", ident)
