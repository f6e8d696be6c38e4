"""The results table: bridgehost against the floor, with the ratio and the targets."""

from __future__ import annotations

import argparse
import math
from typing import Any


def fmt(x: float, digits: int = 0) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "-"
    return f"{a / b:.2f}"


def report(runs: dict[str, Any], args: argparse.Namespace) -> list[str]:
    bh, fl = runs.get("bridgehost"), runs.get("floor")
    bases = [runs[name] for name in args.baseline if name in runs]
    head = f"{'metric':<34}{'S':>6}{'bridgehost':>14}{'floor':>14}{'bh/floor':>10}"
    for base in bases:
        head += f"{base.server:>14}{'bh/' + base.server[:7]:>11}"
    lines = [head]
    nan = float("nan")
    sizes = {r.size: r for r in bh.sizes} if bh else {}
    fsizes = {r.size: r for r in fl.sizes} if fl else {}
    bsizes = [{r.size: r for r in base.sizes} for base in bases]

    def row(name: str, size: object, a: float, b: float, digits: int, *, c: list[float]) -> None:
        line = f"{name:<34}{size!s:>6}{fmt(a, digits):>14}{fmt(b, digits):>14}{ratio(a, b):>10}"
        for x in c:
            line += f"{fmt(x, digits):>14}{ratio(a, x):>11}"
        lines.append(line)

    metrics = [
        ("deliveries/s (full speed)", "deliveries_per_s", 0),
        ("CPU-ms per 1000 deliveries", "cpu_ms_per_1000", 3),
        (f"p50 latency ms @{args.rate:g} msg/s", "p50_ms", 3),
        (f"p99 latency ms @{args.rate:g} msg/s", "p99_ms", 3),
        ("p99 ms, read by generator", "p99_app_ms", 3),
        ("server CPU during paced run, %", "server_load_pct", 0),
        ("other load on server's CPU, %", "other_load_pct", 0),
    ]
    for name, attr, digits in metrics:
        for size in args.sizes:
            a = getattr(sizes[size], attr) if size in sizes else nan
            b = getattr(fsizes[size], attr) if size in fsizes else nan
            c = [getattr(bs[size], attr) if size in bs else nan for bs in bsizes]
            row(name, size, a, b, digits, c=c)
    for name, attr in (("RSS idle MiB", "rss_idle_kb"), ("RSS peak MiB", "rss_peak_kb")):
        a = getattr(bh, attr) / 1024 if bh else nan
        b = getattr(fl, attr) / 1024 if fl else nan
        row(name, "", a, b, 1, c=[getattr(base, attr) / 1024 for base in bases])
    row(
        f"RSS KiB per idle conn ({args.idle_conns})",
        "",
        bh.rss_per_conn_kb if bh else nan,
        fl.rss_per_conn_kb if fl else nan,
        1,
        c=[base.rss_per_conn_kb for base in bases],
    )
    for run in runs.values():
        for p in run.problems:
            lines.append(f"! {run.server}: {p}")
        for r in run.sizes:
            for p in r.problems:
                lines.append(f"! {run.server} S={r.size}: {p}")
    if bh and fl and 200 in sizes and 200 in fsizes:
        b2, f2 = sizes[200], fsizes[200]
        checks = [
            (
                "deliveries/s at S=200 >= 1.5 x floor",
                b2.deliveries_per_s >= 1.5 * f2.deliveries_per_s,
            ),
            (f"p99 <= 3 ms at {args.rate:g} msg/s x 200 subscribers", b2.p99_ms <= 3.0),
            (
                "CPU per 1000 deliveries below the floor's (S=200)",
                b2.cpu_ms_per_1000 < f2.cpu_ms_per_1000,
            ),
        ]
        lines.append("")
        lines.extend(f"target: {name}: {'met' if ok else 'MISSED'}" for name, ok in checks)
    return lines
