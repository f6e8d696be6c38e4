"""fs accounts and links in the config: defaults and every problem with its path."""

import getpass
from pathlib import Path
from typing import Any

import pytest

from bridgehost.adapters.fs.config import FsAccount
from bridgehost.config import ConfigError, parse_config


def parse(tmp_path: Path, account: dict[str, Any], links: list[dict[str, Any]]) -> Any:
    raw = {
        "server": {"domain": "example.com"},
        "accounts": {"sh": {"type": "fs", **account}},
        "bridges": [{"channel": "#lobby@example.com", "links": links}],
    }
    return parse_config(raw, base=tmp_path)


def problems(tmp_path: Path, account: dict[str, Any], links: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(tmp_path, account, links)
    return info.value.problems


def test_defaults(tmp_path: Path) -> None:
    config = parse(tmp_path, {"root": "chat"}, [{"account": "sh"}])
    acc = config.accounts["sh"]
    assert isinstance(acc, FsAccount)
    assert acc.root == tmp_path / "chat"
    assert acc.nick == getpass.getuser()
    assert (acc.users, acc.queue) == ((), 1000)
    link = config.bridges[0].links[0]
    assert (link.target, link.direction) == ("#lobby@example.com", "both")
    assert config.reserved_id("sh") == "!fs-sh@example.com"


def test_explicit_values(tmp_path: Path) -> None:
    config = parse(
        tmp_path,
        {"root": "/tmp/c", "nick": "Zoë", "users": ["Bob", "carol@example.com"], "queue": 5},
        [{"account": "sh", "target": "lobby", "direction": "out"}],
    )
    acc = config.accounts["sh"]
    assert (acc.root, acc.nick, acc.users, acc.queue) == (
        Path("/tmp/c"),
        "Zoë",
        ("bob", "carol@example.com"),
        5,
    )
    assert config.bridges[0].links[0].target == "lobby"


def test_problems_are_reported_with_paths(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {"nick": "bad\nnick", "users": ["#chan@example.com", "no way"], "colour": 1},
        [{"account": "sh", "target": "in"}, {"account": "sh", "target": "bob@example.com"}],
    )
    assert "accounts.sh.root: is required" in found
    assert any(p.startswith("accounts.sh.nick: must be 1..64 printable") for p in found)
    assert any(p.startswith("accounts.sh.users[0]: not a user ID") for p in found)
    assert any(p.startswith("accounts.sh.users[1]: not a user ID") for p in found)
    assert any(p.startswith("accounts.sh.colour: unknown key") for p in found)
    assert any(p.startswith("bridges[0].links[0].target: 'in' is the name") for p in found)
    assert any(p.startswith("bridges[0].links[1].target: 'bob@example.com' is kept") for p in found)


def test_other_link_types_still_need_a_target(tmp_path: Path) -> None:
    raw = {
        "server": {"domain": "example.com"},
        "accounts": {"net": {"type": "irc", "host": "irc.example", "nick": "b"}},
        "bridges": [{"channel": "#lobby@example.com", "links": [{"account": "net"}]}],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base=tmp_path)
    assert any(p.startswith("bridges[0].links[0].target") for p in info.value.problems)
