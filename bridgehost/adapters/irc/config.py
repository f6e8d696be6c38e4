"""`type: irc` accounts: the typed account and its YAML section reader (no
network imports; `bridgehost check` reads configs with this alone)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ...config.model import AccountKeys, default_reserved_id
from ...config.reader import Reader
from ..spec import AdapterFactory, AdapterSpec

CHANNEL = re.compile(r"[#&][^\s,\x00-\x1f]{1,199}")


@dataclass(frozen=True, slots=True)
class Flood:
    burst: int = 4
    interval: float = 0.7
    window: int = 4096
    """Bytes the server may hold unprocessed (fakelag) before we wait; 0 = unbounded."""


@dataclass(frozen=True, slots=True)
class RelayOptions:
    """`relay:` of an IRC account: what besides plain messages crosses
    (docs/bridging.md; issue #13). A new option is a new field here: the
    reader takes its type and default from the field."""

    replies: bool = True
    """A Scalar reply reaches IRC as `<nick> target: text`."""
    edits: Literal["diff", "full", "off"] = "diff"
    """An edit reaches IRC as a compact `s/old/new/` (diff), the new text (full), or not."""
    sed_edits: bool = False
    """An IRC line `s/a/b/` right after the nick's own line edits it on the other networks."""
    deletes: bool = False
    """`* nick deleted a message` on IRC."""
    reactions: bool = True
    """`* nick reacted 👍 to alice: "..."`, at most one line per target per interval."""
    reaction_interval: float = 10.0
    """Seconds: the reactions to one message within it are summed up in one line."""
    topic: bool = True
    """TOPIC both ways."""
    membership: bool = False
    """Joins and parts both ways: IRC JOIN/PART/QUIT/KICK become `join`/`part`
    events (netsplits summarised), and other networks' are shown as lines."""
    netsplit_window: float = 3.0
    """Seconds of netsplit quits gathered into one `part` per channel."""
    anti_highlight: bool = True
    """A zero-width joiner after the first character of a relayed nick."""
    nick_colours: bool = True
    """`{nick}` in `format` coloured by a stable hash (`{plainnick}` never is)."""


@dataclass(frozen=True, slots=True)
class IrcAccount:
    name: str
    host: str
    nick: str
    port: int = 6697
    tls: bool = True
    verify: bool = True
    ca: Path | None = None
    alt_nicks: tuple[str, ...] = ()
    username: str | None = None
    realname: str = "bridgehost"
    password: str | None = field(default=None, repr=False)
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    nickserv_password: str | None = field(default=None, repr=False)
    flood: Flood = field(default_factory=Flood)
    queue: int = 1000
    max_lines: int = 10
    format: str = "<{nick}> {body}"
    action_format: str = "{nick} {body}"
    reconnect_initial: float = 2.0
    reconnect_max: float = 300.0
    rejoin_delay: float = 10.0
    ping_interval: float = 120.0
    ping_timeout: float = 60.0
    relay: RelayOptions = field(default_factory=RelayOptions)
    process: bool = False
    type: str = "irc"

    def reserved_id(self, domain: str) -> str:
        return default_reserved_id(self.type, self.name, domain)


def read_account(keys: AccountKeys, r: Reader) -> IrcAccount:
    tls = r.boolean("tls", True)
    nick = r.text("nick", required=True) or "bridgehost"
    sasl_user = sasl_pw = None
    if "sasl" in r.raw:
        s = r.child("sasl")
        sasl_user = s.text("username", nick)
        sasl_pw = s.text("password", required=True, secret=True)
        s.unknown()
    fr = r.child("flood")
    flood = Flood(
        burst=fr.integer("burst", 4, lo=1),
        interval=fr.number("interval", 0.7, lo=0.0),
        window=fr.integer("window", 4096, lo=0),
    )
    if 0 < flood.window < 1024:
        fr.problem("window", "must be 0 (off) or at least 1024 bytes (two full lines)")
    fr.unknown()
    acc = IrcAccount(
        name=keys.name,
        host=r.text("host", "", required=True),
        port=r.integer("port", 6697 if tls else 6667, lo=1, hi=65535),
        tls=tls,
        verify=r.boolean("verify", True),
        ca=r.path_("ca"),
        nick=nick,
        alt_nicks=r.texts("alt_nicks"),
        username=r.text("username"),
        realname=r.text("realname", "bridgehost"),
        password=r.text("password", secret=True),
        sasl_username=sasl_user,
        sasl_password=sasl_pw,
        nickserv_password=r.text("nickserv_password", secret=True),
        flood=flood,
        queue=r.integer("queue", 1000, lo=1),
        max_lines=r.integer("max_lines", 10, lo=1),
        format=r.text("format", "<{nick}> {body}"),
        action_format=r.text("action_format", "{nick} {body}"),
        reconnect_initial=r.number("reconnect_initial", 2.0, lo=0.01),
        reconnect_max=r.number("reconnect_max", 300.0, lo=0.01),
        rejoin_delay=r.number("rejoin_delay", 10.0, lo=0.0),
        ping_interval=r.number("ping_interval", 120.0, lo=0.1),
        ping_timeout=r.number("ping_timeout", 60.0, lo=0.1),
        relay=r.options("relay", RelayOptions),
        process=keys.process,
    )
    for key, fmt in (("format", acc.format), ("action_format", acc.action_format)):
        try:
            fmt.format(nick="n", plainnick="n", body="b")
        except (KeyError, IndexError, ValueError) as exc:
            r.problem(key, f"bad format string (use {{nick}}, {{plainnick}}, {{body}}): {exc}")
        else:
            if "{body}" not in fmt:
                r.problem(key, "the format must contain {body}")
    return acc


def check_target(target: str) -> str | None:
    if CHANNEL.fullmatch(target):
        return None
    return (
        "an IRC channel starts with '#' and has no spaces, commas or control"
        f" characters: {target!r}"
    )


def load() -> AdapterFactory:
    from .adapter import IrcAdapter

    return IrcAdapter


ADAPTER = AdapterSpec(type="irc", read=read_account, load=load, target=check_target)
