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
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from relaying import TOPIC, scalar_loop, start_bridge, summary  # noqa: E402
from servers import PUBLISHER  # noqa: E402

from bridgehost.scalar.client import connect  # noqa: E402
from tests.servers.ircd import InspIRCd  # noqa: E402

CHANNEL = "#bench"
BRIDGE_NICK = "relaybench"


class IrcUser:
    """A minimal IRC client that timestamps every PRIVMSG as it is parsed."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.waiting: dict[str, asyncio.Future[int]] = {}
        self.joined: set[str] = set()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, host: str, port: int) -> None:
        self._reader, self._writer = await asyncio.open_connection(host, port)
        self._writer.write(f"NICK {self.nick}\r\nUSER {self.nick} 0 * :bench\r\n".encode())
        while True:
            line = (await self._reader.readline()).decode(errors="replace")
            if line.startswith("PING"):
                self._writer.write(line.replace("PING", "PONG", 1).encode())
            if f" 001 {self.nick} " in line:
                return

    async def join(self, channel: str) -> None:
        assert self._writer is not None and self._reader is not None
        self._writer.write(f"JOIN {channel}\r\n".encode())
        while f" 366 {self.nick} {channel} " not in (await self._reader.readline()).decode():
            pass

    def send(self, text: str) -> int:
        assert self._writer is not None
        sent = time.perf_counter_ns()
        self._writer.write(f"PRIVMSG {CHANNEL} :{text}\r\n".encode())
        return sent

    async def read_loop(self) -> None:
        assert self._reader is not None and self._writer is not None
        while data := await self._reader.readline():
            now = time.perf_counter_ns()
            line = data.decode(errors="replace").rstrip("\r\n")
            if line.startswith("PING"):
                self._writer.write(("PONG" + line[4:] + "\r\n").encode())
                continue
            prefix, _, rest = line.partition(" ")
            command, _, rest = rest.partition(" ")
            if command == "JOIN":
                self.joined.add(prefix[1:].split("!", 1)[0])
            if command != "PRIVMSG":
                continue
            text = rest.partition(" :")[2]
            key = text.rsplit(" ", 1)[-1]
            future = self.waiting.pop(key, None)
            if future is not None and not future.done():
                future.set_result(now)


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
        for attempt in range(300):  # until the bridge has joined and relays
            key = f"warm{attempt}"
            b.waiting[key] = loop.create_future()
            await client.publish(TOPIC, f"warm-up {key}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(b.waiting[key]), 0.1)
                break
        else:
            raise RuntimeError("the bridge never relayed to IRC")
        for i in range(args.warmup):
            key = f"w{i}"
            b.waiting[key], scalar_waiting[key] = loop.create_future(), loop.create_future()
            a.send(f"warm-up {key}")
            await asyncio.wait_for(asyncio.gather(b.waiting[key], scalar_waiting[key]), 5)

        base, to_scalar, to_irc = [], [], []
        for i in range(args.samples):
            key = f"i{i}"
            at_b, at_scalar = loop.create_future(), loop.create_future()
            b.waiting[key], scalar_waiting[key] = at_b, at_scalar
            sent = a.send(f"sample {key}")
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
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
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
