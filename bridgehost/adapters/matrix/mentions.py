"""Mentions towards Matrix: `bob: hi` from IRC pings the Matrix user Bob (pure).

IRC people address someone by starting the line with their name and a
colon (or comma). When that name is the display name (or the user ID's
local part) of exactly one member of the Matrix room, the relayed message
carries a pill for it and `m.mentions`, which is what Matrix clients
notify on. Every relayed message carries `m.mentions`, so a name that
merely appears in a body pings nobody (intentional mentions, MSC3952).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping

_ADDRESS = re.compile(r"\s*([^\s:,][^:,]{0,63}?)[:,](?:\s|$)")


def member_index(members: Iterable[tuple[str, str | None]], own: str) -> dict[str, str]:
    """Folded display name or local part -> user ID, without ambiguous names and `own`."""
    seen: dict[str, set[str]] = {}
    for user_id, display in members:
        if user_id == own:
            continue
        local = user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id
        for name in {display or "", local}:
            if name.strip():
                seen.setdefault(name.strip().casefold(), set()).add(user_id)
    return {name: next(iter(ids)) for name, ids in seen.items() if len(ids) == 1}


def address_name(body: str) -> str | None:
    """The name a line starts by addressing (`bob: hi` -> `bob`), if it does."""
    m = _ADDRESS.match(body)
    return m.group(1).strip() if m is not None else None


def addressed(body: str, members: Mapping[str, str]) -> tuple[str, str] | None:
    """(name as written, user ID) when `body` starts by addressing a room member."""
    name = address_name(body)
    user_id = members.get(name.casefold()) if name else None
    return (name, user_id) if name and user_id else None


def pill(user_id: str, label: str) -> str:
    """The HTML link Matrix clients show as a mention pill."""
    href = html.escape(f"https://matrix.to/#/{user_id}", quote=True)
    return f'<a href="{href}">{html.escape(label, quote=False)}</a>'
