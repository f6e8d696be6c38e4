"""`type: fs` accounts: the typed account and its YAML section reader."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path

from ...config.model import AccountKeys, default_reserved_id
from ...config.reader import Reader
from ...scalar import ids
from ..spec import AdapterFactory, AdapterSpec


@dataclass(frozen=True, slots=True)
class FsAccount:
    name: str
    root: Path
    nick: str = "fs"
    users: tuple[str, ...] = ()
    """User IDs (or bare names of this server) with a DM directory and a presence file."""
    queue: int = 1000
    process: bool = False
    type: str = "fs"

    def reserved_id(self, domain: str) -> str:
        return default_reserved_id(self.type, self.name, domain)


def _os_user() -> str:
    try:
        return getpass.getuser()[:64] or "fs"
    except (OSError, KeyError, ImportError):
        return "fs"


def read_account(keys: AccountKeys, r: Reader) -> FsAccount:
    nick = r.text("nick") or _os_user()
    if not 1 <= len(nick) <= 64 or not nick.isprintable():
        r.problem("nick", f"must be 1..64 printable characters, not {nick[:70]!r}")
    users = []
    for i, user in enumerate(r.texts("users")):
        try:
            parsed = ids.parse(user if "@" in user else f"{user}@localhost")
        except Exception:
            parsed = None
        if parsed is None or parsed.kind is not ids.Kind.USER:
            r.problem(f"users[{i}]", f"not a user ID like 'alice@example.com' or 'alice': {user!r}")
            continue
        users.append(str(parsed) if "@" in user else parsed.name)
    return FsAccount(
        name=keys.name,
        root=r.path_("root", required=True) or Path("."),
        nick=nick,
        users=tuple(users),
        queue=r.integer("queue", 1000, lo=1),
        process=keys.process,
    )


def check_target(target: str) -> str | None:
    """An fs link's target is a directory name under the root."""
    if target in ("in", "out"):
        return f"{target!r} is the name of the fs root's own pipe and log"
    try:
        parsed = ids.parse(target)
    except Exception:
        return None
    if not parsed.is_channel:
        return f"{target!r} is kept for direct messages with that ID"
    return None


def default_target(channel: str) -> str:
    """A link without `target` is the directory named for its channel."""
    return channel


def load() -> AdapterFactory:
    from .adapter import FsAdapter

    return FsAdapter


ADAPTER = AdapterSpec(
    type="fs", read=read_account, load=load, target=check_target, target_default=default_target
)
