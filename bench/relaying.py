"""What the relay benchmarks (relay_irc.py, relay_matrix.py, relay_process.py,
burst_matrix.py) share: a bridgehost with one bridge, an IRC user and a Matrix
user that timestamp what they read, the wait until a bridge relays, the Scalar
side's receive loop, and the latency summary."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

from nio import AsyncClient, LoginResponse, SyncResponse
from servers import launch_bridgehost

from bridgehost.scalar.client import Client
from tests.servers.synapse import Synapse

TOPIC = "#bench@localhost"
PASSWORD = "bench-password"


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


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """SIGTERM a bridgehost still running and wait for it."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)


class IrcUser:
    """A minimal IRC client that timestamps every PRIVMSG as it is parsed; a message's
    last word is the key of the future in `waiting` it resolves."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.waiting: dict[str, asyncio.Future[int]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, host: str, port: int, channels: tuple[str, ...] = ()) -> None:
        self._reader, self._writer = await asyncio.open_connection(host, port)
        self._writer.write(f"NICK {self.nick}\r\nUSER {self.nick} 0 * :bench\r\n".encode())
        while True:
            line = (await self._reader.readline()).decode(errors="replace")
            if line.startswith("PING"):
                self._writer.write(line.replace("PING", "PONG", 1).encode())
            if f" 001 {self.nick} " in line:
                break
        for channel in channels:
            await self.join(channel)

    async def join(self, channel: str) -> None:
        assert self._writer is not None and self._reader is not None
        self._writer.write(f"JOIN {channel}\r\n".encode())
        while f" 366 {self.nick} {channel} " not in (await self._reader.readline()).decode():
            pass

    def send(self, channel: str, text: str) -> int:
        assert self._writer is not None
        sent = time.perf_counter_ns()
        self._writer.write(f"PRIVMSG {channel} :{text}\r\n".encode())
        return sent

    async def read_loop(self) -> None:
        assert self._reader is not None and self._writer is not None
        while data := await self._reader.readline():
            now = time.perf_counter_ns()
            line = data.decode(errors="replace").rstrip("\r\n")
            if line.startswith("PING"):
                self._writer.write(("PONG" + line[4:] + "\r\n").encode())
                continue
            _, _, rest = line.partition(" ")
            command, _, rest = rest.partition(" ")
            if command == "PRIVMSG":
                future = self.waiting.pop(rest.partition(" :")[2].rsplit(" ", 1)[-1], None)
                if future is not None and not future.done():
                    future.set_result(now)


async def login(hs: Synapse, localpart: str) -> AsyncClient:
    client = AsyncClient(hs.url, hs.user_id(localpart))
    resp = await client.login(PASSWORD, device_name="bench")
    if not isinstance(resp, LoginResponse):
        raise RuntimeError(f"login of {localpart} failed: {resp}")
    return client


async def synced_bodies(
    client: AsyncClient, room_id: str, since: str, retry: float = 0.1
) -> AsyncIterator[tuple[int, str]]:
    """Long-poll `client`'s /sync for ever: (when the answer was parsed, body) of every
    message in `room_id`; a failed sync is retried after `retry` seconds."""
    while True:
        resp = await client.sync(timeout=30000, since=since)
        now = time.perf_counter_ns()
        if not isinstance(resp, SyncResponse):
            await asyncio.sleep(retry)
            continue
        since = resp.next_batch
        room = resp.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            body = event.source.get("content", {}).get("body")
            if isinstance(body, str):
                yield now, body


async def until_relayed(
    client: Client,
    topic: str,
    waiting: dict[str, asyncio.Future[int]],
    *,
    attempts: int,
    wait: float,
    far: str,
    name: str = "",
) -> None:
    """Publish warm-up messages in `topic` until one reaches the far side (whose reader
    resolves `waiting`): the bridge has joined and relays."""
    loop = asyncio.get_running_loop()
    for attempt in range(attempts):
        key = f"warm{name}{attempt}"
        seen = waiting[key] = loop.create_future()
        await client.publish(topic, f"warm-up {key}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(seen), wait)
            return
    raise RuntimeError(f"the {name + ' ' if name else ''}bridge never relayed to {far}")


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
