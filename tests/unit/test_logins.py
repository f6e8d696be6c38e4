"""Logins without sockets: password hashes, the bounded checker with its cache, and
the failed-ident allowance per address."""

import asyncio
import base64
import hashlib
import threading
import time

import pytest
from argon2 import PasswordHasher

from bridgehost.runtime import FakeClock
from bridgehost.scalar import auth as auth_module
from bridgehost.scalar import passwords
from bridgehost.scalar.auth import PasswordChecker
from bridgehost.scalar.errors import RateLimited
from bridgehost.scalar.logins import AddressLimiter, Attempt, address_key


def _old_scrypt(password: str) -> str:
    """A hash exactly as bridgehost wrote them before argon2id (db6de5b)."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    b64 = base64.b64encode
    return f"scrypt$16384$8$1${b64(salt).decode()}${b64(digest).decode()}"


def test_argon2id_at_owasp_parameters() -> None:
    hashed = passwords.hash_password("correct horse")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password("correct horse", hashed) == (True, False)
    assert passwords.verify_password("wrong", hashed) == (False, False)
    assert hashed != passwords.hash_password("correct horse")  # salted


def test_old_scrypt_hashes_verify_and_ask_for_an_upgrade() -> None:
    old = _old_scrypt("hunter2")
    assert passwords.verify_password("hunter2", old) == (True, True)
    assert passwords.verify_password("hunter3", old) == (False, False)
    weaker = PasswordHasher(time_cost=1, memory_cost=4096, parallelism=1).hash("x")
    assert passwords.verify_password("x", weaker) == (True, True)
    assert passwords.verify_password("x", "nonsense") == (False, False)
    assert passwords.verify_password("x", "scrypt$broken") == (False, False)


async def test_the_same_credentials_checked_at_once_cost_one_hash() -> None:
    clock = FakeClock()
    checker = PasswordChecker(workers=2, ttl=60, clock=clock)
    stored = await checker.run(passwords.hash_password, "pw")
    try:
        results = await asyncio.gather(*(checker.check("a@x", "pw", stored) for _ in range(20)))
        assert [ok for ok, _ in results] == [True] * 20
        assert checker.hashes == 1
        assert await checker.check("a@x", "pw", stored) == (True, False)  # from the cache
        assert checker.hashes == 1
        assert (await checker.check("a@x", "wrong", stored))[0] is False
        assert (await checker.check("b@x", "pw", stored))[0] is True  # another ID: own entry
        assert checker.hashes == 3
        clock.advance(61)  # the cache is short-lived
        assert (await checker.check("a@x", "pw", stored))[0] is True
        assert checker.hashes == 4
        new = await checker.run(passwords.hash_password, "pw")  # a changed password hash
        assert (await checker.check("a@x", "pw", new))[0] is True
        assert checker.hashes == 5
    finally:
        checker.close()


async def test_password_checks_run_off_the_loop_at_most_workers_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    active, peak, lock = 0, 0, threading.Lock()

    def slow_verify(password: str, stored: str) -> tuple[bool, bool]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return False, False

    monkeypatch.setattr(auth_module, "verify_password", slow_verify)
    checker = PasswordChecker(workers=2)
    loop = asyncio.get_running_loop()
    ticks, stop = 0, loop.time() + 10

    async def ticker() -> None:
        nonlocal ticks
        while loop.time() < stop:
            ticks += 1
            await asyncio.sleep(0.005)

    running = asyncio.ensure_future(ticker())
    try:
        await asyncio.gather(*(checker.check(f"u{i}@x", "pw", "h") for i in range(10)))
    finally:
        stop = 0
        await running
        checker.close()
    assert peak == 2 and checker.hashes == 10
    assert ticks >= 20  # the loop kept turning while 10 x 50 ms of checks ran


async def test_wrong_secrets_at_once_cost_the_allowance_and_no_more() -> None:
    clock = FakeClock()
    limiter = AddressLimiter(3, clock)
    attempts = [limiter.attempt("198.51.100.7") for _ in range(40)]
    held = []
    for a in attempts[:3]:
        await a.hold()
        held.append(a)
    waiting = [asyncio.ensure_future(a.hold()) for a in attempts[3:]]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiting)  # they wait for the running checks
    for a in held:
        a.failed()  # three wrong passwords: the allowance is spent
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RateLimited) for r in results)  # never checked
    for a in attempts[3:]:
        a.failed()
    bucket = limiter.bucket("198.51.100.7")
    assert 0 <= bucket.tokens < 1  # never negative
    with pytest.raises(RateLimited) as info:
        limiter.attempt("198.51.100.7", rid=4)
    assert info.value.rid == 4 and 0 < info.value.retry_after <= 2000
    clock.advance(2.0)  # the window passed: the right password gets in
    right = limiter.attempt("198.51.100.7")
    await right.hold()
    right.succeeded()
    for _ in range(10):  # and a right one gives its token back
        again = limiter.attempt("198.51.100.7")
        await again.hold()
        again.succeeded()
    limiter.attempt("198.51.100.8")  # another address has its own allowance


async def test_right_secrets_behind_one_address_wait_their_turn() -> None:
    limiter = AddressLimiter(2, FakeClock())
    attempts = [limiter.attempt("203.0.113.1") for _ in range(30)]

    async def log_in(a: Attempt) -> None:
        await a.hold()
        await asyncio.sleep(0)
        a.succeeded()

    await asyncio.gather(*(log_in(a) for a in attempts))
    assert limiter.bucket("203.0.113.1").tokens == 2
    cheap = limiter.attempt("203.0.113.1")
    cheap.failed()  # a failure that held nothing (a wrong token) still costs one
    assert limiter.bucket("203.0.113.1").tokens == 1


def test_ipv6_addresses_count_per_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("unix") == "unix"
    limiter = AddressLimiter(1, FakeClock())
    limiter.attempt("2001:db8:1:2::1").failed()
    with pytest.raises(RateLimited):
        limiter.attempt("2001:db8:1:2::99")
