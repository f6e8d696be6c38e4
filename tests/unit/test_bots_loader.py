"""Loading bot classes: module:Class, entry point names, and useful errors."""

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
