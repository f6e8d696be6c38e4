"""`bridgehost check` reports bots that cannot load or have a bad config."""

from pathlib import Path

import pytest
import yaml

from bridgehost.cli import main


def write(tmp_path: Path, bots: list[dict[str, object]]) -> Path:
    path = tmp_path / "bridgehost.yaml"
    raw = {"server": {"domain": "test.example", "data_dir": str(tmp_path / "data")}, "bots": bots}
    path.write_text(yaml.safe_dump(raw))
    return path


def test_check_names_each_bad_bot_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        [
            {"plugin": "ping", "id": "!ping@test.example"},
            {"plugin": "nosuchbot", "id": "!x@test.example"},
            {
                "plugin": "tests.integration.test_bots_framework:Greeter",
                "id": "!greeter@test.example",
                "config": {"greeting": 1, "shout": "yes"},
            },
        ],
    )
    assert main(["check", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "config error: bots[1] (!x@test.example).plugin: no bot named 'nosuchbot'" in err
    assert "bots[2] (!greeter@test.example).config.greeting: must be str, not 1" in err
    assert "bots[2] (!greeter@test.example).config.shout: must be bool, not 'yes'" in err
    assert "bots[0]" not in err


def test_check_accepts_good_bots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path, [{"plugin": n, "id": f"!{n}@test.example"} for n in ("ping", "help", "seen")]
    )
    assert main(["check", "-c", str(path)]) == 0
    assert "3 bot(s)" in capsys.readouterr().out
