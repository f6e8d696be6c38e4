"""Credentials: scrypt-hashed user passwords, tokens for reserved IDs.

Tokens are 256-bit random strings, so a fast SHA-256 hash is enough for
them; passwords are human-chosen and get scrypt. Verification never says
which part was wrong (§9: unknown user, wrong secret and wrong method all
look alike) and costs the same for an unknown user.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

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


_DUMMY_HASH = hash_password("not a password", salt=b"0123456789abcdef")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def verify_token(token: str, stored: str) -> bool:
    return hmac.compare_digest(hash_token(token).encode(), stored.encode())


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
            raise AuthFailed("authentication failed")
        if method == "password":
            row = await self.store.credential(ident)
            stored = row[1] if row is not None and row[0] == "password" else _DUMMY_HASH
            ok = await asyncio.to_thread(verify_password, secret, stored)
            if ok and stored is not _DUMMY_HASH:
                return
        raise AuthFailed("authentication failed")
