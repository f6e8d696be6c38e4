"""Nothing outlives bridgehost: not its plugins, not what they started, not
when bridgehost itself is killed with SIGKILL."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.integration.proc import BridgehostProcess

from .helpers import alive, script

FAMILY = """
import subprocess
child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.buffer.read()"])
open(os.environ["PIDS"], "w").write(f"{os.getpid()} {child.pid}")
ident()
while True:
    recv()
"""


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def test_sigkill_of_bridgehost_takes_its_plugins_along(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    config = {
        "accounts": {
            "family": {
                "type": "exec",
                "id": "!family@test.example",
                "command": script(tmp_path, "family", FAMILY),
                "env": {"PIDS": str(pids_file)},
            },
            "files": {"type": "fs", "root": str(tmp_path / "root"), "process": True},
        },
        "bridges": [{"channel": "#f@test.example", "links": [{"account": "files", "target": "f"}]}],
    }
    bh = BridgehostProcess(tmp_path, config)
    bh.start()
    try:
        wait_for(pids_file.exists, 20, "the exec plugin started")
        status_path = tmp_path / "data" / "status.json"

        def adapter_pid() -> int | None:
            try:
                plugins = json.loads(status_path.read_text())["plugins"]
            except (OSError, ValueError, KeyError):
                return None
            return next((p["pid"] for p in plugins if p["name"] == "files"), None)

        wait_for(adapter_pid, 20, "the adapter process started")
        pids = [int(p) for p in pids_file.read_text().split()]
        pids.append(adapter_pid() or 0)
        assert all(alive(pid) for pid in pids)
        bh.signal(signal.SIGKILL)
        bh.wait()
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, f"{pids} gone")
    finally:
        bh.stop()
