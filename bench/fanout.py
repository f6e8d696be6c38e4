"""Fan-out benchmark: bridgehost (history ON) against the floor server, same workload.

For each server and each S in --sizes: S subscribers on one channel (spread
over several generator processes), one publisher:
  1. full speed: M messages of ~100 B, at most --window unacknowledged
     -> deliveries/s, server CPU-ms per 1000 deliveries;
  2. paced at --rate msg/s for --seconds -> p50/p99 publish-to-subscriber
     latency, measured at the subscribers;
then --idle-conns idle connections (ident + sub, then silence) -> RSS per
connection; and RSS idle (just started) and peak (VmHWM at the end).

Each server runs in its own process, pinned to CPU 0 when there are at least
two CPUs; the generators are pinned to the other CPUs, so the two never
compete for a core. bridgehost is started with `python -m bridgehost run`
on a generated config (history keep 10000, guests on for the subscribers,
send_buffer raised so a generator hiccup is not a slow-consumer disconnect)
and the publisher logs in as a reserved ID with a token from `bridgehost
token create`, so it has no rate limit.

    python bench/fanout.py            # full run, ~3-4 minutes
    python bench/fanout.py --quick    # ~30 s
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen
from loadgen import Target
from report import report
from servers import (
    DOMAIN,
    Server,
    cpu_busy_ms,
    machine,
    start_bridgehost,
    start_floor,
)

# --- talking to the generator processes ----------------------------------------------


class Collector:
    """Waits for reports from the worker processes, keeping early ones for later."""

    def __init__(self, q: Any) -> None:
        self.q = q
        self.backlog: list[tuple[str, int, Any]] = []

    def wait(self, kind: str, count: int, timeout: float) -> list[tuple[int, Any]]:
        got: list[tuple[int, Any]] = []
        for item in list(self.backlog):
            if item[0] == kind and len(got) < count:
                self.backlog.remove(item)
                got.append((item[1], item[2]))
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(got)}/{count} '{kind}' reports after {timeout:.0f} s")
            try:
                item = self.q.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if item[0] == "error":
                raise RuntimeError(f"worker {item[1]}: {item[2]}")
            if item[0] == kind:
                got.append((item[1], item[2]))
            else:
                self.backlog.append(item)
        return got


def split(n: int, parts: int) -> list[int]:
    parts = max(1, min(parts, n))
    return [n // parts + (i < n % parts) for i in range(parts)]


class Subscribers:
    """S subscriber connections spread over `procs` generator processes."""

    def __init__(self, target: Target, n: int, procs: int, expect_t: int, expect_l: int) -> None:
        self.ctx = mp.get_context("fork")
        self.target = target
        self.col = Collector(self.ctx.Queue())
        self.stop = self.ctx.Event()
        self.workers = [
            self.ctx.Process(
                target=loadgen.subscriber_worker,
                args=(i, target, k),
                kwargs={
                    "expect_t": expect_t,
                    "expect_l": expect_l,
                    "results": self.col.q,
                    "stop": self.stop,
                },
                daemon=True,
            )
            for i, k in enumerate(split(n, procs))
        ]
        self.finals: list[dict[str, Any]] = []

    def __enter__(self) -> Subscribers:
        for w in self.workers:
            w.start()
        try:
            self.col.wait("ready", len(self.workers), 180)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        with contextlib.suppress(TimeoutError, RuntimeError):
            self.finals = [f for _, f in self.col.wait("final", len(self.workers), 30)]
        for w in self.workers:
            w.join(5)
            if w.is_alive():
                w.kill()

    def wait(self, kind: str, timeout: float) -> list[Any]:
        return [data for _, data in self.col.wait(kind, len(self.workers), timeout)]

    def publish(self, count: int, rate: float | None, window: int, timeout: float) -> Any:
        """Run the publisher process to the end; its report."""
        p = self.ctx.Process(
            target=loadgen.publisher_worker,
            args=(self.target, count, rate, window, self.col.q),
            daemon=True,
        )
        p.start()
        try:
            ((_, info),) = self.col.wait("pub", 1, timeout)
        finally:
            p.join(5)
            if p.is_alive():
                p.kill()
        return info


# --- one server, one size ----------------------------------------------------------------


@dataclass
class Result:
    server: str
    size: int
    messages: int = 0
    deliveries_per_s: float = float("nan")
    cpu_ms_per_1000: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    p50_app_ms: float = float("nan")
    p99_app_ms: float = float("nan")
    lat_pcts_ms: dict[str, float] = field(default_factory=dict)
    """Kernel-timestamp latency percentiles 90..max, for the JSON output."""
    server_load_pct: float = float("nan")
    """The server's own CPU use during the paced run, in % of wall time."""
    other_load_pct: float = float("nan")
    """CPU time used on the server's core by anything but the server during the paced
    run, in % of wall time: how much the latency figures were disturbed."""
    problems: list[str] = field(default_factory=list)


