"""Loading bot classes: module:Class, entry point names, and useful errors."""

from pathlib import Path

import pytest

from bridgehost.bots.builtin.ping import Ping
from bridgehost.bots.builtin.seen import Seen
from bridgehost.bots.loader import BotLoadError, load_bot_class


def test_module_class_and_builtin_names() -> None:
    assert load_bot_class("bridgehost.bots.builtin.ping:Ping") is Ping
    assert load_bot_class("seen") is Seen


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("no_such_module_xyz:Bot", "cannot import no_such_module_xyz: ModuleNotFoundError"),
        ("bridgehost.bots.builtin.ping:Pong", "module bridgehost.bots.builtin.ping has no Pong"),
        ("bridgehost.bots.api:Context", "is not a subclass of bridgehost.bots.Bot"),
        ("nosuchbot", "no bot named 'nosuchbot' in entry point group bridgehost.bots"),
        ("bridgehost.bots:", "use module:Class"),
    ],
)
def test_failures_say_why(spec: str, reason: str) -> None:
    with pytest.raises(BotLoadError, match=reason.replace("(", r"\(")):
        load_bot_class(spec)


def test_an_installed_package_is_found_by_its_entry_point_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `pip install` of a bot package leaves behind: a module and a
    dist-info with the entry point; `plugin: greeter` then finds it."""
    (tmp_path / "bh_greeter_pkg.py").write_text(
        "from bridgehost.bots import Bot, Context, command\n\n"
        "class Greeter(Bot):\n"
        '    @command("greet")\n'
        "    async def greet(self, ctx: Context, args: str) -> None:\n"
        '        await ctx.reply("hi")\n'
    )
    info = tmp_path / "bh_greeter_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bh-greeter-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[bridgehost.bots]\nbh-greeter = bh_greeter_pkg:Greeter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = load_bot_class("bh-greeter")
    assert cls.__module__ == "bh_greeter_pkg" and cls.__name__ == "Greeter"
    assert [c.name for c in cls.commands()] == ["greet"]
