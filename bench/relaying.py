"""What the relay benchmarks (relay_irc.py, relay_matrix.py) share: a bridgehost
with one bridge, the Scalar side's receive loop, and the latency summary."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from pathlib import Path

from servers import launch_bridgehost

from bridgehost.scalar.client import Client

TOPIC = "#bench@localhost"


def start_bridge(
    work: Path, account_yaml: str, target: str
) -> tuple[subprocess.Popen[bytes], int, str]:
    """bridgehost with one account (`account_yaml`: the lines under `net:`) linked to
    `target` in TOPIC; returns the process, its port and the publisher's token."""
    proc, port, token, _ = launch_bridgehost(
        work,
        "  guests: false\n",
        f"""accounts:
  net:
{account_yaml}bridges:
  - channel: "{TOPIC}"
    links: [{{account: net, target: "{target}"}}]
""",
    )
    return proc, port, token


async def scalar_loop(client: Client, waiting: dict[str, asyncio.Future[int]]) -> None:
    """Resolve the future waiting for each event's last word (the sample's key)."""
    async for event in client:
        now = time.perf_counter_ns()
        future = waiting.pop(event.body.rsplit(" ", 1)[-1], None)
        if future is not None and not future.done():
            future.set_result(now)


def summary(samples_ns: list[int]) -> dict[str, float]:
    ms = sorted(s / 1e6 for s in samples_ns)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"n": len(ms), "p50": q[49], "p90": q[89], "p99": q[98], "max": ms[-1]}
