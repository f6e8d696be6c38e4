"""How plugin processes run: the options of any account with `process: true`
(`type: exec` ones included) and of bots given by `command:` (design.md §6,
docs/plugins.md).

The processes themselves are run by `bridgehost.plugins`.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .reader import Reader

DEFAULT_GRACE = 5.0
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a plugin that exits is restarted, and when that stops."""

    burst: int = 5
    """Exits within `interval` seconds after which it is stopped and reported, not restarted."""
    interval: float = 60.0
    initial: float = 0.5
    """Seconds before the first restart (then doubling up to `cap`, jittered)."""
    cap: float = 30.0


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    """How one plugin process runs."""

    memory_mb: int | None = None
    """Address-space limit (RLIMIT_AS) in MiB; None: no limit."""
    grace: float = DEFAULT_GRACE
    """Seconds the plugin gets to exit after `bye`, and again after SIGTERM, before SIGKILL."""
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    spare: bool = True
    """`process: true` adapters: keep a second process started and loaded, waiting
    to take over at once when the running one ends (costs its memory)."""


PROCESS_KEYS = ("limits", "grace", "restart", "spare")
"""Keys of an account or bot that only a process has."""


def process_options(r: Reader, *, adapter: bool = True) -> ProcessOptions:
    """`limits:`, `grace:`, `restart:` (and for bridgehost's own adapters `spare:`) of
    an account or bot that runs as a process."""
    lim = r.child("limits")
    memory = lim.integer("memory_mb", 256, lo=16) if lim.raw.get("memory_mb") is not None else 0
    lim.unknown()
    rr = r.child("restart")
    d = RestartPolicy()
    restart = RestartPolicy(
        burst=rr.integer("burst", d.burst, lo=1),
        interval=rr.number("interval", d.interval, lo=1.0),
        initial=rr.number("initial", d.initial, lo=0.01),
        cap=rr.number("cap", d.cap, lo=0.01),
    )
    if restart.cap < restart.initial:
        rr.problem("cap", "must be at least `initial`")
        restart = RestartPolicy(restart.burst, restart.interval, restart.initial, restart.initial)
    rr.unknown()
    if not adapter and "spare" in r.raw:
        r.problem("spare", "only bridgehost's own adapters can wait as a spare")
        r.boolean("spare", False)
    return ProcessOptions(
        memory_mb=memory or None,
        grace=r.number("grace", DEFAULT_GRACE, lo=0.1),
        restart=restart,
        spare=adapter and _spare(r),
    )


def _spare(r: Reader) -> bool:
    return r.boolean("spare", True)


def command_of(r: Reader) -> tuple[str, ...]:
    """`command: [program, arg, ...]` (a list, never a shell string)."""
    if isinstance(r.raw.get("command"), str):
        r.problem("command", "must be a list like [./plugin, --flag] (no shell is used)")
        r._known.add("command")
        return ()
    return program_argv(r)


def program_argv(r: Reader) -> tuple[str, ...]:
    """`command:` as a list of text, its program checked (what exec accounts and bots
    share): a path, resolved against the config file's directory, must be a file; a
    bare name must be on PATH."""
    command = list(r.texts("command"))
    if not command:
        r.problem("command", "is required: the program and its arguments, as a list")
    elif "/" in command[0]:
        program = Path(command[0]).expanduser()
        program = program if program.is_absolute() else r.base / program
        if not program.is_file():
            r.problem("command", f"no such program: {program}")
        command[0] = str(program)
    elif shutil.which(command[0]) is None:
        r.problem("command", f"{command[0]!r} is not on PATH")
    return tuple(command)


def environment(r: Reader) -> dict[str, str]:
    """`env: {NAME: value}` added to the plugin's (otherwise minimal) environment."""
    env = r.child("env")
    out: dict[str, str] = {}
    for name in env.raw:
        value = env.text(str(name), "", secret=True)
        if not ENV_NAME.fullmatch(str(name)):
            env.problem(str(name), "is not a valid environment variable name")
        elif str(name).startswith("BRIDGEHOST_"):
            env.problem(str(name), "BRIDGEHOST_* variables are set by bridgehost itself")
        else:
            out[str(name)] = str(value)
    return out
