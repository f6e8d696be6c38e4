"""fs adapter: directory names are a reversible escape of topics and targets."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgehost.adapters.fs.names import MAX_NAME_BYTES, escape_name, peer_of, unescape_name


@pytest.mark.parametrize(
    "topic", ["#lobby@example.com", "alice@example.com", "!irc-libera@a-b.c", "#a.b_c-d@localhost"]
)
def test_valid_topics_map_to_themselves(topic: str) -> None:
    assert escape_name(topic) == topic
    assert unescape_name(topic) == topic


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("a/b", "a%2Fb"),
        ("..", "%2E."),
        (".hidden", "%2Ehidden"),
        ("100%", "100%25"),
        ("two words", "two%20words"),
        ("tab\there", "tab%09here"),
        ("nul\0", "nul%00"),
        ("back\\slash", "back%5Cslash"),
        ("café", "café"),
        ("rtl\u202eevil", "rtl%E2%80%AEevil"),
        ("line\u2028sep", "line%E2%80%A8sep"),
    ],
)
def test_unsafe_characters_are_escaped(name: str, escaped: str) -> None:
    assert escape_name(name) == escaped
    assert unescape_name(escaped) == name
    assert "/" not in escaped and "\0" not in escaped and not escaped.startswith(".")


@given(st.text(min_size=1, max_size=60))
def test_escape_round_trips_and_is_one_safe_component(name: str) -> None:
    escaped = escape_name(name)
    assert unescape_name(escaped) == name
    assert "/" not in escaped and "\0" not in escaped
    assert escaped not in (".", "..") and not escaped.startswith(".")
    assert escaped.isprintable() and not any(ch.isspace() for ch in escaped)


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_distinct_names_get_distinct_directories(a: str, b: str) -> None:
    if a != b:
        assert escape_name(a) != escape_name(b)


@pytest.mark.parametrize("bad", ["", "%", "%2", "%zz", "%61", "a b", "%FF", ".x", "a/b"])
def test_only_canonical_escapes_are_accepted_back(bad: str) -> None:
    with pytest.raises(ValueError):
        unescape_name(bad)


def test_too_long_and_empty_names_are_refused() -> None:
    assert escape_name("a" * MAX_NAME_BYTES) == "a" * MAX_NAME_BYTES
    with pytest.raises(ValueError, match="255"):
        escape_name("a" * (MAX_NAME_BYTES + 1))
    with pytest.raises(ValueError, match="255"):
        escape_name("/" * 90)
    with pytest.raises(ValueError):
        escape_name("")


def test_peer_of_recognises_only_canonical_ids_of_this_domain() -> None:
    assert peer_of("alice@example.com", "example.com") == "alice@example.com"
    assert peer_of("!ping@example.com", "example.com") == "!ping@example.com"
    assert peer_of("#lobby@example.com", "example.com") is None
    assert peer_of("alice@other.org", "example.com") is None
    assert peer_of("Alice@example.com", "example.com") is None
    assert peer_of("in", "example.com") is None
    assert peer_of("%2Ex", "example.com") is None
