"""status.json: written off the loop, only when it changed; `bridgehost status` over HTTP."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

from bridgehost.web.status import StatusFile
from tests.integration.proc import BridgehostProcess
from tests.servers.ircd import free_port


async def test_written_only_on_change_from_a_thread(tmp_path: Path) -> None:
    state: dict[str, Any] = {"time": 1.0, "links": [], "pid": 1}
    writers: list[str] = []
    sf = StatusFile(tmp_path, lambda: state)
    original = Path.replace

    def spy(self: Path, target: Any) -> Path:
        writers.append(threading.current_thread().name)
        return original(self, target)

    Path.replace = spy  # type: ignore[method-assign]
    try:
        assert await sf.update()
        state["time"] = 2.0  # only the clock moved: nothing to write
        assert not await sf.update()
        state["links"] = [{"state": "joined"}]
        assert await sf.update()
    finally:
        Path.replace = original  # type: ignore[method-assign]
    assert sf.writes == 2
    assert len(writers) == 2
    assert all(name != threading.main_thread().name for name in writers)
    path = tmp_path / "status.json"
    assert json.loads(path.read_text())["links"] == [{"state": "joined"}]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _wait_listening(port: int, timeout: float = 20.0) -> None:
    """`proc.start()` waits for the Scalar port; the HTTP one opens just after it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_cli_status_reads_http_then_the_file(tmp_path: Path) -> None:
    port = free_port()
    proc = BridgehostProcess(tmp_path, {"http": {"listen": f"127.0.0.1:{port}"}})
    proc.start()
    try:
        _wait_listening(port)
        out = proc.cli("status", "--json")
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["http"] == f"http://127.0.0.1:{port}"
        assert data["pid"] == proc.proc.pid  # type: ignore[union-attr]
        # the file is not what answered: it may not even be written yet
        (tmp_path / "data" / "status.json").unlink(missing_ok=True)
        assert proc.cli("status").returncode == 0
    finally:
        proc.stop()
    stopped = proc.cli("status")
    assert stopped.returncode == 1
    assert "NOT running" in stopped.stdout
