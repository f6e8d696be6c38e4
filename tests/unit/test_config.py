"""Config: typed values, every problem with its YAML path, secrets from outside."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from bridgehost.adapters.irc.config import IrcAccount
from bridgehost.adapters.matrix.config import MatrixAccount
from bridgehost.config import (
    ConfigError,
    find_config,
    load_config,
    parse_config,
)

ROOT = Path(__file__).parents[2]


def problems(raw: Any, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base=tmp_path)
    return info.value.problems


def test_example_config_is_valid_and_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    secrets = tmp_path / ".config" / "bridgehost"
    secrets.mkdir(parents=True)
    (secrets / "nickserv").write_text("ns-secret\n")
    (secrets / "matrix-password").write_text("mx-secret\n")
    for name in ("IRC_SERVER_PASSWORD", "LIBERA_PASSWORD", "MATRIX_TOKEN", "PYTHON_CHANNEL_KEY"):
        monkeypatch.setenv(name, f"value-of-{name}")
    config = load_config(ROOT / "config.example.yaml")
    libera = config.accounts["libera"]
    assert isinstance(libera, IrcAccount)
    assert libera.sasl_password == "value-of-LIBERA_PASSWORD"
    assert libera.nickserv_password == "ns-secret"
    home = config.accounts["home"]
    assert isinstance(home, MatrixAccount) and home.password == "mx-secret"
    assert [link.account for link in config.bridges[0].links] == ["libera", "home", "shell"]
    assert config.reserved_id("libera") == "!irc-libera@example.com"
    assert len(config.bots) == 3
    for secret in ("value-of-LIBERA_PASSWORD", "ns-secret", "mx-secret", "value-of-MATRIX_TOKEN"):
        assert secret not in repr(config)


def test_every_problem_is_listed_with_its_path(tmp_path: Path) -> None:
    found = problems(
        {
            "server": {
                "domain": "bad domain!",
                "listen": ["ftp://x", "tls://127.0.0.1:1"],
                "limits": {"rate": -1, "burst": "lots"},
                "bogus": 1,
            },
            "accounts": {
                "libera": {"type": "irc", "host": "h", "nick": "n", "port": 70000},
                "odd": {"type": "xmpp"},
            },
            "bridges": [
                {
                    "channel": "#x@bad",
                    "links": [
                        {"account": "libra", "target": "#x"},
                        {"account": "libera", "target": "no-hash", "direction": "sideways"},
                    ],
                }
            ],
            "bots": [{"plugin": "ping", "id": "ping@localhost"}],
            "extra": True,
        },
        tmp_path,
    )
    text = "\n".join(found)
    for expected in (
        "server.domain: not a valid domain name",
        "server.listen[0]: ftp://x: scheme must be",
        "server.tls: tls:// listeners need",
        "server.limits.rate: must be at least 0",
        "server.limits.burst: must be an integer, not 'lots'",
        "server.bogus: unknown key",
        "accounts.libera.port: must be at most 65535",
        "accounts.odd.type: unknown account type 'xmpp'",
        "bridges[0].links[0].account: unknown account 'libra' (known: libera)",
        "bridges[0].links[1].target: an IRC channel starts with '#'",
        "bridges[0].links[1].direction: must be one of in, out, both",
        "bots[0].id: a bot ID is a reserved ID",
        "extra: unknown key",
    ):
        assert expected in text, f"missing {expected!r} in:\n{text}"


def test_missing_secret_is_named_but_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE_PASSWORD", raising=False)
    monkeypatch.setenv("SET_PASSWORD", "hunter2")
    found = problems(
        {
            "accounts": {
                "a": {
                    "type": "irc",
                    "host": "h",
                    "nick": "n",
                    "sasl": {"password": "${NOPE_PASSWORD}"},
                },
                "b": {
                    "type": "matrix",
                    "homeserver": "ftp://h",
                    "user_id": "@b:h",
                    "password": "${SET_PASSWORD}",
                },
                "c": {
                    "type": "matrix",
                    "homeserver": "https://h",
                    "user_id": "@c:h",
                    "password": "${file:missing.txt}",
                },
            }
        },
        tmp_path,
    )
    text = "\n".join(found)
    assert "accounts.a.sasl.password: environment variable NOPE_PASSWORD is not set" in text
    assert "accounts.b.homeserver: must be an http:// or https:// URL" in text
    assert "accounts.c.password: cannot read secret file" in text
    assert "hunter2" not in text


def test_defaults_and_embedded_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config({}, base=tmp_path)
    assert config.server.domain == "localhost"
    assert config.server.listen == ("tcp://127.0.0.1:7667",)
    assert config.server.data_dir == tmp_path / "bridgehost-data"
    monkeypatch.chdir(tmp_path)
    embedded = find_config(None)
    assert embedded.embedded and embedded.server.guests
    assert {b.plugin for b in embedded.bots} == {"ping", "help", "seen"}
    (tmp_path / "bridgehost.yaml").write_text(yaml.safe_dump({"server": {"domain": "x.org"}}))
    assert find_config(None).server.domain == "x.org"


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"\(top level\): must be a map"):
        load_config(top)
