"""The bounded (sender, nonce) memory behind idempotent publish (§10)."""

from bridgehost.scalar.nonces import NonceMap


def test_an_entry_lives_for_the_ttl() -> None:
    m: NonceMap[str] = NonceMap(ttl=600)
    m.put("a@x", "n1", "event-1", now=0)
    assert m.get("a@x", "n1", now=599.9) == "event-1"
    assert m.get("b@x", "n1", now=1) is None  # per sender
    assert m.get("a@x", "n1", now=600) is None
    assert len(m) == 0


def test_bounds_per_sender_and_overall_drop_the_oldest() -> None:
    m: NonceMap[int] = NonceMap(per_sender=3, total=5)
    for i in range(5):
        m.put("a@x", f"n{i}", i, now=i)
    assert [m.get("a@x", f"n{i}", now=10) for i in range(5)] == [None, None, 2, 3, 4]
    for i in range(3):
        m.put("b@x", f"n{i}", 10 + i, now=10 + i)
    assert len(m) == 5
    assert m.get("b@x", "n0", now=20) == 10
    for i in range(3):
        m.put(f"c{i}@x", "n", i, now=20 + i)
    assert len(m) == 5
    assert m.get("a@x", "n2", now=30) is None  # the oldest went first
    assert m.evicted == 2 + 1 + 3


def test_weight_is_bounded_and_can_be_released() -> None:
    m: NonceMap[bytes | None] = NonceMap(max_weight=100)
    m.put("a@x", "big", b"x" * 80, now=0, weight=80)
    m.put("a@x", "next", b"y" * 30, now=1, weight=30)
    assert m.get("a@x", "big", now=2) is None and m.weight == 30
    m.set_weight("a@x", "next", None, 0)
    assert m.weight == 0 and len(m) == 1


def test_expired_entries_are_freed_as_new_ones_come() -> None:
    m: NonceMap[int] = NonceMap(ttl=10)
    for i in range(1000):
        m.put("a@x", f"n{i}", i, now=i * 0.1)
    assert len(m) <= 101
    m.discard("a@x", "n999")
    m.discard("nobody@x", "n1")
    assert m.get("a@x", "n999", now=100) is None
