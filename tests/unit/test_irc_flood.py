"""The IRC flood bucket and connection helpers (no sockets)."""

from __future__ import annotations

import base64

from bridgehost.adapters.irc.flood import flood_bucket
from bridgehost.adapters.irc.protocol import fold, nick_candidates, sasl_plain_chunks
from bridgehost.testing import FakeClock


def test_bucket_allows_a_burst_then_paces() -> None:
    clock = FakeClock()
    bucket = flood_bucket(4, 0.7, clock)
    assert [bucket.reserve() for _ in range(4)] == [0, 0, 0, 0]
    waits = [bucket.reserve() for _ in range(3)]
    assert [round(w, 6) for w in waits] == [0.7, 1.4, 2.1]


def test_bucket_refills_with_time_up_to_burst() -> None:
    clock = FakeClock()
    bucket = flood_bucket(2, 1.0, clock)
    bucket.reserve()
    bucket.reserve()
    clock.advance(1.0)
    assert bucket.reserve() == 0
    assert bucket.reserve() == 1.0
    clock.advance(100)
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 1.0]


def test_bucket_interval_zero_is_off() -> None:
    bucket = flood_bucket(1, 0, FakeClock())
    assert all(bucket.reserve() == 0 for _ in range(1000))


async def test_take_waits_the_reserved_time() -> None:
    bucket = flood_bucket(1, 0.05)
    import time

    start = time.monotonic()
    for _ in range(3):
        await bucket.acquire()
    assert time.monotonic() - start >= 0.09


def test_fold_is_rfc1459() -> None:
    assert fold("#Foo[]\\~") == "#foo{}|^"


def test_nick_candidates() -> None:
    assert nick_candidates("b", ("c",))[:5] == ["b", "c", "b_", "b__", "b1"]
    assert len(set(nick_candidates("b", ("b_",)))) == len(nick_candidates("b", ("b_",)))


def test_sasl_plain_chunks() -> None:
    chunks = sasl_plain_chunks("alice", "pw")
    assert chunks == [base64.b64encode(b"alice\0alice\0pw").decode()]
    long = sasl_plain_chunks("a", "x" * 296)  # 300 bytes -> exactly 400 base64 chars
    assert len(long) == 2 and len(long[0]) == 400 and long[1] == "+"


def test_spend_accounts_for_unpaced_lines() -> None:
    clock = FakeClock()
    bucket = flood_bucket(4, 0.5, clock)
    bucket.take(5)
    assert bucket.reserve() == 1.0  # 4 - 5 - 1 = -2 tokens
    clock.advance(10)
    bucket.take(1)
    assert bucket.reserve() == 0