def run_size(
    server: Server, size: int, args: argparse.Namespace, gen: frozenset[int] | None
) -> Result:
    m = max(200, args.deliveries // size)
    lat_n = int(args.rate * args.seconds)
    topic = f"#fanout-{size}@{DOMAIN}"
    target = Target("127.0.0.1", server.port, topic, server.pub_ident, gen)
    res = Result(server.kind, size, m)
    with Subscribers(target, size, args.procs, m, lat_n) as subs:
        time.sleep(0.3)
        cpu0 = server.cpu_ms()
        timeout = 60 + m * size / 20000
        info = subs.publish(m, None, args.window, timeout)
        done = subs.wait("tput", timeout)
        cpu1 = server.cpu_ms()
        if info["errors"] or info["acked"] < m:
            res.problems.append(f"publisher: {info['acked']}/{m} acked, errors {info['errors']}")
        last = max((max(d) for d in done if d), default=0)
        deliveries = m * size
        if last:
            res.deliveries_per_s = deliveries / ((last - info["start"]) / 1e9)
        res.cpu_ms_per_1000 = (cpu1 - cpu0) / deliveries * 1000
        time.sleep(0.3)
        core = args.server_cpu
        busy0, own0, t0 = cpu_busy_ms(core or 0), server.cpu_ms(), time.monotonic()
        info = subs.publish(lat_n, args.rate, args.window, args.seconds + 60)
        if info["errors"] or info["acked"] < lat_n:
            res.problems.append(f"paced publisher: {info['acked']}/{lat_n} acked, {info['errors']}")
        subs.wait("lat", 60)
        own, wall_ms = server.cpu_ms() - own0, (time.monotonic() - t0) * 1000
        res.server_load_pct = own / wall_ms * 100
        if core is not None:
            res.other_load_pct = max(0.0, cpu_busy_ms(core) - busy0 - own) / wall_ms * 100
    collect(res, subs.finals, m, lat_n, workers=len(subs.workers), dump=args.dump)
    return res


def collect(
    res: Result,
    finals: list[dict[str, Any]],
    m: int,
    lat_n: int,
    *,
    workers: int,
    dump: Path | None,
) -> None:
    if len(finals) < workers:
        res.problems.append(f"only {len(finals)}/{workers} generator processes reported")
    if not finals:
        return
    kern = np.concatenate([np.frombuffer(f["lat_kernel"], dtype=np.int64) for f in finals])
    app = np.concatenate([np.frombuffer(f["lat_app"], dtype=np.int64) for f in finals])
    if len(kern):
        res.p50_ms, res.p99_ms = (float(x) / 1e6 for x in np.percentile(kern, [50, 99]))
        res.p50_app_ms, res.p99_app_ms = (float(x) / 1e6 for x in np.percentile(app, [50, 99]))
        qs = [90, 95, 99, 99.5, 99.9, 100]
        res.lat_pcts_ms = {
            f"p{q:g}": float(x) / 1e6 for q, x in zip(qs, np.percentile(kern, qs), strict=True)
        }
    if dump:
        sent = np.concatenate([np.frombuffer(f["sent"], dtype=np.int64) for f in finals])
        np.savez(dump / f"{res.server}-{res.size}.npz", kernel=kern, app=app, sent=sent)
    closed = sum(f["closed"] for f in finals)
    if closed:
        res.problems.append(f"{closed} subscriber connections closed by the server")
    if any(f["min_t"] < m for f in finals):
        res.problems.append("some subscribers missed throughput events")
    if any(f["min_l"] < lat_n for f in finals):
        res.problems.append("some subscribers missed latency events")


def run_idle(server: Server, n: int, args: argparse.Namespace, gen: frozenset[int] | None) -> float:
    """KiB of server RSS per idle (identified, subscribed, silent) connection."""
    target = Target("127.0.0.1", server.port, f"#idle@{DOMAIN}", server.pub_ident, gen)
    time.sleep(0.5)
    before = server.status_kb("VmRSS")
    with Subscribers(target, n, args.procs, 0, 0):
        time.sleep(1.0)
        after = server.status_kb("VmRSS")
    return (after - before) / n


# --- the whole run ---------------------------------------------------------------------------


@dataclass
class ServerRun:
    server: str
    rss_idle_kb: int = 0
    rss_peak_kb: int = 0
    rss_per_conn_kb: float = float("nan")
    sizes: list[Result] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def run_server(
    kind: str,
    args: argparse.Namespace,
    srv_cpus: frozenset[int] | None,
    gen_cpus: frozenset[int] | None,
) -> ServerRun:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    if kind == "floor":
        server = start_floor(work, srv_cpus)
    elif kind in args.baseline:
        server = start_bridgehost(work, srv_cpus, tree=args.baseline[kind], kind=kind)
    else:
        server = start_bridgehost(work, srv_cpus)
    out = ServerRun(kind)
    spy = None
    try:
        time.sleep(1.0)
        out.rss_idle_kb = server.status_kb("VmRSS")
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            ext = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[args.profile_format]
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--nonblocking",
                    "--rate",
                    "1000",
                    "--pid",
                    str(server.pid),
                    "--format",
                    args.profile_format,
                    "-o",
                    str(args.profile / f"{kind}.{ext}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        for size in args.sizes:
            print(f"  {kind}: {size} subscribers ...", file=sys.stderr, flush=True)
            try:
                out.sizes.append(run_size(server, size, args, gen_cpus))
            except (TimeoutError, RuntimeError) as exc:
                out.sizes.append(Result(kind, size, problems=[str(exc)]))
            time.sleep(0.5)
        if args.idle_conns:
            print(f"  {kind}: {args.idle_conns} idle connections ...", file=sys.stderr, flush=True)
            try:
                out.rss_per_conn_kb = run_idle(server, args.idle_conns, args, gen_cpus)
            except (TimeoutError, RuntimeError) as exc:
                out.problems.append(f"idle connections: {exc}")
        out.rss_peak_kb = server.status_kb("VmHWM")
        if server.proc.poll() is not None:
            out.problems.append(f"server died with {server.proc.returncode}")
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        server.stop()
        if args.keep:
            print(f"  {kind}: work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return out


def prescan_cost(runs: dict[str, ServerRun]) -> str:
    """What the wire pre-scan (§10) costs per published message, measured here on the
    publisher's own `msg` frame, against the server's CPU per message at S=200."""
    import cbor2

    from bridgehost.scalar import wire

    body = cbor2.dumps(
        {"t": "msg", "rid": 123456, "topic": f"#fanout-200@{DOMAIN}", "body": loadgen.body_t(1)}
    )

    def best_us(f: Any, n: int = 2000) -> float:
        best = float("inf")
        for _ in range(15):
            t0 = time.perf_counter()
            for _ in range(n):
                f(body)
            best = min(best, (time.perf_counter() - t0) / n * 1e6)
        return best

    scan, loads = best_us(wire.scan), best_us(cbor2.loads)
    line = (
        f"wire pre-scan of one {len(body)}-byte msg frame: {scan:.1f} us "
        f"(cbor2.loads of it: {loads:.1f} us)"
    )
    bh = runs.get("bridgehost")
    at200 = [r for r in bh.sizes if r.size == 200] if bh else []
    if at200 and not math.isnan(at200[0].cpu_ms_per_1000):
        per_msg_us = at200[0].cpu_ms_per_1000 * 200  # 200 deliveries per message
        line += (
            f"; the server spent {per_msg_us:.0f} us of CPU per message at S=200 full speed, "
            f"so the pre-scan is {scan / per_msg_us * 100:.1f} % of it"
        )
    return line


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller run, about 30 s")
    p.add_argument("--sizes", help="subscriber counts, comma-separated (default 50,200,1000)")
    p.add_argument("--servers", default="bridgehost,floor")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=TREE",
        help="also run the bridgehost of source tree TREE (e.g. a worktree of an older "
        "commit) as the server NAME, for before/after ratios in the same run (repeatable)",
    )
    p.add_argument("--deliveries", type=int, help="deliveries per full-speed run (M = this / S)")
    p.add_argument("--rate", type=float, default=200.0, help="paced publish rate, msg/s")
    p.add_argument("--seconds", type=float, help="duration of the paced run")
    p.add_argument("--window", type=int, default=500, help="publisher's unacknowledged messages")
    p.add_argument("--idle-conns", type=int, help="idle connections for RSS per connection")
    p.add_argument("--procs", type=int, help="subscriber processes (default max(2, CPUs - 1))")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and generators to CPUs")
    p.add_argument("--keep", action="store_true", help="keep the servers' work dirs and logs")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--profile", type=Path, help="py-spy record each server into DIR/<server>.svg")
    p.add_argument(
        "--profile-format", default="flamegraph", choices=["flamegraph", "raw", "speedscope"]
    )
    p.add_argument("--dump", type=Path, help="write raw latency samples (.npz) to this dir")
    args = p.parse_args()
    args.baseline = {
        name: Path(tree) for name, _, tree in (b.partition("=") for b in args.baseline)
    }
    args.servers = ",".join([*args.servers.split(","), *args.baseline])
    args.sizes = [
        int(x) for x in (args.sizes or ("50,200" if args.quick else "50,200,1000")).split(",")
    ]
    args.deliveries = args.deliveries or (150_000 if args.quick else 600_000)
    args.seconds = args.seconds or (2.0 if args.quick else 8.0)
    args.idle_conns = (
        args.idle_conns if args.idle_conns is not None else (1000 if args.quick else 5000)
    )
    loadgen.raise_nofile()  # the servers inherit it: 5000 connections need more than 1024 fds
    ncpu = len(os.sched_getaffinity(0))
    args.procs = args.procs or max(2, ncpu - 1)
    srv_cpus = gen_cpus = None
    args.server_cpu = None
    if ncpu >= 2 and not args.no_pin:
        cpus = sorted(os.sched_getaffinity(0))
        srv_cpus, gen_cpus = frozenset(cpus[:1]), frozenset(cpus[1:])
        args.server_cpu = cpus[0]
        os.sched_setaffinity(0, gen_cpus)
    started = time.monotonic()
    print(f"machine: {machine()}", file=sys.stderr)
    runs: dict[str, ServerRun] = {}
    for kind in args.servers.split(","):
        print(f"{kind}:", file=sys.stderr, flush=True)
        runs[kind] = run_server(kind, args, srv_cpus, gen_cpus)
    lines = report(runs, args)
    print()
    print(f"machine: {machine()}")
    pinned = "no"
    if srv_cpus is not None and gen_cpus is not None:
        gens = ",".join(map(str, sorted(gen_cpus)))
        pinned = f"server on CPU {min(srv_cpus)}, generators on CPU {gens}"
    print(
        f"workload: M = {args.deliveries} / S messages of ~{loadgen.BODY_LEN} B at full speed "
        f"(window {args.window}); {args.rate:g} msg/s for {args.seconds:g} s; "
        f"{args.procs} subscriber processes + 1 publisher; pinned: {pinned}"
    )
    print("\n".join(lines))
    print()
    print(prescan_cost(runs))
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {k: {**vars(v), "sizes": [vars(r) for r in v.sizes]} for k, v in runs.items()},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
