"""Run `python -m bridgehost` as a real process, for tests of signals and crashes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.servers.ircd import free_port


class BridgehostProcess:
    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None) -> None:
        self.dir = tmp_path
        self.port = free_port()
        self.config_path = tmp_path / "bridgehost.yaml"
        raw: dict[str, Any] = {
            "server": {
                "domain": "test.example",
                "listen": [f"tcp://127.0.0.1:{self.port}"],
                "data_dir": str(tmp_path / "data"),
                "guests": True,
            }
        }
        for key, value in (config or {}).items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key].update(value)
            else:
                raw[key] = value
        self.config_path.write_text(yaml.safe_dump(raw))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp_path / "bridgehost.log"

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridgehost", *args, "-c", str(self.config_path)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self, timeout: float = 20.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridgehost", "run", "-c", str(self.config_path)],
            stdout=log,
            stderr=log,
            cwd=self.dir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bridgehost exited early:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"bridgehost did not listen in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.signal(signal.SIGTERM)
        try:
            return self.wait()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
