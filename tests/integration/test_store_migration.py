"""A database written before schema versions (commit db6de5b, see tests/data/
make_db6de5b.py) opens with today's code, keeps everything, and its seqs go on."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from bridgehost.scalar.client import connect
from bridgehost.scalar.store import SCHEMA_VERSION, UNCLEAN_SKIP, Store, StoreError
from bridgehost.testing import running

DATA = Path(__file__).resolve().parents[1] / "data"
SECRETS = json.loads((DATA / "db6de5b.json").read_text())
LOBBY, BOB = "#lobby@test.example", "bob@test.example"


def old_data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    shutil.copy(DATA / "db6de5b.sqlite3", data / "bridgehost.sqlite3")
    return data


def version(data: Path) -> int:
    with sqlite3.connect(data / "bridgehost.sqlite3") as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


async def test_a_database_of_db6de5b_keeps_everything_and_seqs_go_on(tmp_path: Path) -> None:
    data = old_data_dir(tmp_path)
    assert version(data) == 0
    async with running(tmp_path) as srv:
        assert version(data) == SCHEMA_VERSION
        alice = await srv.client("alice", password=SECRETS["alice"])
        bob = await srv.client("bob", password=SECRETS["bob"])
        old = [e async for e in alice.history_after(LOBBY, 0)]
        assert [e.body for e in old] == ["old 1", "old 2", "old 3"]
        assert [e.id.hex() for e in old] == SECRETS["lobby_ids"]
        assert all(e.expected_id() == e.id for e in old)
        await alice.sub(LOBBY)
        assert (await alice.publish(LOBBY, "new")).seq == 4
        [dm] = [e async for e in bob.history_after(BOB, 0)]
        assert dm.id.hex() == SECRETS["dm_id"]
        await bob.sub(BOB)
        assert (await alice.publish(BOB, "a new direct message")).seq == 2
        assert srv.app.store is not None
        assert await srv.app.store.kv_get("adapter:libera", "position") == b"\x01\x02"
        target = await srv.app.store.event_by_id(LOBBY, old[0].id)  # index added on the way
        assert target is not None
    with sqlite3.connect(data / "bridgehost.sqlite3") as db:
        assert db.execute("SELECT * FROM meta WHERE key = 'clean'").fetchall() == []


async def test_the_old_bot_token_still_works(tmp_path: Path) -> None:
    old_data_dir(tmp_path)
    async with running(tmp_path) as srv:
        bot = await connect(srv.url, id="!bot@test.example", secret=SECRETS["bot_token"])
        await bot.close()


async def test_an_old_database_left_unclean_moves_every_seq_past_what_was_shown(
    tmp_path: Path,
) -> None:
    """db6de5b fanned events out before committing them; if it did not stop cleanly,
    subscribers may have seen up to 10000 seqs past the committed ones."""
    data = old_data_dir(tmp_path)
    with sqlite3.connect(data / "bridgehost.sqlite3") as db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'clean'")
    async with running(tmp_path) as srv:
        alice = await srv.client("alice", password=SECRETS["alice"])
        await alice.sub(LOBBY)
        assert (await alice.publish(LOBBY, "new")).seq == 3 + UNCLEAN_SKIP + 1
        assert (await alice.publish(BOB, "dm")).seq == 1 + UNCLEAN_SKIP + 1
        assert [e.body async for e in alice.history_after(LOBBY, 0)][:3] == [
            "old 1",
            "old 2",
            "old 3",
        ]
    async with running(tmp_path) as srv:  # once only
        alice = await srv.client("alice", password=SECRETS["alice"])
        await alice.sub(LOBBY)
        assert (await alice.publish(LOBBY, "again")).seq == 3 + UNCLEAN_SKIP + 2


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    data = old_data_dir(tmp_path)
    with sqlite3.connect(data / "bridgehost.sqlite3") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer bridgehost"):
        await Store.open(data, owner=True)
    with sqlite3.connect(data / "bridgehost.sqlite3") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    store = await Store.open(data, owner=True)  # the refused open let go of the lock
    await store.close()
