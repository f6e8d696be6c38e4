"""Identifier syntax (protocol §3)."""

import pytest

from bridgehost.scalar import ids
from bridgehost.scalar.errors import BadTopic
from bridgehost.scalar.ids import Kind


@pytest.mark.parametrize(
    ("text", "kind", "norm"),
    [
        ("alice@example.com", Kind.USER, "alice@example.com"),
        ("#Python@Example.COM", Kind.CHANNEL, "#python@example.com"),
        ("!irc-libera@example.com", Kind.RESERVED, "!irc-libera@example.com"),
        ("a.b_c-d@localhost", Kind.USER, "a.b_c-d@localhost"),
        ("#x@a-b.c-d.e", Kind.CHANNEL, "#x@a-b.c-d.e"),
        ("#" + "n" * 64 + "@x", Kind.CHANNEL, "#" + "n" * 64 + "@x"),
    ],
)
def test_valid(text: str, kind: Kind, norm: str) -> None:
    parsed = ids.parse(text)
    assert parsed.kind is kind
    assert str(parsed) == norm == ids.normalise(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice",
        "@example.com",
        "alice@",
        "#@example.com",
        "al ice@example.com",
        "alice@exa_mple.com",
        "alice@-example.com",
        "alice@example-.com",
        "alice@example.com.",
        "alice@example.com:7667",
        "alice@@example.com",
        "ålice@example.com",
        "#" + "n" * 65 + "@x",
        "a@" + ".".join(["a" * 63] * 4),  # > 255 bytes
        "a@" + "b" * 64,  # label too long
        "$x@example.com",
        "#a#b@example.com",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(BadTopic):
        ids.parse(text)


def test_total_length_counts_the_sigil() -> None:
    domain = ".".join(["d" * 63, "d" * 63, "d" * 63, "d" * 55])
    ok = "#" + "n" * (255 - 2 - len(domain)) + "@" + domain
    assert len(ok) == 255
    ids.parse(ok)
    with pytest.raises(BadTopic):
        ids.parse("#n" + ok[1:])
