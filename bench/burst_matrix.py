"""An IRC burst reaching Matrix: merged into few messages vs one message per line.

One run starts a real InspIRCd (no flood limits), a real Synapse and, twice,
bridgehost as its own process with `#bench@localhost` bridged to IRC `#bench`
and to a Matrix room: once with the default `relay.merge_window` (0.1 s: a
speaker's burst of lines goes out as one Matrix message) and once with
`merge_window: 0` (one Matrix message per IRC line, how the bridge worked
before). This process plays IRC user `u1`, who pastes N lines (written 50 at a
time, as a client sends a paste), IRC user `u2`, who sees them from the server
(the baseline: InspIRCd's own delivery), and Matrix user `b`, who long-polls
`/sync` and notes when the last line is there.

    python bench/burst_matrix.py                 # 1,000 lines, 3 runs per mode
    python bench/burst_matrix.py --lines 500 --runs 1 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
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
from relaying import PASSWORD, TOPIC, login, stop, synced_bodies  # noqa: E402
from servers import launch_bridgehost, machine  # noqa: E402

from tests.servers.ircd import InspIRCd, RawIRC  # noqa: E402
from tests.servers.synapse import Synapse, SynapseTemplate  # noqa: E402


def start(
    work: Path, ircd: InspIRCd, hs: Synapse, room_id: str, window: float
) -> subprocess.Popen[bytes]:
    """bridgehost with #bench bridged to IRC #bench and to the Matrix room."""
    proc, _, _, _ = launch_bridgehost(
        work,
        "  guests: false\n",
        f"""accounts:
  irc:
    type: irc
    host: {ircd.host}
    port: {ircd.port}
    tls: false
    nick: bridge
    flood: {{burst: 1000, interval: 0, window: 0}}
  mx:
    type: matrix
    homeserver: {hs.url}
    user_id: "{hs.user_id("bridge")}"
    password: {PASSWORD}
    relay: {{merge_window: {window}}}
bridges:
  - channel: "{TOPIC}"
    links: [{{account: irc, target: "#bench"}}, {{account: mx, target: "{room_id}"}}]
""",
    )
    return proc


async def last_line_at(b: AsyncClient, room_id: str, since: str, want: str) -> tuple[int, int]:
    """Poll b's /sync until a message ends with `want`; (when, messages seen)."""
    seen = 0
    async for now, body in synced_bodies(b, room_id, since, retry=0.05):
        if body.startswith("<u1> "):
            seen += 1
            if body.endswith(want):
                return now, seen
    raise AssertionError("unreachable: /sync is polled for ever")


async def one_run(
    ircd: InspIRCd, hs: Synapse, work: Path, lines: int, window: float
) -> dict[str, float]:
    b = await login(hs, "b")
    created = await b.room_create(invite=[hs.user_id("bridge")])
    room_id = created.room_id
    proc = start(work, ircd, hs, room_id, window)
    try:
        async with (
            RawIRC(ircd.host, ircd.port, "u1") as u1,
            RawIRC(ircd.host, ircd.port, "u2") as u2,
        ):
            await u1.connect()
            await u2.connect()
            await u1.join("#bench")
            await u2.join("#bench")
            for _ in range(600):  # until the bridge is in both places
                first = await b.sync(timeout=0)
                members = await b.joined_members(room_id)
                bridged = any(m.user_id == hs.user_id("bridge") for m in members.members)
                if bridged and any(m.nick == "bridge" for m in u2.lines if m.command == "JOIN"):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)  # JOIN penalty and first syncs settle
            assert isinstance(first, SyncResponse)
            texts = [f"line {i} of the paste" for i in range(lines)]
            watch = asyncio.create_task(last_line_at(b, room_id, first.next_batch, texts[-1]))
            sent = time.perf_counter_ns()
            for at in range(0, lines, 50):
                chunk = texts[at : at + 50]
                await u1.send_raw(b"".join(f"PRIVMSG #bench :{t}\r\n".encode() for t in chunk))
                await asyncio.sleep(0.002)
            last = await u2.wait_for(lambda m: m.trailing == texts[-1], 60)
            irc_ns = time.perf_counter_ns() - sent
            assert last is not None
            got, messages = await asyncio.wait_for(watch, 300)
    finally:
        stop(proc)
        await b.close()
    return {
        "irc_s": irc_ns / 1e9,
        "matrix_s": (got - sent) / 1e9,
        "matrix_messages": messages,
    }


async def measure(args: argparse.Namespace, ircd: InspIRCd, hs: Synapse, base: Path) -> Any:
    out: dict[str, list[dict[str, float]]] = {"merged": [], "one per line": []}
    for run in range(args.runs):
        for mode, window in (("merged", 0.1), ("one per line", 0.0)):
            work = base / f"{mode.replace(' ', '-')}-{run}"
            work.mkdir()
            out[mode].append(await one_run(ircd, hs, work, args.lines, window))
    return out


def report(results: dict[str, list[dict[str, float]]], lines: int) -> str:
    rows = [f"{lines} IRC lines written at once (50 per write)"]
    rows.append(f"{'mode':<14}{'IRC baseline s':>16}{'in Matrix s':>13}{'messages':>10}")
    med: dict[str, float] = {}
    for mode, runs in results.items():
        for r in runs:
            rows.append(
                f"{mode:<14}{r['irc_s']:>16.2f}{r['matrix_s']:>13.2f}{r['matrix_messages']:>10.0f}"
            )
        med[mode] = statistics.median(r["matrix_s"] for r in runs)
    rows.append(
        f"median in Matrix: merged {med['merged']:.2f} s, one per line {med['one per line']:.2f} s"
        f" (ratio {med['one per line'] / med['merged']:.1f}x)"
    )
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lines", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="burst_matrix-"))
    try:
        ircd = InspIRCd(work / "ircd", fakelag=False, threshold=100000, commandrate=10000000)
        ircd.start()
        hs = Synapse(work / "hs", template=SynapseTemplate.generate(work / "template"))
        hs.start()
        try:
            for user in ("b", "bridge"):
                hs.register_user(user, PASSWORD)
            results = asyncio.run(measure(args, ircd, hs, work))
        finally:
            hs.stop()
            ircd.stop()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(report(results, args.lines))
    print(machine())
    if args.json:
        args.json.write_text(json.dumps({"results": results, "cpus": os.cpu_count()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
