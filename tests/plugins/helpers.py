"""Shared by the plugin tests: tiny plugin programs, waiting, process checks."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

from bridgehost.plugins.supervisor import PluginSupervisor
from bridgehost.testing import Running

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
FAST_RESTART = {"initial": 0.05, "cap": 0.2}

# The start of a plugin in Python with the stdlib and cbor2 (as a plugin author
# would write it): `send(map)`, `recv() -> map`, `ident()`.
PRELUDE = """
import os, sys, time, struct, signal, json
import cbor2
ME = os.environ["BRIDGEHOST_ID"]
def send(m):
    body = cbor2.dumps(m)
    sys.stdout.buffer.write(struct.pack("<H", len(body)) + body)
    sys.stdout.buffer.flush()
def recv():
    head = sys.stdin.buffer.read(2)
    if len(head) < 2:
        sys.exit(0)
    m = cbor2.loads(sys.stdin.buffer.read(struct.unpack("<H", head)[0]))
    if m.get("t") == "bye":
        sys.exit(0)
    return m
def ident(ident=None):
    send({"t": "ident", "v": 1, "id": ident or ME, "rid": 1})
    return recv()
"""


def script(tmp_path: Path, name: str, source: str, *, prelude: bool = True) -> list[str]:
    """A Python plugin program written to tmp_path; returns its `command:`."""
    path = tmp_path / f"{name}.py"
    path.write_text((PRELUDE if prelude else "") + textwrap.dedent(source))
    return [sys.executable, str(path)]


def config_file(
    tmp_path: Path,
    accounts: dict[str, Any],
    bridges: list[dict[str, Any]],
    **sections: Any,
) -> Path:
    """tmp_path/bridgehost.yaml (a `process: true` child reads the config file too):
    a server on a free loopback port with the client rate limit lifted, then
    `accounts`, `bridges` and any other top-level `sections` (`http=...`)."""
    raw: dict[str, Any] = {
        "server": {
            "domain": "test.example",
            "listen": ["tcp://127.0.0.1:0"],
            "data_dir": str(tmp_path / "data"),
            "limits": {"rate": 100000, "burst": 100000},
        },
        "accounts": accounts,
        "bridges": bridges,
        **sections,
    }
    path = tmp_path / "bridgehost.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def exec_account(command: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "exec", "command": command, **extra}


def supervisor(srv: Running, name: str) -> PluginSupervisor:
    assert srv.app.plugins is not None
    for sup in srv.app.plugins.supervisors:
        if sup.spec.name == name:
            return sup
    raise LookupError(name)


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def open_tcp(port: int, timeout: float = 15.0) -> tuple[asyncio.StreamReader, Any]:
    """Connect to a plugin's TCP port once it listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
