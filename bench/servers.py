"""The servers under test, each in its own process: bridgehost and the floor.

Also what is read from /proc about them (CPU time, RSS) and about the machine.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "localhost"
PUBLISHER = f"!bench@{DOMAIN}"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    kind: str
    proc: subprocess.Popen[bytes]
    port: int
    pub_ident: dict[str, Any]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_ms(self) -> float:
        """utime + stime of the whole process (all threads), in ms."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / TICK

    def status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server not listening on {port}; see {log}")


def pinned(cpus: frozenset[int] | None, argv: list[str]) -> list[str]:
    """`argv` run on `cpus`: a tiny Python that sets its affinity, then execs `argv`
    (same pid, and every thread the server starts later inherits the affinity)."""
    if not cpus:
        return argv
    code = "import os, sys; os.sched_setaffinity(0, {%s}); os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", code % ",".join(map(str, sorted(cpus))), *argv]


def launch_bridgehost(
    work: Path,
    server_yaml: str,
    rest_yaml: str = "",
    cpus: frozenset[int] | None = None,
    tree: Path | None = None,
) -> tuple[subprocess.Popen[bytes], int, str, Path]:
    """Write a config (extra `server:` keys, then any other sections), create the
    publisher's token, start `bridgehost run` and wait until it listens. `tree` runs
    the bridgehost of another source tree (e.g. a worktree of an older commit).
    Returns the process, its port, the publisher's token and the log path."""
    root = tree or ROOT
    env = {**os.environ, "PYTHONPATH": str(root)}
    port = free_port()
    config = work / "bridgehost.yaml"
    config.write_text(
        f"""server:
  domain: {DOMAIN}
  listen: ["tcp://127.0.0.1:{port}"]
  data_dir: {work / "data"}
{server_yaml}{rest_yaml}"""
    )
    cli = [sys.executable, "-m", "bridgehost"]
    token = subprocess.run(
        [*cli, "token", "create", PUBLISHER, "-c", str(config), "-q"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    log = work / "bridgehost.log"
    proc = subprocess.Popen(
        pinned(cpus, [*cli, "run", "-c", str(config), "-q"]),
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    wait_listening(port, proc, log)
    return proc, port, token, log


def start_bridgehost(
    work: Path, cpus: frozenset[int] | None, tree: Path | None = None, kind: str = "bridgehost"
) -> Server:
    # all generator connections come from 127.0.0.1: lift the per-address limit (in trees
    # that have one; older ones refuse the key)
    settings = (tree or ROOT) / "bridgehost" / "scalar" / "settings.py"
    known = "connections_per_address" in settings.read_text()
    per_address = ", connections_per_address: 20000" if known else ""
    proc, port, token, log = launch_bridgehost(
        work,
        "  guests: true\n"
        "  history: {keep: 10000}\n"
        f"  limits: {{connections: 20000, send_buffer: 67108864{per_address}}}\n",
        cpus=cpus,
        tree=tree,
    )
    ident = {"t": "ident", "v": 1, "id": PUBLISHER, "auth": {"method": "token", "secret": token}}
    return Server(kind, proc, port, ident, log)


def start_floor(work: Path, cpus: frozenset[int] | None) -> Server:
    port = free_port()
    log = work / "floor.log"
    proc = subprocess.Popen(
        pinned(
            cpus, [sys.executable, str(ROOT / "bench" / "floor_server.py"), "--port", str(port)]
        ),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    wait_listening(port, proc, log)
    return Server("floor", proc, port, {"t": "ident", "v": 1, "id": PUBLISHER}, log)


def cpu_busy_ms(cpu: int) -> float:
    """Busy time of one CPU since boot (everything but idle and iowait), in ms."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            f = [int(x) for x in line.split()[1:]]
            return (sum(f[:8]) - f[3] - f[4]) * 1000 / TICK
    raise KeyError(cpu)


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    try:
        loop = f"uvloop {metadata.version('uvloop')}"
    except metadata.PackageNotFoundError:
        loop = "asyncio"
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem} RAM, Python {platform.python_version()}, "
        f"{loop}, {platform.system()} {platform.release()}, {time.strftime('%Y-%m-%d')}"
    )
