"""The builtins' pure parts: what seen files and says, what help lists."""

from bridgehost.bots.api import BotCommands, CommandInfo
from bridgehost.bots.builtin.help import describe
from bridgehost.bots.builtin.seen import ago, keys_for, lookup_key, sentence


def test_ago() -> None:
    assert ago(3) == "just now"
    assert ago(42) == "42 seconds ago"
    assert ago(61) == "1 minute ago"
    assert ago(7300) == "2 hours ago"
    assert ago(86400 * 3 + 5) == "3 days ago"
    assert ago(-5) == "just now"


def test_seen_keys_for_scalar_users_and_relayed_nicks() -> None:
    assert keys_for("Alice@d", None) == ["nick:alice", "id:alice@d"]
    assert keys_for("!irc-libera@d", "Bob") == ["nick:bob"]
    assert lookup_key("BOB") == "nick:bob"
    assert lookup_key("alice@D") == "id:alice@d"


def test_seen_sentence() -> None:
    record = {
        "name": "bob",
        "topic": "#py@d",
        "time": 1_700_000_000_000,
        "kind": "text",
        "text": "hello\nworld",
        "origin": "irc:libera/#py",
    }
    assert sentence(record, 1_700_000_000 + 120) == (
        "bob was last seen in #py@d (via irc:libera/#py) 2 minutes ago "
        "(2023-11-14 22:13 UTC), saying: hello world"
    )
    action = dict(record, kind="action", text="waves", origin=None)
    assert sentence(action, 1_700_000_000).endswith("saying: * bob waves")


def test_help_describe_lists_every_command_once_and_filters() -> None:
    entries = [
        BotCommands("!a@d", "!", (CommandInfo("ping", "answers pong"),)),
        BotCommands("!b@d", "?", (CommandInfo("seen", "last spoke", "NAME"), CommandInfo("x"))),
        BotCommands("!c@d", "!", (CommandInfo("ping", "answers pong"),)),
    ]
    assert describe(entries) == ["!ping — answers pong", "?seen NAME — last spoke", "?x"]
    assert describe(entries, "seen") == ["?seen NAME — last spoke"]
    assert describe(entries, "!PING") == ["!ping — answers pong"]
    assert describe(entries, "nope") == []
