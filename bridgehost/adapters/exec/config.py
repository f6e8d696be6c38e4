"""`type: exec` accounts: a program that speaks Scalar/1 on its stdin/stdout
(scalar-protocol.md §12), started and supervised by bridgehost as its own
reserved ID (`bridgehost.plugins`; docs/plugins.md). The config is read and
checked here; there is no in-process adapter to load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config.model import AccountKeys
from ...config.plugins import environment, program_argv
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
    env: dict[str, str] = field(default_factory=dict)
    """Added to the program's (otherwise minimal) environment."""
    config: dict[str, Any] = field(default_factory=dict)
    """Handed to the program as JSON in BRIDGEHOST_CONFIG."""
    cwd: Path | None = None
    """Its working directory (default: the config file's)."""
    process: bool = True
    type: str = "exec"

    def reserved_id(self, domain: str) -> str:
        return self.id


def read_account(keys: AccountKeys, r: Reader) -> ExecAccount:
    command = program_argv(r)
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
    config: dict[str, Any] = r._get("config", {}, lambda v: isinstance(v, dict), "a map")
    return ExecAccount(
        name=keys.name,
        command=command,
        id=ident,
        env=environment(r),
        config=dict(config),
        cwd=r.path_("cwd") or r.base,
    )


class NotAnAdapter(Exception):
    """An exec account is a program of its own, never an adapter in the app."""


def _refuse(ctx: Any) -> Any:
    raise NotAnAdapter("a `type: exec` account runs as its own process (bridgehost.plugins)")


def load() -> AdapterFactory:
    """Nothing to import: the app hands exec accounts to the plugin supervisor."""
    return _refuse


ADAPTER = AdapterSpec(type="exec", read=read_account, load=load)
