"""The `accounts:` section: each account's `type` names an adapter, and that
adapter reads the rest of the section itself.

Adapters register in the entry-point group `bridgehost.adapters` (as bots do
in `bridgehost.bots`), so a pip-installed package can add a network. The
object registered is the adapter's spec (`bridgehost.adapters.spec.AdapterSpec`),
found in a light module that imports no network code: `bridgehost check`
reads configs without loading any adapter.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from .model import Account, AccountKeys
from .plugins import PROCESS_KEYS, ProcessOptions, process_options
from .reader import Reader

ENTRY_POINT_GROUP = "bridgehost.adapters"
BUILTINS = {
    "irc": "bridgehost.adapters.irc.config:ADAPTER",
    "matrix": "bridgehost.adapters.matrix.config:ADAPTER",
    "fs": "bridgehost.adapters.fs.config:ADAPTER",
    "exec": "bridgehost.adapters.exec.config:ADAPTER",
}
"""The builtins by type, also when bridgehost runs from a source tree whose
installed metadata predates them."""
_NAME = re.compile(r"[A-Za-z0-9._-]{1,40}")


@runtime_checkable
class AccountType(Protocol):
    """How one account type reads its section and checks its links' targets."""

    @property
    def type(self) -> str: ...

    def read_account(self, keys: AccountKeys, r: Reader) -> Account:
        """The typed account; problems go to `r` with their YAML path."""

    def check_target(self, target: str) -> str | None:
        """What is wrong with a link target of this type (None: fine)."""

    def default_target(self, channel: str) -> str | None:
        """The target of a link that names none (None: `target` is required)."""


class AccountTypeError(Exception):
    pass


def _specs() -> dict[str, str]:
    found = dict(BUILTINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def _load(spec: str) -> AccountType:
    module_name, _, attr = spec.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise AccountTypeError(f"cannot load {spec}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, AccountType):
        raise AccountTypeError(f"{spec} is not an adapter spec (see bridgehost.adapters.spec)")
    return obj


def known_types() -> list[str]:
    return sorted(_specs())


def account_type(name: str) -> AccountType:
    """The registered type `name`; AccountTypeError if unknown or broken."""
    spec = _specs().get(name)
    if spec is None:
        raise AccountTypeError(f"unknown account type {name!r} (known: {', '.join(known_types())})")
    return _load(spec)


def accounts_section(
    r: Reader, domain: str, processes: dict[str, ProcessOptions] | None = None
) -> dict[str, Account]:
    """Every account; those that run as a process also get their options in `processes`."""
    out: dict[str, Account] = {}
    for name in r.raw:
        a = r.child(str(name))
        kind = a.text("type", required=True)
        if not _NAME.fullmatch(str(name)):
            a.problem("", "account names may use letters, digits, '.', '_', '-' (max 40)")
        if kind is None:
            continue
        try:
            found = account_type(str(kind))
        except AccountTypeError as exc:
            a.problem("type", str(exc))
            continue
        keys = AccountKeys(name=str(name), process=a.boolean("process", False), domain=domain)
        account = out[str(name)] = found.read_account(keys, a)
        if account.process:
            options = process_options(a, adapter=account.type != "exec")
            if processes is not None:
                processes[str(name)] = options
        else:
            for key in PROCESS_KEYS:
                if key in a.raw:
                    a.problem(key, "applies to an account with `process: true` only")
                    a._known.add(key)
        a.unknown()
    return out
