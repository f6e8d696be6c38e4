"""`type: matrix` accounts: the typed account and its YAML section reader (no
network imports; `bridgehost check` reads configs with this alone)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ...config.model import Account, AccountKeys, default_reserved_id
from ...config.reader import Reader
from ..spec import AdapterFactory, AdapterSpec, MediaCredentials


@dataclass(frozen=True, slots=True)
class RelayOptions:
    """`relay:` of a Matrix account: what besides plain messages crosses
    (docs/bridging.md; issue #13). A new option is a new field here: the
    reader takes its type and default from the field."""

    replies: bool = True
    """`m.in_reply_to` both ways."""
    edits: bool = True
    """`m.replace` both ways."""
    deletes: bool = True
    """`m.room.redaction` both ways (the mapped event is redacted)."""
    reactions: bool = True
    """`m.reaction` both ways."""
    topic: bool = True
    """`m.room.topic` both ways."""
    membership: bool = False
    """Joins and leaves both ways: `m.room.member` changes become `join`/`part`
    events, and other networks' are shown as notices."""
    mentions: bool = True
    """`name: text` addressing a room member becomes a pill with `m.mentions`."""
    merge: bool = True
    """Consecutive lines of one IRC nick, each within `merge_window` of the one
    before, go out as one Matrix message."""
    merge_window: float = 0.1
    """Seconds (see `merge`)."""
    merge_max_bytes: int = 16000
    """The largest merged message body."""


@dataclass(frozen=True, slots=True)
class MatrixAccount:
    name: str
    homeserver: str
    user_id: str
    password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    device_name: str = "bridgehost"
    verify: bool = True
    queue: int = 1000
    reconnect_initial: float = 2.0
    reconnect_max: float = 300.0
    relay: RelayOptions = field(default_factory=RelayOptions)
    process: bool = False
    type: str = "matrix"

    def reserved_id(self, domain: str) -> str:
        return default_reserved_id(self.type, self.name, domain)


def read_account(keys: AccountKeys, r: Reader) -> MatrixAccount:
    acc = MatrixAccount(
        name=keys.name,
        homeserver=r.text("homeserver", "", required=True),
        user_id=r.text("user_id", "", required=True),
        password=r.text("password", secret=True),
        access_token=r.text("access_token", secret=True),
        device_name=r.text("device_name", "bridgehost"),
        verify=r.boolean("verify", True),
        queue=r.integer("queue", 1000, lo=1),
        reconnect_initial=r.number("reconnect_initial", 2.0, lo=0.01),
        reconnect_max=r.number("reconnect_max", 300.0, lo=0.01),
        relay=r.options("relay", RelayOptions),
        process=keys.process,
    )
    if "redactions" in r.raw:
        r.text("redactions")
        r.problem("redactions", "replaced by relay: {deletes: true|false}")
    if acc.relay.merge_window > 10:
        r.problem("relay.merge_window", "at most 10 seconds")
    if acc.relay.merge_max_bytes < 1000:
        r.problem("relay.merge_max_bytes", "must be at least 1000")
    if acc.homeserver and not acc.homeserver.startswith(("http://", "https://")):
        r.problem("homeserver", "must be an http:// or https:// URL")
    if acc.user_id and not re.fullmatch(r"@[^:]+:.+", acc.user_id):
        r.problem("user_id", f"must look like @name:server, not {acc.user_id!r}")
    if acc.password is None and acc.access_token is None:
        r.problem("", "needs password or access_token")
    return acc


def check_target(target: str) -> str | None:
    if target.startswith(("#", "!")):
        return None
    return f"a Matrix room is '#alias:server' or '!id:server': {target!r}"


def load() -> AdapterFactory:
    from .adapter import MatrixAdapter

    return MatrixAdapter


def saved_login(account: Account, data_dir: Path) -> MediaCredentials:
    """The login a `process: true` child saved, for fetching media from this process."""
    from .credentials import SavedLogin, credential_path

    assert isinstance(account, MatrixAccount)
    return SavedLogin(account.homeserver, credential_path(data_dir, account.name))


ADAPTER = AdapterSpec(
    type="matrix", read=read_account, load=load, target=check_target, media=saved_login
)
