"""The bot directory convention: manifests in, commands per topic out."""

from bridgehost.bots.api import BotCommands, CommandInfo
from bridgehost.bots.directory import HostDirectory, manifest_body, parse_manifest
from bridgehost.scalar.events import Event


def manifest_event(sender: str, body: str, kind: str = "notice") -> Event:
    return Event(id=b"\0" * 32, topic="!bots@d", seq=1, sender=sender, time=0, body=body, kind=kind)


def test_manifest_round_trip() -> None:
    body = manifest_body("?", ["#a@d"], [CommandInfo("roll", "rolls dice", "NdM")])
    got = parse_manifest(manifest_event("!dice@d", body))
    assert got == BotCommands(
        "!dice@d", "?", (CommandInfo("roll", "rolls dice", "NdM"),), ("#a@d",)
    )


def test_non_manifests_are_ignored() -> None:
    good = manifest_body("!", ["#a@d"], [])
    assert parse_manifest(manifest_event("!x@d", "hello")) is None
    assert parse_manifest(manifest_event("!x@d", '{"other": 1}')) is None
    assert parse_manifest(manifest_event("!x@d", '{"scalar-bot": 1, "commands": [{}]}')) is None
    assert parse_manifest(manifest_event("alice@d", good)) is None  # users are not bots
    assert parse_manifest(manifest_event("!x@d", good, kind="text")) is None


def test_host_directory_merges_local_and_online_remote_bots() -> None:
    online = {"!remote@d"}
    directory = HostDirectory(lambda ident: ident in online)
    local = BotCommands("!local@d", "!", (CommandInfo("ping"),), ("#a@d",))
    directory.add_local("!local@d", lambda: local)
    directory.add_local("!down@d", lambda: None)
    for sender in ("!remote@d", "!gone@d", "!local@d"):
        body = manifest_body("!", ["#a@d"], [CommandInfo(sender[1:5])])
        directory.learn(manifest_event(sender, body))
    assert [e.bot_id for e in directory.commands_in("#a@d")] == ["!local@d", "!remote@d"]
    assert directory.commands_in("#b@d") == []
    online.clear()
    assert [e.bot_id for e in directory.commands_in("#a@d")] == ["!local@d"]
