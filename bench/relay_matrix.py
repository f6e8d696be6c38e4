"""Latency of the Matrix bridge, against Synapse's own client-to-client latency.

One run starts a real Synapse (tests/servers/synapse.py: SQLite, rate limits
raised, on loopback) and bridgehost as its own process (`bridgehost run`)
with `#bench@localhost` bridged to a Matrix room. This process plays two
Matrix users, `a` and `b` (matrix-nio, `b` long-polling `/sync`), and one
Scalar client, and measures, one message at a time:

- baseline:      a -> Synapse -> b's /sync (plain Matrix);
- matrix->scalar: the same message from a -> Synapse -> bridge's /sync -> hub
                  -> Scalar client;
- scalar->matrix: Scalar client -> hub -> bridge -> Synapse -> b's /sync.

The first two come from the very same send, so they share the homeserver's
noise. All times are taken in this process with `perf_counter_ns` (send just
before the request, receive when the sync answer or the event is parsed).

    python bench/relay_matrix.py                 # 300 samples per path
    python bench/relay_matrix.py --samples 100 --json out.json
    python bench/relay_matrix.py --shm           # Synapse's data on /dev/shm
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from nio import AsyncClient, SyncResponse  # noqa: E402
from relaying import (  # noqa: E402
    PASSWORD,
    TOPIC,
    login,
    scalar_loop,
    start_bridge,
    stop,
    summary,
    synced_bodies,
    until_relayed,
)
from servers import PUBLISHER  # noqa: E402

from bridgehost.scalar.client import connect  # noqa: E402
from tests.servers.synapse import Synapse, SynapseTemplate  # noqa: E402


class Receiver:
    """Matrix user `b`: long-polls /sync and timestamps every message as it is parsed."""

    def __init__(self, client: AsyncClient, room_id: str) -> None:
        self.client = client
        self.room_id = room_id
        self.waiting: dict[str, asyncio.Future[int]] = {}

    async def sync_loop(self, since: str) -> None:
        async for now, body in synced_bodies(self.client, self.room_id, since):
            future = self.waiting.pop(body.rsplit(" ", 1)[-1], None)
            if future is not None and not future.done():
                future.set_result(now)


def start_bridgehost(
    work: Path, hs: Synapse, bot: str, room_id: str
) -> tuple[subprocess.Popen[bytes], int, str]:
    return start_bridge(
        work,
        f"""    type: matrix
    homeserver: {hs.url}
    user_id: "{bot}"
    password: {PASSWORD}
""",
        room_id,
    )


async def text(client: AsyncClient, room_id: str, body: str) -> None:
    await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})


async def measure(args: argparse.Namespace, hs: Synapse, work: Path) -> dict[str, Any]:
    a, b = await login(hs, "a"), await login(hs, "b")
    created = await a.room_create(invite=[hs.user_id("b"), hs.user_id("bridge")])
    room_id = created.room_id
    await b.join(room_id)
    first = await b.sync(timeout=0)
    assert isinstance(first, SyncResponse), first
    receiver = Receiver(b, room_id)
    proc, port, token = start_bridgehost(work, hs, hs.user_id("bridge"), room_id)
    tasks = [asyncio.create_task(receiver.sync_loop(first.next_batch))]
    client = await connect(f"tcp://127.0.0.1:{port}", id=PUBLISHER, secret=token)
    loop = asyncio.get_running_loop()
    try:
        await client.sub(TOPIC)
        scalar_waiting: dict[str, asyncio.Future[int]] = {}
        tasks.append(asyncio.create_task(scalar_loop(client, scalar_waiting)))
        await until_relayed(client, TOPIC, receiver.waiting, attempts=300, wait=0.2, far="Matrix")
        for i in range(args.warmup):
            key = f"w{i}"
            at_b, at_scalar = loop.create_future(), loop.create_future()
            receiver.waiting[key], scalar_waiting[key] = at_b, at_scalar
            await text(a, room_id, f"warm-up {key}")
            await asyncio.wait_for(asyncio.gather(at_b, at_scalar), 10)

        base, to_scalar, to_matrix = [], [], []
        for i in range(args.samples):
            key = f"m{i}"
            at_b, at_scalar = loop.create_future(), loop.create_future()
            receiver.waiting[key], scalar_waiting[key] = at_b, at_scalar
            sent = time.perf_counter_ns()
            await text(a, room_id, f"sample {key}")
            got_b, got_scalar = await asyncio.wait_for(asyncio.gather(at_b, at_scalar), 10)
            base.append(got_b - sent)
            to_scalar.append(got_scalar - sent)
            await asyncio.sleep(args.interval)

            key = f"s{i}"
            at_b = receiver.waiting[key] = loop.create_future()
            sent = time.perf_counter_ns()
            await client.publish(TOPIC, f"sample {key}")
            to_matrix.append(await asyncio.wait_for(at_b, 10) - sent)
            await asyncio.sleep(args.interval)
    finally:
        for task in tasks:
            task.cancel()
        await client.close()
        await a.close()
        await b.close()
        stop(proc)
    return {
        "baseline (Matrix a -> b)": summary(base),
        "Matrix -> Scalar": summary(to_scalar),
        "Scalar -> Matrix": summary(to_matrix),
    }


def report(results: dict[str, Any]) -> str:
    base = results["baseline (Matrix a -> b)"]
    lines = [f"{'path':<26}{'n':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"]
    for name, s in results.items():
        lines.append(
            f"{name:<26}{s['n']:>6}{s['p50']:>9.2f}{s['p90']:>9.2f}{s['p99']:>9.2f}{s['max']:>9.2f}"
        )
    for name in ("Matrix -> Scalar", "Scalar -> Matrix"):
        s = results[name]
        p50, p99 = s["p50"] - base["p50"], s["p99"] - base["p99"]
        lines.append(
            f"{name}: adds {p50:+.2f} ms p50, {p99:+.2f} ms p99 over the baseline"
            f" (p99 ratio {s['p99'] / base['p99']:.2f}x)"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--samples", type=int, default=300, help="messages per path")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.01, help="pause between samples, s")
    p.add_argument("--shm", action="store_true", help="Synapse's data on /dev/shm (tmpfs)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relay_matrix-"))
    hs_dir = Path(tempfile.mkdtemp(prefix="relay_matrix-hs-", dir="/dev/shm" if args.shm else None))
    try:
        hs = Synapse(hs_dir, template=SynapseTemplate.generate(work / "template"))
        hs.start()
        try:
            for user in ("a", "b", "bridge"):
                hs.register_user(user, PASSWORD)
            results = asyncio.run(measure(args, hs, work))
        finally:
            hs.stop()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(hs_dir, ignore_errors=True)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "synapse_data": "tmpfs" if args.shm else "disk",
    }
    print(report({k: v for k, v in results.items() if k != "machine"}))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
