"""Keep one plugin process running: start it with its session on stdio, restart
it with backoff when it exits, stop it for good when it keeps crashing.

Each run ("life") is: open a pre-authenticated session for the plugin's
reserved ID, start the program with that session as its stdin and stdout,
relay its stderr, and wait until the program exits or its session ends
(bridgehost cut it off: garbage on stdout, a slow consumer). Either way the
program is stopped (nothing of it is left running) and the life is over.
`runtime.supervise` restarts it after the backoff's delay; `restart.burst`
exits within `restart.interval` seconds end that with a `Fatal` instead:
the plugin is left stopped and reported (status, /metrics, /healthz).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..config.plugins import ProcessOptions
from ..runtime import SYSTEM_CLOCK, Backoff, Clock, Fatal, TaskSet, supervise
from ..scalar.pipes import make_pipes
from ..scalar.server import PluginConnection, ScalarServer
from ..scalar.session import Extension
from ..scalar.wire import CborMap
from .process import Launch, PluginProcess, describe_exit
from .report import LinkMirror

log = logging.getLogger(__name__)

HEALTHY_AFTER = 2.0
"""Seconds a plugin must have run for its next restart to come quickly."""
QUICK_RESTART = 0.1
"""Seconds (at most) before restarting a plugin that had been running fine."""
SPARE_DELAY = 1.0
"""Seconds after a start before its spare starts (they would compete for the CPU)."""
STDERR_DRAIN = 1.0
"""Seconds to read what is left in a plugin's stderr after it exited."""

Kind = Literal["adapter", "exec", "bot"]
"""`process: true` adapter, `type: exec` account, or a bot given by `command:`."""
ProcessState = Literal["starting", "running", "restarting", "failed", "stopped"]


class PluginExited(Exception):
    """The program exited (or was cut off) on its own: restart it."""


class CrashLoop(Fatal):
    """It exited too often too quickly: restarting cannot help."""


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """What one plugin is: how bridgehost names it, what runs, who it is."""

    name: str
    kind: Kind
    ident: str
    """Its reserved ID: the session on its stdio is opened as this ID."""
    launch: Launch
    options: ProcessOptions = field(default_factory=ProcessOptions)
    mirror: LinkMirror | None = None
    """Its links, when it serves some (adapters and exec accounts)."""
    reports: bool = False
    """It reports its links' state itself (bridgehost's own adapters do): until the
    first report they show `starting`, not `up`, while the process runs."""


@dataclass(slots=True, eq=False)
class PluginState:
    """One plugin's process, as status, /metrics and /healthz show it."""

    name: str
    kind: Kind
    id: str
    command: str
    state: ProcessState = "starting"
    since: float = 0.0
    pid: int | None = None
    starts: int = 0
    last_exit: str | None = None
    last_error: str | None = None
    last_error_time: float | None = None
    failing_since: float | None = None
    """Wall-clock time since which it has not been running (None while it runs)."""

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "id": self.id,
            "command": self.command,
            "state": self.state,
            "since": self.since,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
            "failing_since": self.failing_since,
        }


