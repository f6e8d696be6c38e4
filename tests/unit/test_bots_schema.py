"""Bot config validation: every problem named by its key."""

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pytest

from bridgehost.bots import Bot, BotConfigError
from bridgehost.bots.schema import build_config


@dataclass(frozen=True)
class Inner:
    url: str
    retries: int = 3


@dataclass(frozen=True)
class Conf:
    greeting: str
    delay: float = 1.0
    words: tuple[str, ...] = ()
    mode: Literal["loud", "quiet"] = "quiet"
    limit: int | None = None
    extra: dict[str, int] = field(default_factory=dict)
    inner: Inner | None = None


class Typed(Bot[Conf]):
    pass


class Schema(Bot):
    config_schema: ClassVar[dict[str, Any]] = {"channel": str, "count": (int, 5)}


class Untyped(Bot):
    pass


def problems(cls: type[Bot[Any]], raw: dict[str, Any]) -> list[str]:
    with pytest.raises(BotConfigError) as info:
        build_config(cls, raw)
    return info.value.problems


def test_dataclass_config_is_built_and_converted() -> None:
    conf = build_config(
        Typed,
        {
            "greeting": "hey",
            "delay": 2,
            "words": ["a", "b"],
            "mode": "loud",
            "extra": {"x": 1},
            "inner": {"url": "u"},
        },
    )
    assert conf == Conf("hey", 2.0, ("a", "b"), "loud", None, {"x": 1}, Inner("u"))
    assert isinstance(conf.delay, float)


def test_dataclass_config_problems_name_each_key() -> None:
    got = problems(
        Typed,
        {
            "delay": "soon",
            "words": ["a", 1],
            "mode": "shout",
            "limit": True,
            "colour": 1,
            "inner": {"retries": "x"},
        },
    )
    known = "greeting, delay, words, mode, limit, extra, inner"
    assert f"config.colour: unknown key (known: {known})" in got
    assert "config.greeting: is required (str)" in got
    assert "config.delay: must be float, not 'soon'" in got
    assert "config.words[1]: must be str, not 1" in got
    assert "config.mode: must be 'loud' | 'quiet', not 'shout'" in got
    assert "config.limit: must be int | None, not True" in got
    assert "config.inner.retries: must be int, not 'x'" in got
    assert "config.inner.url: is required (str)" in got
    assert len(got) == 8


def test_dict_schema_fills_defaults_and_checks_types() -> None:
    assert build_config(Schema, {"channel": "#a@d"}) == {"channel": "#a@d", "count": 5}
    assert problems(Schema, {"count": "many", "x": 1}) == [
        "config.x: unknown key (known: channel, count)",
        "config.channel: is required (str)",
        "config.count: must be int, not 'many'",
    ]


def test_untyped_bot_gets_the_map_as_is() -> None:
    assert build_config(Untyped, {"anything": [1, 2]}) == {"anything": [1, 2]}
