"""How an adapter makes itself known: one `AdapterSpec` per network, in the
adapter's light `config.py`, registered in the entry-point group
`bridgehost.adapters` (see `bridgehost.config.accounts`):

    [project.entry-points."bridgehost.adapters"]
    xmpp = "bridgehost_xmpp.config:ADAPTER"

The spec reads the account's YAML section and checks link targets without
importing the adapter itself; `load()` imports the adapter when the app
starts it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..config.accounts import AccountTypeError, account_type
from ..config.model import Account, AccountKeys, Config
from ..config.reader import Reader

if TYPE_CHECKING:
    from .base import Adapter, AdapterContext


class AdapterFactory(Protocol):
    def __call__(self, ctx: AdapterContext) -> Adapter: ...


@runtime_checkable
class MediaCredentials(Protocol):
    """Something that can fetch the network's media as an account (the HTTP
    side's media links use it)."""

    def media_credentials(self) -> tuple[str, str] | None:
        """(base URL, access token) while there is a login, else None."""


def _any_target(target: str) -> str | None:
    return None


def _required(channel: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    type: str
    """The `type:` of its accounts, e.g. `irc`."""
    read: Callable[[AccountKeys, Reader], Account]
    load: Callable[[], AdapterFactory]
    """Imports the adapter (only when the app starts one)."""
    target: Callable[[str], str | None] = _any_target
    """What is wrong with a link target (None: fine)."""
    target_default: Callable[[str], str | None] = _required
    """A link's target when it names none, from the bridge's channel (None: required)."""
    media: Callable[[Account, Path], MediaCredentials] | None = None
    """For an account whose adapter runs in a child process (`process: true`): how
    this process fetches media as it, given the account and the data dir."""

    def read_account(self, keys: AccountKeys, r: Reader) -> Account:
        return self.read(keys, r)

    def check_target(self, target: str) -> str | None:
        return self.target(target)

    def default_target(self, channel: str) -> str | None:
        return self.target_default(channel)


def adapter_spec(type_: str) -> AdapterSpec:
    """The registered spec of account type `type_` (AccountTypeError if none)."""
    found = account_type(type_)
    if not isinstance(found, AdapterSpec):
        raise AccountTypeError(f"account type {type_!r} is registered by a {type(found).__name__}")
    return found


def check_adapters(config: Config) -> list[str]:
    """What `bridgehost check` reports beyond the config: adapters that cannot be loaded."""
    problems = []
    for name, account in config.accounts.items():
        try:
            adapter_spec(account.type).load()
        except Exception as exc:
            problems.append(f"accounts.{name}.type: the {account.type} adapter cannot run: {exc}")
    return problems
