"""`type: exec` accounts: a program that speaks Scalar/1 on its stdin/stdout
(scalar-protocol.md §12), started and supervised by bridgehost as its own
reserved ID. The config is read and checked here; the process side is the
plugin supervisor's (issue #16), and until it exists such an account is
reported as not runnable rather than silently ignored."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ...config.model import AccountKeys
from ...config.reader import Reader
from ...scalar import ids
from ..spec import AdapterFactory, AdapterSpec


@dataclass(frozen=True, slots=True)
class ExecAccount:
    name: str
    command: tuple[str, ...]
    """argv; a relative program path is resolved against the config file's directory."""
    id: str
    """The reserved ID the program acts as, e.g. `!weather@example.com`."""
    process: bool = True
    type: str = "exec"

    def reserved_id(self, domain: str) -> str:
        return self.id


def read_account(keys: AccountKeys, r: Reader) -> ExecAccount:
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
    ident = r.text("id", "", required=True)
    if ident:
        try:
            parsed = ids.parse(ident)
        except Exception:
            r.problem("id", f"not a valid ID: {ident!r}")
        else:
            if parsed.kind is not ids.Kind.RESERVED or parsed.domain != keys.domain:
                r.problem("id", f"must be a reserved ID like '!name@{keys.domain}'")
            ident = str(parsed)
    if "process" in r.raw and not keys.process:
        r.problem("process", "an exec account always runs as its own process")
    return ExecAccount(name=keys.name, command=tuple(command), id=ident)


class ExecNotAvailable(Exception):
    """Exec accounts are configured, but this build cannot run them yet."""


def load() -> AdapterFactory:
    raise ExecNotAvailable(
        "running `type: exec` programs is not implemented yet (plugin supervision, issue #16)"
    )


ADAPTER = AdapterSpec(type="exec", read=read_account, load=load)
