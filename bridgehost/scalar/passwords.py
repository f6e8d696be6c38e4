"""Password hashes: argon2id at OWASP's parameters, and the scrypt hashes of earlier
versions, still verified (and replaced at the next successful login).

OWASP's Password Storage Cheat Sheet: argon2id with m = 19 MiB, t = 2, p = 1.
bridgehost before this used scrypt N = 2^14, r = 8, p = 1, below OWASP's scrypt
minimum (N = 2^17), so such a hash is verified once more and then upgraded.
Pure CPU work, no I/O: callers run it off the event loop.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ARGON2_TIME, ARGON2_MEMORY_KIB, ARGON2_PARALLELISM = 2, 19 * 1024, 1

_hasher = PasswordHasher(
    time_cost=ARGON2_TIME, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM
)


def hash_password(password: str) -> str:
    """An argon2id hash in the PHC string format (`$argon2id$v=19$m=19456,t=2,p=1$…`)."""
    return _hasher.hash(password)


def verify_password(password: str, stored: str) -> tuple[bool, bool]:
    """(whether `password` matches `stored`, whether `stored` should be replaced by a
    fresh `hash_password(password)`: an older algorithm or weaker parameters)."""
    if stored.startswith("$argon2"):
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, False
        return True, _hasher.check_needs_rehash(stored)
    if stored.startswith("scrypt$"):
        ok = _verify_scrypt(password, stored)
        return ok, ok
    return False, False


def _verify_scrypt(password: str, stored: str) -> bool:
    """The hashes bridgehost wrote before argon2id: scrypt$N$r$p$salt$digest (base64)."""
    try:
        _, n, r, p, salt_b64, digest_b64 = stored.split("$")
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
def dummy_hash() -> str:
    """What an unknown user's password is checked against, at the same cost; made on
    first use, not at import (every `bridgehost` command imports this module)."""
    return hash_password("not a password")
