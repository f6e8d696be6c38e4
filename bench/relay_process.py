"""Relay latency of the IRC adapter in its own process (`process: true`) against
the same adapter inside bridgehost, in the same run.

One bridgehost (its own process, `bridgehost run`) has two IRC accounts on one
real InspIRCd, both with flood control off: `inproc` bridges `#inproc@localhost`
to IRC `#inproc` inside bridgehost, `child` bridges `#child@localhost` to IRC
`#child` from a child process (`bridgehost adapter child`, stdio session).
This process plays IRC user `a` (in both channels) and one Scalar client and
takes samples alternately, one message at a time, on both bridges:

- IRC -> Scalar: a PRIVMSG from `a` until the Scalar client has the event;
- Scalar -> IRC: a publish until `a` reads the line.

Alternating puts both through the same moments of machine noise, so their
ratio means something on a shared machine.

    python bench/relay_process.py                  # 1,000 samples per path and mode
    python bench/relay_process.py --samples 200 --json out.json
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

from relaying import IrcUser, scalar_loop, stop, summary, until_relayed  # noqa: E402
from servers import DOMAIN, PUBLISHER, launch_bridgehost  # noqa: E402

from bridgehost.scalar.client import connect  # noqa: E402
from tests.servers.ircd import InspIRCd  # noqa: E402

MODES = ("inproc", "child")


def config(ircd: InspIRCd) -> str:
    accounts = "".join(
        f"""  {mode}:
    type: irc
    host: {ircd.host}
    port: {ircd.port}
    tls: false
    nick: bench{mode}
    flood: {{burst: 1000, interval: 0, window: 0}}
    process: {"true" if mode == "child" else "false"}
"""
        for mode in MODES
    )
    bridges = "".join(
        f"""  - channel: "#{mode}@{DOMAIN}"
    links: [{{account: {mode}, target: "#{mode}"}}]
"""
        for mode in MODES
    )
    return f"accounts:\n{accounts}bridges:\n{bridges}"


async def measure(args: argparse.Namespace, ircd: InspIRCd, port: int, token: str) -> Any:
    a = IrcUser("a")
    await a.connect(ircd.host, ircd.port, tuple(f"#{mode}" for mode in MODES))
    client = await connect(f"tcp://127.0.0.1:{port}", id=PUBLISHER, secret=token)
    waiting: dict[str, asyncio.Future[int]] = {}
    tasks = [asyncio.create_task(a.read_loop()), asyncio.create_task(scalar_loop(client, waiting))]
    loop = asyncio.get_running_loop()
    out: dict[str, dict[str, list[int]]] = {
        m: {"IRC -> Scalar": [], "Scalar -> IRC": []} for m in MODES
    }
    try:
        for mode in MODES:
            await client.sub(f"#{mode}@{DOMAIN}")
            await until_relayed(
                client, f"#{mode}@{DOMAIN}", a.waiting, attempts=600, wait=0.1, far="IRC", name=mode
            )
        for i in range(-args.warmup, args.samples):
            for mode in MODES if i % 2 else reversed(MODES):
                key = f"i{mode}{i}"
                at_scalar = waiting[key] = loop.create_future()
                sent = a.send(f"#{mode}", f"sample {key}")
                got = await asyncio.wait_for(at_scalar, 5) - sent
                await asyncio.sleep(args.interval)
                key = f"s{mode}{i}"
                at_irc = a.waiting[key] = loop.create_future()
                sent = time.perf_counter_ns()
                await client.publish(f"#{mode}@{DOMAIN}", f"sample {key}")
                back = await asyncio.wait_for(at_irc, 5) - sent
                await asyncio.sleep(args.interval)
                if i >= 0:
                    out[mode]["IRC -> Scalar"].append(got)
                    out[mode]["Scalar -> IRC"].append(back)
    finally:
        for task in tasks:
            task.cancel()
        await client.close()
    return {mode: {path: summary(ns) for path, ns in paths.items()} for mode, paths in out.items()}


def report(results: dict[str, Any]) -> str:
    lines = [f"{'adapter':<8}{'path':<16}{'n':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"]
    for mode in MODES:
        for path, s in results[mode].items():
            lines.append(
                f"{mode:<8}{path:<16}{s['n']:>6}{s['p50']:>9.3f}{s['p90']:>9.3f}{s['p99']:>9.3f}"
            )
    for path in ("IRC -> Scalar", "Scalar -> IRC"):
        inproc, child = results["inproc"][path], results["child"][path]
        lines.append(
            f"{path}: child / in-process = {child['p50'] / inproc['p50']:.2f}x p50,"
            f" {child['p99'] / inproc['p99']:.2f}x p99"
            f" (+{child['p50'] - inproc['p50']:.3f} ms p50)"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--samples", type=int, default=1000, help="messages per path and adapter")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--interval", type=float, default=0.002, help="pause between samples, s")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relay_process-"))
    ircd = InspIRCd(work / "ircd", threshold=1_000_000, commandrate=100_000_000)
    proc: subprocess.Popen[bytes] | None = None
    try:
        ircd.start()
        proc, port, token, _ = launch_bridgehost(work, "  guests: false\n", config(ircd))
        results = asyncio.run(measure(args, ircd, port, token))
    finally:
        stop(proc, 30)
        ircd.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(report(results))
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
