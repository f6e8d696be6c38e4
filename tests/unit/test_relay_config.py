"""`relay:` of IRC and Matrix accounts: the defaults of the conversation table
(issue #13), every switch read, and bad values with their YAML path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridgehost.adapters.irc.config import IrcAccount
from bridgehost.adapters.irc.config import RelayOptions as IrcRelay
from bridgehost.adapters.matrix.config import MatrixAccount
from bridgehost.adapters.matrix.config import RelayOptions as MatrixRelay
from bridgehost.config import ConfigError, parse_config


def _accounts(irc: dict[str, Any], matrix: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": {"domain": "x.example"},
        "accounts": {
            "net": {"type": "irc", "host": "irc.example.org", "nick": "bh", **irc},
            "mx": {
                "type": "matrix",
                "homeserver": "https://m.example.org",
                "user_id": "@b:m.example.org",
                "password": "pw",
                **matrix,
            },
        },
    }


def test_defaults_follow_the_conversation_table() -> None:
    config = parse_config(_accounts({}, {}), base=Path("/tmp"))
    irc, mx = config.accounts["net"], config.accounts["mx"]
    assert isinstance(irc, IrcAccount) and isinstance(mx, MatrixAccount)
    r = irc.relay
    assert r == IrcRelay()
    assert (r.replies, r.edits, r.sed_edits, r.deletes, r.reactions) == (
        True,
        "diff",
        False,
        False,
        True,
    )
    assert (r.reaction_interval, r.topic, r.membership, r.netsplit_window) == (
        10.0,
        True,
        False,
        3.0,
    )
    assert (r.anti_highlight, r.nick_colours, irc.max_lines) == (True, True, 10)
    m = mx.relay
    assert m == MatrixRelay()
    assert (m.replies, m.edits, m.deletes, m.reactions, m.topic, m.membership) == (
        True,
        True,
        True,
        True,
        True,
        False,
    )
    assert (m.mentions, m.merge, m.merge_window, m.merge_max_bytes) == (True, True, 0.1, 16000)


def test_every_switch_is_read() -> None:
    irc = {
        "replies": False,
        "edits": "full",
        "sed_edits": True,
        "deletes": True,
        "reactions": False,
        "reaction_interval": 2.0,
        "topic": False,
        "membership": True,
        "netsplit_window": 1.5,
        "anti_highlight": False,
        "nick_colours": False,
    }
    matrix = {
        "replies": False,
        "edits": False,
        "deletes": False,
        "reactions": False,
        "topic": False,
        "membership": True,
        "mentions": False,
        "merge": False,
        "merge_window": 0.5,
        "merge_max_bytes": 4000,
    }
    config = parse_config(
        _accounts({"relay": irc, "format": "[{plainnick}] {body}"}, {"relay": matrix}),
        base=Path("/tmp"),
    )
    got_irc, got_mx = config.accounts["net"], config.accounts["mx"]
    assert isinstance(got_irc, IrcAccount) and isinstance(got_mx, MatrixAccount)
    assert got_irc.relay == IrcRelay(**irc)
    assert got_mx.relay == MatrixRelay(**matrix)


def test_bad_values_name_their_yaml_path() -> None:
    raw = _accounts(
        {"relay": {"edits": "sometimes", "reactions": "yes", "bogus": 1}, "format": "{x} {body}"},
        {"relay": {"merge_window": 60, "merge_max_bytes": 10}, "redactions": "ignore"},
    )
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base=Path("/tmp"))
    problems = info.value.problems
    for want in (
        "accounts.net.relay.edits: must be one of diff, full, off",
        "accounts.net.relay.reactions: must be true or false",
        "accounts.net.relay.bogus: unknown key",
        "accounts.net.format: bad format string",
        "accounts.mx.relay.merge_window: at most 10 seconds",
        "accounts.mx.relay.merge_max_bytes: must be at least 1000",
        "accounts.mx.redactions: replaced by relay: {deletes: true|false}",
    ):
        assert any(p.startswith(want) for p in problems), (want, problems)
    assert not any("accounts.mx.redactions: unknown key" in p for p in problems)
