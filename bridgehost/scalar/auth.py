"""Credentials: scrypt-hashed user passwords, tokens for reserved IDs.

Tokens are 256-bit random strings, so a fast SHA-256 hash is enough for
them; passwords are human-chosen and get scrypt. Verification never says
which part was wrong (§9: unknown user, wrong secret and wrong method all
look alike) and costs the same for an unknown user.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from . import ids
from .errors import AuthFailed
from .ids import Kind
from .store import Store

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
TOKEN_PREFIX = "bht_"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if algo != "scrypt":
            return False
        salt, want = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        got = hashlib.scrypt(
            password.encode(),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(want),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@functools.cache
def _dummy_hash() -> str:
    """What an unknown user's password is checked against (same cost); made on first
    use, not at import (every `bridgehost` command imports this module)."""
    return hash_password("not a password", salt=b"0123456789abcdef")


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


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Checks ident credentials against the store and in-memory tokens.

    In-memory tokens are how in-process adapters and bots log in over a local
    connection without ever writing a secret to disk.
    """

    def __init__(self, store: Store, domain: str) -> None:
        self.store = store
        self.domain = domain
        self._ephemeral: dict[str, str] = {}

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
        hashed = await asyncio.to_thread(hash_password, password)
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
                    UserToken(key[:12], record["user"], record["label"], record["created"])
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

    async def verify(self, ident: str, method: str | None, secret: str | None) -> None:
        """Raise AuthFailed unless `secret` proves `ident` (already normalised)."""
        if method is None or secret is None:
            raise AuthFailed("authentication failed")
        if method == "token":
            stored_ephemeral = self._ephemeral.get(ident)
            if stored_ephemeral is not None and verify_token(secret, stored_ephemeral):
                return
            row = await self.store.credential(ident)
            if row is not None and row[0] == "token" and verify_token(secret, row[1]):
                return
            issued = await self.store.kv_get(USER_TOKENS, _token_key(secret))
            if issued is not None and json.loads(issued)["user"] == ident:
                return
            raise AuthFailed("authentication failed")
        if method == "password":
            row = await self.store.credential(ident)
            dummy = _dummy_hash()
            stored = row[1] if row is not None and row[0] == "password" else dummy
            ok = await asyncio.to_thread(verify_password, secret, stored)
            if ok and stored is not dummy:
                return
        raise AuthFailed("authentication failed")
