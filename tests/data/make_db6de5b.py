"""Make tests/data/db6de5b.sqlite3: a data dir's database written by bridgehost as of
commit db6de5b (before schema versions), for the migration test.

Run from a checkout of that commit (it uses that code, not today's):

    git worktree add --detach /tmp/old db6de5b
    cd /tmp/old && PYTHONPATH=/tmp/old python /path/to/tests/data/make_db6de5b.py OUT_DIR

It starts that version's server in-process with data in OUT_DIR/data, adds a
user and a bot token, publishes three channel events and a direct message,
writes adapter key-value state, stops cleanly, and prints the secrets as JSON
(kept beside the database in db6de5b.json).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bridgehost.testing import running


async def main(out: Path) -> None:
    async with running(out) as srv:
        _, password = await srv.add_user("alice", "alice-old-password")
        await srv.add_user("bob", "bob-old-password")
        token = await srv.token("!bot@test.example")
        alice = await srv.client("alice")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        events = [await alice.publish(lobby, f"old {i}") for i in range(1, 4)]
        dm = await alice.publish(srv.user("bob"), "an old direct message")
        store = srv.app.store
        assert store is not None
        await store.kv_set("adapter:libera", "position", b"\x01\x02")
        secrets = {
            "alice": password,
            "bob": "bob-old-password",
            "bot_token": token,
            "lobby_ids": [e.id.hex() for e in events],
            "dm_id": dm.id.hex(),
        }
    print(json.dumps(secrets, indent=1))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
