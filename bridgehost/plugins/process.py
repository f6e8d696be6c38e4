"""One run of a plugin program: start it, relay its stderr to the log, stop it.

The program gets pipes as its stdin and stdout (the Scalar session, §12)
and as its stderr (its log). It starts through `launch.py`, which
makes the kernel kill it when bridgehost dies (PR_SET_PDEATHSIG) and
applies `limits.memory_mb` (RLIMIT_AS); it runs in a session of its own, so
a terminal's Ctrl-C reaches bridgehost only (which then stops plugins in
order), and stopping it also stops whatever it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime import TokenBucket, wait_for
from ..scalar.pipes import ChildEnds

LAUNCHER = Path(__file__).with_name("launch.py")
MAX_LINE = 4000
"""Characters of one stderr line that reach the log; the rest is cut."""
STDERR_RATE, STDERR_BURST = 100.0, 500
"""Stderr lines per second a plugin may log (beyond that they are counted, not logged)."""

_LEVEL = re.compile(r"(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\b[:]?\s?(.*)", re.DOTALL)
_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")

SPARE_ENV = "BRIDGEHOST_SPARE"
"""Set for a spare adapter process: load everything, then wait for SPARE_SIGNAL."""
SPARE_SIGNAL = signal.SIGUSR1
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
"""Variables of bridgehost's own environment an exec plugin inherits (no secrets)."""


@dataclass(frozen=True, slots=True)
class Launch:
    """What to start and how."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    """The whole environment of the program."""
    cwd: Path | None = None
    memory_mb: int | None = None


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"


def clean_line(raw: bytes) -> str:
    """One stderr line as it may appear in our log: UTF-8 (invalid bytes replaced),
    no control characters (no forged lines or terminal escapes), at most MAX_LINE."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    cut = len(text) - MAX_LINE
    text = _UNPRINTABLE.sub("\ufffd", text[:MAX_LINE])
    return f"{text} [... {cut} more characters]" if cut > 0 else text


def level_of(line: str) -> tuple[int, str]:
    """`WARNING text` is logged at WARNING as `text`; a line without a level is INFO."""
    m = _LEVEL.match(line)
    if m is None:
        return logging.INFO, line
    return _LEVELS[m.group(1)], m.group(2)


class PluginProcess:
    """A started plugin program (one life of it)."""

    def __init__(self, launch: Launch, proc: asyncio.subprocess.Process, log: logging.Logger):
        self.launch = launch
        self.proc = proc
        self.log = log
        self.pid = proc.pid
        self.stderr_lines = 0
        self.stderr_dropped = 0
        self.last_line: str | None = None
        """The last stderr line (for the report when it dies)."""
        self.stderr_done = asyncio.Event()
        self._pumping = False
        self.activated = False
        """A spare that was told to take over."""

    @classmethod
    async def start(
        cls, launch: Launch, stdio: ChildEnds, log: logging.Logger, *, spare: bool = False
    ) -> PluginProcess:
        """Start `launch.command` with the session's pipe ends as its stdin and stdout;
        raises OSError. A `spare` gets SPARE_ENV and waits for `activate()`."""
        args = [sys.executable, "-I", "-S", str(LAUNCHER), "--parent", str(os.getpid())]
        if launch.memory_mb:
            args += ["--memory-mb", str(launch.memory_mb)]
        env = dict(launch.env)
        if spare:
            args.append("--hold")
            env[SPARE_ENV] = "1"
        proc = await asyncio.create_subprocess_exec(
            *args,
            "--",
            *launch.command,
            stdin=stdio.stdin,
            stdout=stdio.stdout,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=launch.cwd,
            start_new_session=True,
        )
        return cls(launch, proc, log)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def wait(self) -> int:
        return await self.proc.wait()

    async def log_stderr(self) -> None:
        """Log every stderr line under the plugin's name until the pipe closes
        (or, when that already happens elsewhere, wait for it)."""
        if self._pumping:
            await self.stderr_done.wait()
            return
        self._pumping = True
        try:
            await self._pump_stderr()
        finally:
            self.stderr_done.set()

    async def _pump_stderr(self) -> None:
        stream = self.proc.stderr
        if stream is None:
            return
        bucket = TokenBucket(STDERR_RATE, STDERR_BURST)
        pending = b""
        skipping = False
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if skipping:
                    skipping = False
                    continue
                self._line(line, bucket)
            if len(pending) > MAX_LINE * 4:
                self._line(pending, bucket)
                pending, skipping = b"", True
        if pending and not skipping:
            self._line(pending, bucket)
        self._report_dropped()

    def _line(self, raw: bytes, bucket: TokenBucket) -> None:
        line = clean_line(raw)
        if not line.strip():
            return
        self.stderr_lines += 1
        self.last_line = line
        if not bucket.try_take():
            self.stderr_dropped += 1
            return
        self._report_dropped()
        level, text = level_of(line)
        self.log.log(level, "%s", text)

    def _report_dropped(self) -> None:
        if self.stderr_dropped:
            self.log.warning(
                "%d stderr line(s) not logged (more than %g per second)",
                self.stderr_dropped,
                STDERR_RATE,
            )
            self.stderr_dropped = 0

    def activate(self) -> None:
        """A spare: stop waiting, run (its session is being served now)."""
        self.activated = True
        os.kill(self.pid, SPARE_SIGNAL)

    def signal_group(self, sig: signal.Signals) -> None:
        """Send `sig` to the plugin and everything it started (its process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def stop(self, grace: float, bye: Callable[[], None] | None = None) -> int:
        """`bye` (when given) and `grace` seconds to exit, then SIGTERM and `grace`
        more, then SIGKILL. Returns the exit status; nothing of it is left running."""
        try:
            if self.returncode is None and bye is not None:
                bye()
                await self._wait_for(grace)
            if self.returncode is None:
                self.signal_group(signal.SIGTERM)
                await self._wait_for(grace)
            if self.returncode is None:
                self.log.warning("did not exit %.1f s after SIGTERM: SIGKILL", grace)
                self.signal_group(signal.SIGKILL)
            return await self.wait()
        finally:
            # Whatever it started and left behind goes with it.
            self.signal_group(signal.SIGKILL)

    async def _wait_for(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await wait_for(asyncio.shield(self.proc.wait()), seconds)
