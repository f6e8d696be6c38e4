"""300 clients of 30 users ident at once (run as its own, niced process by
test_logins.py: on a real deployment the clients are other machines, so here they
must not take the CPU the server under test needs). Prints seconds and failures."""

import asyncio
import json
import sys
import time

from bridgehost.scalar.client import Client, connect


async def main(url: str, clients: int, users: int) -> None:
    started = time.monotonic()
    results = await asyncio.gather(
        *(
            connect(
                url,
                id=f"user{i % users}@test.example",
                secret=f"password {i % users}",
                timeout=30,
            )
            for i in range(clients)
        ),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    failures = [repr(r) for r in results if not isinstance(r, Client)]
    for r in results:
        if isinstance(r, Client):
            await r.close()
    print(json.dumps({"elapsed": elapsed, "failures": failures[:5], "failed": len(failures)}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
