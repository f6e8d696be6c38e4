"""BotStore: JSON values over any KeyValue backend; the SQLite file persists."""

from pathlib import Path

from bridgehost.bots.store import BotStore, MemoryKV, SqliteKV


async def test_json_values_defaults_and_prefix_listing() -> None:
    store = BotStore(MemoryKV())
    assert await store.get("missing") is None
    assert await store.get("missing", 7) == 7
    await store.set("count", 3)
    await store.set("user:bob", {"seen": [1, 2]})
    await store.set("user:amy", "x")
    assert await store.get("count", 0) == 3
    assert await store.get("user:bob") == {"seen": [1, 2]}
    assert await store.items("user:") == [("user:amy", "x"), ("user:bob", {"seen": [1, 2]})]
    await store.delete("count")
    assert await store.get("count", 0) == 0


async def test_a_value_of_another_type_gives_the_default() -> None:
    store = BotStore(MemoryKV())
    await store.set("count", "three")
    assert await store.get("count", 0) == 0
    await store.set("flag", 1)
    assert await store.get("flag", False) is False
    await store.set("ratio", 2)
    assert await store.get("ratio", 0.5) == 2


async def test_sqlite_file_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "bot.sqlite"
    kv = await SqliteKV.open(path)
    await BotStore(kv).set("k", {"a": 1})
    await kv.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    kv = await SqliteKV.open(path)
    try:
        assert await BotStore(kv).get("k") == {"a": 1}
        assert await kv.items("k") == [("k", b'{"a":1}')]
    finally:
        await kv.close()
