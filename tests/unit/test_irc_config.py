"""`type: irc` accounts and IRC links: defaults, and every bad value with its YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridgehost.adapters.irc.config import IrcAccount
from bridgehost.config import Config, ConfigError, parse_config


def _parse(account: dict[str, object], links: list[dict[str, object]] | None = None) -> Config:
    raw = {
        "server": {"domain": "x.example"},
        "accounts": {"net": {"type": "irc", "host": "irc.example.org", "nick": "bh", **account}},
        "bridges": [
            {"channel": "#a@x.example", "links": links or [{"account": "net", "target": "#a"}]}
        ],
    }
    return parse_config(raw, base=Path("/tmp"))


def _problems(
    account: dict[str, object], links: list[dict[str, object]] | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _parse(account, links)
    return info.value.problems


def test_defaults() -> None:
    acc = _parse({}).accounts["net"]
    assert isinstance(acc, IrcAccount)
    assert (acc.port, acc.tls, acc.verify, acc.ca) == (6697, True, True, None)
    assert (acc.flood.burst, acc.flood.interval, acc.flood.window) == (4, 0.7, 4096)
    assert (acc.queue, acc.max_lines, acc.format) == (1000, 10, "<{nick}> {body}")
    assert acc.sasl_password is None


def test_plain_port_default_and_sasl_username_defaults_to_nick() -> None:
    acc = _parse({"tls": False, "sasl": {"password": "pw"}}).accounts["net"]
    assert isinstance(acc, IrcAccount)
    assert acc.port == 6667 and acc.sasl_username == "bh" and acc.sasl_password == "pw"
    assert "pw" not in repr(acc)


def test_secrets_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRC_PW", "s3cret")
    acc = _parse({"sasl": {"password": "${IRC_PW}"}, "nickserv_password": "${IRC_PW}"})
    account = acc.accounts["net"]
    assert isinstance(account, IrcAccount)
    assert account.sasl_password == account.nickserv_password == "s3cret"


def test_bad_values_name_their_yaml_path() -> None:
    problems = _problems(
        {
            "port": 70000,
            "flood": {"burst": 0, "window": 100},
            "format": "<{nick}>",
            "action_format": "{who} {body}",
            "sasl": {"username": "u"},
            "max_lines": 0,
            "bogus": 1,
        },
        [
            {"account": "net", "target": "#a b"},
            {"account": "net", "target": "chan"},
            {"account": "net", "target": "#c", "direction": "sideways"},
            {"account": "nope", "target": "#d"},
        ],
    )
    expected = [
        "accounts.net.port: must be at most 65535",
        "accounts.net.flood.burst: must be at least 1",
        "accounts.net.flood.window: must be 0 (off) or at least 1024",
        "accounts.net.format: the format must contain {body}",
        "accounts.net.action_format: bad format string",
        "accounts.net.sasl.password: is required",
        "accounts.net.max_lines: must be at least 1",
        "accounts.net.bogus: unknown key",
        "bridges[0].links[0].target: an IRC channel starts with '#'",
        "bridges[0].links[1].target: an IRC channel starts with '#'",
        "bridges[0].links[2].direction: must be one of in, out, both",
        "bridges[0].links[3].account: unknown account 'nope'",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in problems), (want, problems)


def test_secret_values_never_appear_in_problems() -> None:
    problems = _problems({"sasl": {"password": "hunter2", "extra": 1}, "port": "x"})
    assert problems and not any("hunter2" in p for p in problems)
