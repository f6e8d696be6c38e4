"""What the real-server fixtures (ircd.py, synapse.py) share about child processes:
free loopback ports, log tails for error messages, stopping by PID, and making
sure no server outlives the test run."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

__all__ = [
    "LOOPBACK",
    "die_with_parent_prefix",
    "free_port",
    "stop_process",
    "tail",
    "track",
]

LOOPBACK = "127.0.0.1"

# Every child process registered with `track`, so that nothing outlives the
# interpreter even if a fixture's teardown never ran (e.g. on KeyboardInterrupt).
_LIVE_PROCESSES: set[subprocess.Popen[bytes]] = set()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note why there are none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path.name}: missing)"
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path.name}: empty)"


def die_with_parent_prefix() -> list[str]:
    """``setpriv --pdeathsig TERM --`` when usable, else nothing.

    The child then gets SIGTERM when pytest dies, even by SIGKILL, so no
    server outlives a crashed test run. Linux sends it when the *thread*
    that forked exits, so it is only used from the main thread (fixtures);
    servers started from worker threads rely on `stop` and atexit alone.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", "TERM", "--"]


def track(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Stop ``proc`` at interpreter exit unless `stop_process` has stopped it before."""
    _LIVE_PROCESSES.add(proc)
    return proc


def stop_process(proc: subprocess.Popen[bytes], timeout: float, kill_wait: float = 10.0) -> None:
    """SIGTERM the process by PID, SIGKILL it if it lingers past ``timeout``, and reap it."""
    try:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=kill_wait)
    finally:
        _LIVE_PROCESSES.discard(proc)


def _kill_leftovers() -> None:
    for proc in list(_LIVE_PROCESSES):
        stop_process(proc, timeout=2.0)


atexit.register(_kill_leftovers)
