"""Latency of the IRC bridge, against IRC's own client-to-client latency.

One run starts a real InspIRCd (flood limits off) and bridgehost as its own
process (`bridgehost run`, flood control off: `interval: 0, window: 0`) with
`#bench@localhost` bridged to IRC `#bench`. This process plays two IRC users,
`a` and `b`, and one Scalar client, and measures, one message at a time:

- baseline:   a -> InspIRCd -> b (plain IRC);
- irc->scalar: the same line from a -> InspIRCd -> bridge -> hub -> Scalar client;
- scalar->irc: Scalar client -> hub -> bridge -> InspIRCd -> b.

The first two come from the very same PRIVMSG, so they share the server's
noise. All times are taken in this process with `perf_counter_ns` (send just
before the write, receive when the line or event is parsed).

    python bench/relay_irc.py                  # 1,000 samples per path
    python bench/relay_irc.py --samples 200 --json out.json
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

from relaying import (  # noqa: E402
    TOPIC,
    IrcUser,
    scalar_loop,
    start_bridge,
    stop,
    summary,
    until_relayed,
)
from servers import PUBLISHER  # noqa: E402

from bridgehost.scalar.client import connect  # noqa: E402
from tests.servers.ircd import InspIRCd  # noqa: E402

CHANNEL = "#bench"
BRIDGE_NICK = "relaybench"


async def measure(
    args: argparse.Namespace, ircd: InspIRCd, port: int, token: str
) -> dict[str, Any]:
    a, b = IrcUser("a"), IrcUser("b")
    await asyncio.gather(a.connect(ircd.host, ircd.port), b.connect(ircd.host, ircd.port))
    await a.join(CHANNEL)
    await b.join(CHANNEL)
    readers = [asyncio.create_task(a.read_loop()), asyncio.create_task(b.read_loop())]
    client = await connect(f"tcp://127.0.0.1:{port}", id=PUBLISHER, secret=token)
    await client.sub(TOPIC)
    scalar_waiting: dict[str, asyncio.Future[int]] = {}
    readers.append(asyncio.create_task(scalar_loop(client, scalar_waiting)))
    loop = asyncio.get_running_loop()
    try:
        await until_relayed(client, TOPIC, b.waiting, attempts=300, wait=0.1, far="IRC")
        for i in range(args.warmup):
            key = f"w{i}"
            b.waiting[key], scalar_waiting[key] = loop.create_future(), loop.create_future()
            a.send(CHANNEL, f"warm-up {key}")
            await asyncio.wait_for(asyncio.gather(b.waiting[key], scalar_waiting[key]), 5)

        base, to_scalar, to_irc = [], [], []
        for i in range(args.samples):
            key = f"i{i}"
            at_b, at_scalar = loop.create_future(), loop.create_future()
            b.waiting[key], scalar_waiting[key] = at_b, at_scalar
            sent = a.send(CHANNEL, f"sample {key}")
            got_b, got_scalar = await asyncio.wait_for(asyncio.gather(at_b, at_scalar), 5)
            base.append(got_b - sent)
            to_scalar.append(got_scalar - sent)
            await asyncio.sleep(args.interval)

            key = f"s{i}"
            at_b = b.waiting[key] = loop.create_future()
            sent = time.perf_counter_ns()
            await client.publish(TOPIC, f"sample {key}")
            to_irc.append(await asyncio.wait_for(at_b, 5) - sent)
            await asyncio.sleep(args.interval)
    finally:
        for task in readers:
            task.cancel()
        await client.close()
    return {
        "baseline (IRC a -> b)": summary(base),
        "IRC -> Scalar": summary(to_scalar),
        "Scalar -> IRC": summary(to_irc),
    }


def report(results: dict[str, Any]) -> str:
    base = results["baseline (IRC a -> b)"]
    lines = [f"{'path':<24}{'n':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"]
    for name, s in results.items():
        lines.append(
            f"{name:<24}{s['n']:>6}{s['p50']:>9.3f}{s['p90']:>9.3f}{s['p99']:>9.3f}{s['max']:>9.3f}"
        )
    for name in ("IRC -> Scalar", "Scalar -> IRC"):
        s = results[name]
        p50, p99 = s["p50"] - base["p50"], s["p99"] - base["p99"]
        lines.append(
            f"{name}: adds {p50:+.3f} ms p50, {p99:+.3f} ms p99 over the baseline"
            f" (p99 ratio {s['p99'] / base['p99']:.2f}x)"
        )
    return "\n".join(lines)


def start_bridgehost(work: Path, ircd: InspIRCd) -> tuple[subprocess.Popen[bytes], int, str]:
    return start_bridge(
        work,
        f"""    type: irc
    host: {ircd.host}
    port: {ircd.port}
    tls: false
    nick: {BRIDGE_NICK}
    flood: {{burst: 1000, interval: 0, window: 0}}
""",
        CHANNEL,
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--samples", type=int, default=1000, help="messages per path")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--interval", type=float, default=0.002, help="pause between samples, s")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relay_irc-"))
    ircd = InspIRCd(work / "ircd", threshold=1_000_000, commandrate=100_000_000)
    proc = None
    try:
        ircd.start()
        proc, port, token = start_bridgehost(work, ircd)
        results = asyncio.run(measure(args, ircd, port, token))
    finally:
        stop(proc)
        ircd.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print(report({k: v for k, v in results.items() if k != "machine"}))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
