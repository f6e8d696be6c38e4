"""`status.json` in the data dir: what `bridgehost status` reads when there is no HTTP.

Written from a worker thread (a slow disk never holds the event loop) and only
when something in it changed; `time` is when it last changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.replace(path)


class StatusFile:
    """Writes `status()` to `data_dir/status.json` whenever it changes."""

    def __init__(self, data_dir: Path, status: Callable[[], dict[str, Any]]) -> None:
        self.path = data_dir / STATUS_FILE
        self.status = status
        self._last: str | None = None
        self.writes = 0

    def _render(self) -> tuple[str, str]:
        """(the file's text, the same without the volatile `time`)."""
        snapshot = self.status()
        stable = json.dumps({k: v for k, v in snapshot.items() if k != "time"}, default=str)
        return json.dumps(snapshot, indent=1, default=str), stable

    async def update(self) -> bool:
        """Write if anything changed since the last write; True if it wrote."""
        text, stable = self._render()
        if stable == self._last:
            return False
        try:
            await asyncio.to_thread(_write, self.path, text)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)
            return False
        self._last = stable
        self.writes += 1
        return True

    def write_now(self) -> None:
        """Final write at shutdown (the loop is stopping; a thread would not help)."""
        text, stable = self._render()
        try:
            _write(self.path, text)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)
        self._last = stable

    async def run(self, interval: float = 1.0) -> None:
        while True:
            await self.update()
            await asyncio.sleep(interval)