class PluginSupervisor:
    def __init__(
        self,
        spec: PluginSpec,
        server: ScalarServer,
        *,
        clock: Clock = SYSTEM_CLOCK,
        extensions: Mapping[str, Extension] | None = None,
    ) -> None:
        self.spec = spec
        self.server = server
        self.clock = clock
        self.log = logging.getLogger(f"bridgehost.plugin.{spec.name}")
        self.state = PluginState(
            spec.name, spec.kind, spec.ident, " ".join(spec.launch.command), since=self._now()
        )
        restart = spec.options.restart
        # A run of a few seconds was a run: the first restart after it comes at once
        # (a killed adapter is back quickly); crash loops are `restart.burst`'s job.
        self.backoff = Backoff(
            restart.initial,
            restart.cap,
            healthy_after=min(HEALTHY_AFTER, restart.interval / 6),
            quick=min(QUICK_RESTART, restart.initial),
        )
        self._exits: collections.deque[float] = collections.deque()
        self._extensions: dict[str, Extension] = dict(extensions or {})
        if spec.mirror is not None:
            self._extensions["status"] = self._on_status
        self.process: PluginProcess | None = None
        self.conn: PluginConnection | None = None
        self._spare: tuple[PluginProcess, tuple[int, int]] | None = None
        """A started, loaded process waiting to take over (adapters), and our pipe ends."""
        self._spares = TaskSet(f"plugin {spec.name} spare")
        self.running = asyncio.Event()
        """Set while a process runs (tests and the host wait on it)."""
        self._stopping = False

    def _now(self) -> float:
        return self.clock.now_ms() / 1000

    # --- state ------------------------------------------------------------------------------

    def _set(self, state: ProcessState, error: str | None = None) -> None:
        st = self.state
        if state != st.state:
            st.state, st.since = state, self._now()
        if state in ("running", "stopped"):
            st.failing_since = None
        elif state in ("restarting", "failed") and st.failing_since is None:
            st.failing_since = self._now()
        if error is not None:
            st.last_error, st.last_error_time = error, self._now()
        mirror = self.spec.mirror
        if mirror is not None:
            link_state: Literal["starting", "up", "disconnected", "error", "stopped"] = {
                "starting": "starting",
                "running": "starting" if self.spec.reports else "up",
                "restarting": "disconnected",
                "failed": "error",
                "stopped": "stopped",
            }[state]
            why = None
            if state in ("restarting", "failed"):
                why = f"{self.spec.kind} process {state}: {error or st.last_exit}"
            mirror.process_state(link_state, why)

    async def _on_status(self, ident: str, request: CborMap) -> CborMap:
        assert self.spec.mirror is not None
        self.spec.mirror.apply(request)
        return {"t": "ok"}

    # --- life cycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the plugin running until cancelled, or until it keeps crashing."""
        try:
            await supervise(
                f"{self.spec.kind} {self.spec.name}",
                self._life,
                backoff=self.backoff,
                on_fatal=lambda exc: self._set("failed", str(exc)),
            )
        finally:
            await self._drop_spare()

    async def _life(self) -> None:
        spec = self.spec
        self._set("starting")
        if spec.mirror is not None:
            spec.mirror.new_life()
        process, conn = await self._start()
        self.process, self.conn = process, conn
        self.state.starts += 1
        self.state.pid = process.pid
        self._set("running")
        self.running.set()
        self.log.info("started (pid %d)%s", process.pid, self._restart_note())
        try:
            async with asyncio.TaskGroup() as tasks:
                stderr = tasks.create_task(process.log_stderr(), name=f"plugin-{spec.name}-log")
                if spec.kind == "adapter" and spec.options.spare:
                    self._spares.spawn(self._prepare_spare(), name=f"plugin-{spec.name}-spare")
                cut_off = tasks.create_task(conn.ended.wait(), name=f"plugin-{spec.name}-session")
                exited = tasks.create_task(process.wait(), name=f"plugin-{spec.name}-wait")
                await asyncio.wait((cut_off, exited), return_when=asyncio.FIRST_COMPLETED)
                reason = await self._cut_off(process, conn, exited)
                cut_off.cancel()
                code = await exited
                process.signal_group(signal.SIGKILL)  # whatever it left behind
                await asyncio.wait({stderr}, timeout=STDERR_DRAIN)
                stderr.cancel()
        finally:
            self.running.clear()
            if process.returncode is None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._stop_process(process, conn)
            conn.abort()
            self.state.pid = None
            self.process = self.conn = None
        self.state.last_exit = describe_exit(code)
        why = reason or self.state.last_exit
        if process.last_line and code != 0:
            self.log.warning("%s; its last words: %s", why, process.last_line)
        raise self._exited(why)

    async def _cut_off(
        self, process: PluginProcess, conn: PluginConnection, exited: asyncio.Task[int]
    ) -> str | None:
        """The session ended or the program exited: see it exit; why, if not by itself."""
        grace = self.spec.options.grace
        if exited.done() or self._stopping:
            await exited  # shutdown() stops it: bye, SIGTERM, SIGKILL
            return None
        if conn.session.bye_reason is None:
            # It closed its stdout: it is exiting, most likely. Give it its grace.
            done, _ = await asyncio.wait({exited}, timeout=grace)
            if done:
                return None
            reason = "it closed its stdout but kept running"
            self.log.error("%s; stopping it", reason)
            await process.stop(grace)
            return reason
        reason = conn.end_reason()
        self.log.error("session ended while running: %s; stopping it", reason)
        # It has had its bye (and its stdin is closed): a grace to leave by itself.
        await process.stop(grace, bye=lambda: None)
        return reason

    async def _start(self) -> tuple[PluginProcess, PluginConnection]:
        """A process with its session: the spare if one waits, else a new one."""
        spec = self.spec
        spare, self._spare = self._spare, None
        if spare is not None and spare[0].returncode is None:
            process, ours = spare
            conn, _ = await self.server.connect_plugin(
                spec.ident, extensions=self._extensions, ours=ours
            )
            process.activate()
            self.log.info("the spare (pid %d) takes over", process.pid)
            return process, conn
        conn, ends = await self.server.connect_plugin(spec.ident, extensions=self._extensions)
        assert ends is not None
        try:
            try:
                process = await PluginProcess.start(spec.launch, ends, self.log)
            finally:
                ends.close()
        except OSError as exc:
            conn.abort()
            raise self._exited(
                f"cannot start {spec.launch.command[0]!r}: {exc.strerror or exc}"
            ) from None
        return process, conn

    async def _prepare_spare(self) -> None:
        """Start a process that loads everything and then waits to take over
        (docs/plugins.md); it is the next run's process if this one ends."""
        await asyncio.sleep(SPARE_DELAY)  # after the running one's own start
        if self._spare is not None or self._stopping:
            return
        ours, ends = make_pipes()
        starting = asyncio.ensure_future(
            PluginProcess.start(self.spec.launch, ends, self.log, spare=True)
        )
        try:
            try:
                process = await asyncio.shield(starting)
            finally:
                ends.close()
        except asyncio.CancelledError:
            # Stopping while it starts: it must not be left behind.
            with contextlib.suppress(Exception):
                started = await starting
                await started.stop(0.1)
            for fd in ours:
                os.close(fd)
            raise
        except OSError as exc:
            for fd in ours:
                os.close(fd)
            self.log.warning("no spare: %s", exc.strerror or exc)
            return
        self._spare = (process, ours)
        try:
            await process.log_stderr()
            code = await process.wait()
        finally:
            if self._spare is not None and self._spare[0] is process:
                self._spare = None
                for fd in ours:
                    os.close(fd)
                process.signal_group(signal.SIGKILL)
        if self.process is not process and not self._stopping:
            self.log.warning(
                "the spare (pid %d) %s while waiting", process.pid, describe_exit(code)
            )

    async def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            process, ours = spare
            for fd in ours:
                os.close(fd)
            await process.stop(self.spec.options.grace)
        await self._spares.close()

    def _restart_note(self) -> str:
        n = self.state.restarts
        return f", restart {n}" if n else ""

    def _exited(self, why: str) -> BaseException:
        """Count an exit: what to raise so that `supervise` restarts it or gives up."""
        now = self.clock.monotonic()
        restart = self.spec.options.restart
        self._exits.append(now)
        while self._exits and now - self._exits[0] > restart.interval:
            self._exits.popleft()
        if self._stopping:
            return asyncio.CancelledError()
        if len(self._exits) >= restart.burst:
            return CrashLoop(
                f"{why}; {len(self._exits)} exits within {restart.interval:g} s: left stopped"
                f" (fix it, then restart bridgehost)"
            )
        self._set("restarting", why)
        return PluginExited(why)

    async def _stop_process(self, process: PluginProcess, conn: PluginConnection) -> None:
        def bye() -> None:
            conn.session.bye("shutdown")

        code = await process.stop(self.spec.options.grace, bye=None if conn.lost else bye)
        self.log.info("stopped (%s)", describe_exit(code))

    async def shutdown(self) -> None:
        """Stop the running process in order: `bye`, SIGTERM, SIGKILL (grace between)."""
        self._stopping = True
        process, conn = self.process, self.conn
        if process is not None and conn is not None and process.returncode is None:
            await self._stop_process(process, conn)
        await self._drop_spare()
        self._set("stopped")
