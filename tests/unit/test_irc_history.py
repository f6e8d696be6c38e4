"""The IRC adapter's resume from a channel's history batch (pure parts)."""

from __future__ import annotations

from bridgehost.adapters.irc.history import (
    Line,
    Position,
    nonce,
    server_time,
    to_relay,
    went_out,
)


def line(n: int, *, nick: str = "u1", second: int = 50) -> Line:
    return Line(nick, f"i{n}", f"420~1796~{n}", server_time(f"2026-12-03T11:47:{second}.000Z"))


def test_server_time_tags() -> None:
    assert server_time("2026-12-03T11:47:50.123Z") == 1796298470123
    assert server_time("not a time") is None and server_time(None) is None


def test_after_the_position_by_msgid() -> None:
    history = [line(n) for n in range(5)]
    assert to_relay(history, Position.of(history[2])) == history[3:]
    assert to_relay(history, Position.of(history[4])) == []


def test_a_first_join_relays_nothing_old() -> None:
    assert to_relay([line(n) for n in range(5)], None) == []


def test_a_position_older_than_the_batch_goes_by_time() -> None:
    history = [line(n, second=50 + n) for n in range(5)]
    gone = Position("420~1796~0-gone", history[2].time_ms)  # rolled out of the batch
    assert to_relay(history, gone) == history[2:], "same second and later (the nonce dedupes)"
    assert to_relay(history, Position(None, None)) == []


def test_the_nonce_names_the_line_whatever_path_it_came_by() -> None:
    live, replayed = line(7), line(7)
    assert nonce(live) == nonce(replayed) and nonce(live).startswith("irc:")
    assert len(nonce(live)) <= 64
    assert nonce(line(7)) != nonce(line(8))
    untagged = Line("u1", "hello", None, 1796298470000)
    assert nonce(untagged) == nonce(Line("u1", "hello", None, 1796298470000))
    assert nonce(Line("u1", "hello")) == "", "no stable name: a fresh nonce"


def test_what_the_bridge_was_sending_when_it_died() -> None:
    own = [Line("bridge", "<alice> s1"), Line("bridge", "<alice> s2")]
    assert went_out(own, ["<alice> s2"]) is True
    assert went_out(own, ["<alice> s3"]) is False
    assert went_out([], ["<alice> s3"]) is None, "no history: cannot tell"
