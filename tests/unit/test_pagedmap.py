"""PagedMap and the IRC memory: bounded, written behind, read back after a restart."""

from __future__ import annotations

from bridgehost.adapters.irc.memory import TEXT_KEPT, Memory, Said
from bridgehost.adapters.pagedmap import PagedMap


class DictKV:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes = 0

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set(self, key: str, value: bytes) -> None:
        self.writes += 1
        self.data[key] = value

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def items(self, prefix: str = "") -> list[tuple[str, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))


async def test_saved_pages_are_read_back() -> None:
    kv = DictKV()
    m = PagedMap(kv, "x:", capacity=100, page_size=10)
    for i in range(25):
        m.put(f"k{i}", f"v{i}")
    m.put("k3", "changed")
    assert kv.writes == 0  # nothing written on the relay path
    await m.save()
    assert kv.writes == 4  # head + 3 pages
    again = PagedMap(kv, "x:", capacity=100, page_size=10)
    await again.load()
    assert [again.get(f"k{i}") for i in (0, 3, 24)] == ["v0", "changed", "v24"]
    await m.save()
    assert kv.writes == 4  # nothing changed since


async def test_oldest_pages_are_forgotten_in_memory_and_on_disk() -> None:
    kv = DictKV()
    m = PagedMap(kv, "x:", capacity=30, page_size=10)
    for i in range(100):
        m.put(f"k{i}", str(i))
        if i % 7 == 0:
            await m.save()
    await m.save()
    assert m.get("k0") is None and m.get("k69") is None and m.get("k70") == "70"
    assert len(m) == 30
    assert len(kv.data) == 4  # three page slots and the head, reused in a ring
    again = PagedMap(kv, "x:", capacity=30, page_size=10)
    await again.load()
    assert len(again) == 30 and again.get("k99") == "99" and again.get("k69") is None
    again.put("new", "1")
    await again.save()
    third = PagedMap(kv, "x:", capacity=30, page_size=10)
    await third.load()
    assert third.get("new") == "1" and third.get("k70") is None and third.get("k99") == "99"


async def test_a_first_start_has_nothing_and_a_bad_page_is_skipped() -> None:
    kv = DictKV()
    m = PagedMap(kv, "x:")
    await m.load()
    assert len(m) == 0
    m.put("a", "1")
    await m.save()
    kv.data["x:00001"] = b"not json"
    again = PagedMap(kv, "x:")
    await again.load()
    assert again.get("a") == "1"


async def test_memory_remembers_speakers_edits_and_msgids() -> None:
    kv = DictKV()
    mem = Memory(kv)
    a, b = bytes([1]) * 32, bytes([2]) * 32
    mem.remember(a, "alice", "teh answer", msgid="m1")
    mem.remember(b, "bob", "x" * (TEXT_KEPT + 5))
    mem.edited(a, "the answer")
    mem.set_msgid(b, "m2")
    await mem.save()
    again = Memory(kv)
    await again.load()
    assert again.said(a) == Said("alice", "the answer", "m1", True)
    said_b = again.said(b)
    assert said_b is not None and not said_b.complete and said_b.msgid == "m2"
    assert again.by_msgid("m1") == a and again.by_msgid("m2") == b and again.by_msgid("m3") is None
    assert again.said(bytes(32)) is None
    mem.spoke("#c", "alice", a)
    assert mem.last_line("#c", "alice") == a and mem.last_line("#c", "bob") is None
